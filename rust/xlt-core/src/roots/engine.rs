//! The analyser shared by the abjad scripts (Arabic, Hebrew): enumerate
//! prefix × stem × suffix splits, match the stem against pattern templates
//! (`C` marks a radical, other letters are fixed), restore weak or geminate
//! radicals of two-radical results, and keep the cheapest analysis.
//! Costs encode linguistic plausibility (common affixes and patterns are
//! cheap, stripping letters that are usually radicals is dear).

/// One pattern with its cost.
pub type Entry = (&'static str, f32);
/// One affix with its cost and kind (the language's compatibility classes).
pub type Affix = (Vec<char>, f32, u8);

/// A compiled template: letters (`None` = radical slot) and cost.
#[derive(Debug, Clone)]
pub struct Pattern {
    slots: Vec<Option<char>>,
    cost: f32,
    /// Two-radical templates name how the missing radical is restored.
    weak: Weak,
}

/// Where a two-radical stem gets its third radical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weak {
    /// Any restoration the language allows (scored by `Lang::restore`).
    Any,
    /// Middle radical (hollow roots: و / ו).
    Hollow,
    /// First radical (assimilated roots: و / י, or Hebrew נ).
    Initial,
    /// Last radical (defective roots: ي / ה).
    Final,
}

/// Everything language-specific the engine needs.
pub struct Lang {
    pub prefixes: Vec<Affix>,
    pub suffixes: Vec<Affix>,
    /// Patterns indexed by stem length.
    pub patterns: Vec<Vec<Pattern>>,
    /// Penalty of a radical sequence (implausible letters, identical C1=C2, ...).
    pub root_cost: fn(&[char]) -> f32,
    /// Candidate three-radical roots for two radicals, with their costs
    /// (given the restoration hint and whether a prefix / a suffix was stripped).
    pub restore: fn(&[char; 2], Weak, bool, bool) -> Vec<([char; 3], f32)>,
    /// May a prefix and a suffix of these kinds go together?
    pub compatible: fn(u8, u8) -> bool,
}

/// Compile affix lists (strings) into char vectors.
pub fn affixes(list: &[(&str, f32, u8)]) -> Vec<Affix> {
    list.iter()
        .map(|(s, c, k)| (s.chars().collect(), *c, *k))
        .collect()
}

/// Compile templates: `C` = radical; a trailing `<`, `-`, `>` on the template
/// marks a two-radical one as initial-, hollow- or final-weak.
pub fn patterns(list: &[Entry]) -> Vec<Vec<Pattern>> {
    let mut out: Vec<Vec<Pattern>> = vec![Vec::new(); 12];
    for (t, cost) in list {
        let mut weak = Weak::Any;
        let mut slots = Vec::new();
        for ch in t.chars() {
            match ch {
                'C' => slots.push(None),
                '<' => weak = Weak::Initial,
                '-' => weak = Weak::Hollow,
                '>' => weak = Weak::Final,
                c => slots.push(Some(c)),
            }
        }
        let n = slots.len();
        out[n].push(Pattern {
            slots,
            cost: *cost,
            weak,
        });
    }
    out
}

/// The cheapest root of `w` (already normalised) and its cost.
pub fn analyse(w: &[char], lang: &Lang) -> Option<(Vec<char>, f32)> {
    let mut best: Option<(Vec<char>, f32)> = None;
    let mut radicals: Vec<char> = Vec::with_capacity(8);
    // Suffixes of the whole word, found once (a suffix of `rest` is one of `w`).
    let suffixes: Vec<&Affix> = lang.suffixes.iter().filter(|a| w.ends_with(&a.0)).collect();
    for (p, pc, pk) in &lang.prefixes {
        if w.len() < p.len() + 2 || !w.starts_with(p) {
            continue;
        }
        let rest = &w[p.len()..];
        for (s, sc, sk) in suffixes.iter().map(|a| (&a.0, &a.1, &a.2)) {
            if rest.len() < s.len() + 2 || !(lang.compatible)(*pk, *sk) {
                continue;
            }
            let base = pc + sc;
            if best.as_ref().is_some_and(|b| base >= b.1) {
                continue;
            }
            let stem = &rest[..rest.len() - s.len()];
            let Some(pats) = lang.patterns.get(stem.len()) else {
                continue;
            };
            for pat in pats {
                let cost = base + pat.cost;
                if best.as_ref().is_some_and(|b| cost >= b.1) {
                    continue;
                }
                radicals.clear();
                let ok = pat.slots.iter().zip(stem).all(|(slot, &ch)| match slot {
                    Some(f) => *f == ch,
                    None => {
                        radicals.push(ch);
                        true
                    }
                });
                if !ok {
                    continue;
                }
                consider(
                    &radicals,
                    pat.weak,
                    (!p.is_empty(), !s.is_empty()),
                    cost,
                    lang,
                    &mut best,
                );
            }
        }
    }
    best
}

fn consider(
    r: &[char],
    weak: Weak,
    affixed: (bool, bool),
    cost: f32,
    lang: &Lang,
    best: &mut Option<(Vec<char>, f32)>,
) {
    let mut offer = |root: &[char], c: f32| {
        let total = c + (lang.root_cost)(root);
        if best.as_ref().is_none_or(|b| total < b.1) {
            *best = Some((root.to_vec(), total));
        }
    };
    match r.len() {
        2 => {
            for (root, c) in (lang.restore)(&[r[0], r[1]], weak, affixed.0, affixed.1) {
                offer(&root, cost + c);
            }
        }
        3 | 4 => offer(r, cost),
        _ => {}
    }
}
