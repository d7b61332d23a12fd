//! Amharic and Tigrinya in Ge'ez script: each syllable is decomposed into its
//! consonant (the row's first-order letter) and vowel order; clitics and
//! inflectional affixes are stripped at the consonant level, and the
//! remaining consonant skeleton (vowels are not radicals) is the root.
//! Gemination is not written in the script, so geminate roots show two letters.
use std::sync::LazyLock;

use super::engine::{self, Lang, Weak};

fn compatible(_: u8, _: u8) -> bool {
    true
}

// Consonant-level affixes (first-order letters stand for the whole row).
const PREFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("የ", 0.6, 0), // of (Amharic) / imperfect 3m
    ("በ", 0.7, 0),
    ("ለ", 0.7, 0),
    ("ከ", 0.8, 0),
    ("ተ", 0.8, 0), // passive
    ("አ", 0.7, 0), // causative / 1sg / vowel onset
    ("ተ", 0.8, 0),
    ("ነ", 1.0, 0),
    ("መ", 0.8, 0), // infinitive / agent nouns
    ("ሰ", 1.2, 0),
    ("ዘ", 0.9, 0), // Tigrinya relative
    ("ከ", 0.9, 0),
    ("ነበ", 1.2, 0),
    ("ሰለ", 1.0, 0),
    ("አነደ", 0.9, 0),
    ("የመ", 1.0, 0),
    ("አሰ", 1.1, 0),
    ("አበ", 1.0, 0),
    ("ከበ", 1.1, 0),
    ("መሰ", 1.2, 0),
];

const SUFFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("ቸ", 0.3, 0), // plural -och
    ("ነ", 0.7, 0), // accusative
    ("ወ", 0.8, 0), // definite -u/-w
    ("መ", 0.9, 0),
    ("ተ", 0.8, 0),
    ("ነተ", 0.7, 0), // abstract -nät
    ("ተተ", 0.8, 0), // Tigrinya plural -tat
    ("ቸነ", 0.9, 0),
    ("ቸወ", 0.9, 0),
    ("ኘ", 1.0, 0),
    ("ሀ", 1.1, 0),
    ("ሸ", 1.1, 0),
    ("ለ", 0.5, 0), // imperfect auxiliary -al
    ("ከ", 1.1, 0),
    ("ወየ", 1.2, 0),
    ("የ", 1.1, 0),
];

const PATTERNS: &[(&str, f32)] = &[("CCC", 0.0), ("CC", 0.4), ("CCCC", 1.2)];

fn root_cost(r: &[char]) -> f32 {
    r.iter().filter(|&&c| matches!(c, 'አ' | 'ወ' | 'የ')).count() as f32 * 0.2
}

fn restore(r: &[char; 2], _: Weak, _: Option<u8>, _: Option<u8>) -> engine::Restored {
    // Unwritten gemination: a two-consonant stem is a geminate root.
    [
        Some(([r[0], r[1], r[1]], 0.5)),
        None,
        None,
        None,
        None,
        None,
    ]
}

static LANG: LazyLock<Lang> = LazyLock::new(|| Lang {
    prefixes: engine::prefixes(PREFIXES),
    suffixes: engine::suffixes(SUFFIXES),
    patterns: engine::patterns(PATTERNS),
    verbal_prefix: None,
    weak_letters: &[],
    root_cost,
    restore,
    compatible,
    min_prefix: |_| 0,
});

/// The first-order letter of a syllable's row and its vowel order.
pub fn decompose(c: char) -> Option<(char, u8)> {
    let cp = c as u32;
    if !(0x1200..0x1358).contains(&cp) {
        return None;
    }
    let off = cp - 0x1200;
    Some((char::from_u32(0x1200 + off / 8 * 8)?, (off % 8) as u8))
}

/// The root of one Amharic/Tigrinya word, or None.
pub fn root(word: &str) -> Option<String> {
    let mut w = Vec::with_capacity(word.len() / 3);
    let mut orders = Vec::with_capacity(word.len() / 3);
    for c in word.chars() {
        let (base, order) = decompose(c)?;
        w.push(base);
        orders.push(order);
    }
    // Amharic plural -och: an o-order syllable followed by ች.
    let n = w.len();
    if n >= 3 && word.ends_with('ች') && orders[n - 2] == 6 {
        w.pop();
    }
    if w.len() < 2 {
        return None;
    }
    let (mut r, _) = engine::analyse(&w, &LANG)?;
    if r.len() == 3 && r[1] == r[2] {
        r.truncate(2); // restored gemination is not written in this script
    }
    Some(r.into_iter().collect())
}
