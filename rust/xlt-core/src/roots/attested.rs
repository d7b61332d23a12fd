//! How well attested an Arabic root is in ordinary text, from a table induced
//! without labels (`tools/arabic_root_table.py`: Wikipedia paragraphs of ARCD,
//! EXAMS questions and FLORES sentences; provenance in `arabic_attested.md`).
//! Each line is `root<TAB>weight`, the weight being the expected number of
//! distinct word forms the root explains. The analyser charges roots the text
//! rarely or never attests (the charge falls with the log weight, to nothing
//! from `SATURATION` up), which decides between readings the templates leave
//! open: which weak letter a root has (يعين: عون or عين), a clitic or a
//! radical (بحق: ب + حقق or بحق), a geminate or a weak restoration.
use std::collections::HashMap;
use std::sync::LazyLock;

use super::engine::Fnv;

/// Cost of a root the table does not list.
const UNATTESTED: f32 = 3.0;
/// Weight from which a root counts as fully attested.
const SATURATION: f32 = 20.0;

/// Extra cost per e-fold by which the same root with the other weak letter
/// (و for ي or ي for و, same position) outweighs this one, up to `RIVAL_MAX`:
/// where both readings are common (سمو/سمي, عون/عين), the text still decides.
const RIVAL: f32 = 0.5;
const RIVAL_MAX: f32 = 1.0;
/// Extra cost of an unlisted root whose first radical is ي.
const Y_INITIAL: f32 = 1.0;

const TABLE: &str = include_str!("arabic_attested.tsv");

/// Letter code: hamza ء … ي as 1 … 42, anything else 0.
#[inline]
fn code(c: char) -> u32 {
    let n = (c as u32).wrapping_sub(0x620);
    if n < 43 {
        n
    } else {
        0
    }
}

/// Packed key of up to four spelled radicals.
#[inline]
fn key(r: &[char]) -> u32 {
    r.iter().fold(0, |k, &c| (k << 6) | code(c))
}

struct Table {
    /// Cost of each three-letter key (2^18 entries, quantised to 1/255 of UNATTESTED).
    three: Vec<u8>,
    /// Costs of the listed four-letter roots.
    four: HashMap<u32, u8, std::hash::BuildHasherDefault<Fnv>>,
}

fn quantised(weight: f32, rival: f32) -> u8 {
    let strength = ((1.0 + weight).ln() / (1.0 + SATURATION).ln()).min(1.0);
    let extra = if weight > 0.0 && rival > weight {
        (RIVAL * (rival / weight).ln()).min(RIVAL_MAX) / UNATTESTED
    } else {
        0.0
    };
    (255.0 * (1.0 - strength + extra)).round().min(255.0) as u8
}

/// The root with its other weak letter at `i` (و ↔ ي), if it has one there.
fn rival(r: &[char], i: usize) -> Option<Vec<char>> {
    let other = match r[i] {
        'و' => 'ي',
        'ي' => 'و',
        _ => return None,
    };
    let mut o = r.to_vec();
    o[i] = other;
    Some(o)
}

static ATTESTED: LazyLock<Table> = LazyLock::new(|| {
    let mut t = Table {
        three: vec![255; 1 << 18],
        four: Default::default(),
    };
    let weights: HashMap<Vec<char>, f32> = TABLE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(r, w)| (r.chars().collect(), w.parse().unwrap_or(0.0)))
        .collect();
    for (r, &weight) in &weights {
        let rival = (0..r.len())
            .filter_map(|i| rival(r, i))
            .filter_map(|o| weights.get(&o).copied())
            .fold(0.0f32, f32::max);
        let q = quantised(weight, rival);
        match r.len() {
            3 => t.three[key(r) as usize] = q,
            4 => {
                t.four.insert(key(r), q);
            }
            _ => {}
        }
    }
    t
});

/// The cost of a spelled root (hamza as ء, weak letters as و/ي): 0 when well
/// attested, up to `UNATTESTED` when the table does not list it.
pub fn cost(r: &[char]) -> f32 {
    let q = match r.len() {
        3 => ATTESTED.three[key(r) as usize],
        4 => ATTESTED.four.get(&key(r)).copied().unwrap_or(255),
        _ => return 0.0,
    };
    // few roots begin with ي (يسر, يقن, يمن): one the text never attests is more likely
    // an imperfect prefix on a root it does (يظن: ي + ظنن, not a root يظن)
    let extra = if q == 255 && r[0] == 'ي' {
        Y_INITIAL
    } else {
        0.0
    };
    UNATTESTED * q as f32 / 255.0 + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(root: &str) -> f32 {
        cost(&root.chars().collect::<Vec<_>>())
    }

    #[test]
    fn frequent_roots_are_free_and_absent_ones_cost_the_most() {
        assert_eq!(c("علم"), 0.0);
        assert_eq!(c("كتب"), 0.0);
        assert_eq!(c("ظظظ"), UNATTESTED);
        assert_eq!(c("يظظ"), UNATTESTED + Y_INITIAL);
        assert!(c("يمن") < UNATTESTED); // a listed root in ي: the table alone
        assert_eq!(quantised(0.0, 0.0), 255);
        assert!((1..255).contains(&quantised(3.0, 0.0)));
        assert_eq!(quantised(SATURATION, 0.0), 0);
        // a heavier rival with the other weak letter still costs something
        assert!(quantised(SATURATION, 2.0 * SATURATION) > 0);
        assert_eq!(quantised(SATURATION, SATURATION / 2.0), 0);
        assert_eq!(c("كت"), 0.0); // only three- and four-letter roots are scored
    }

    #[test]
    fn keys_tell_letters_and_order_apart() {
        let k = |s: &str| key(&s.chars().collect::<Vec<_>>());
        assert_ne!(k("عين"), k("عون"));
        assert_ne!(k("علم"), k("لمع"));
        assert!(k("ييي") < 1 << 18);
    }
}
