//! Maltese: Latin script with ħ, għ, q, x, ż, ċ. Articles and apostrophe
//! clitics are cut off, the word is reduced to its consonant skeleton (għ as
//! one consonant, vowels dropped), then verbal prefixes (imperfect n/t/j,
//! participle m, Forms V/X t/st) and suffixes (pronouns, plural -iet/-ijiet,
//! -a/-ija) are stripped at the consonant level.
use std::sync::LazyLock;

use super::engine::{self, Lang, Weak};

fn compatible(_: u8, _: u8) -> bool {
    true
}

const PREFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("n", 0.8, 0),
    ("t", 0.8, 0),
    ("j", 0.6, 0),
    ("m", 0.8, 0),
    ("st", 1.0, 0),
    ("nt", 1.2, 0),
    ("jt", 1.1, 0),
    ("mt", 1.2, 0),
];

const SUFFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("n", 0.9, 0),
    ("hm", 0.8, 0),
    ("h", 1.0, 0),
    ("t", 0.8, 0),
    ("k", 1.0, 0),
    ("km", 0.9, 0),
    ("x", 1.0, 0),
    ("jt", 0.8, 0),
    ("l", 1.2, 0),
    ("lh", 1.1, 0),
    ("lhm", 1.0, 0),
    ("j", 1.0, 0),
];

const PATTERNS: &[(&str, f32)] = &[("CCC", 0.0), ("CC", 1.0), ("CCCC", 1.0)];

fn root_cost(r: &[char]) -> f32 {
    r.iter()
        .filter(|&&c| matches!(c, 'j' | 'w' | 'n' | 't' | 'm'))
        .count() as f32
        * 0.15
}

fn restore(r: &[char; 2], _: Weak, _: Option<u8>, _: Option<u8>) -> engine::Restored {
    [
        Some(([r[0], 'w', r[1]], 0.6)),
        Some(([r[0], r[1], 'j'], 0.8)),
        Some(([r[0], r[1], r[1]], 0.7)),
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

/// Function words: articles, prepositions, pronouns, particles.
const FUNCTION_WORDS: &[&str] = &[
    "il", "l", "u", "jew", "ta", "fi", "fil", "fuq", "minn", "mill", "lil", "li", "bil", "sa",
    "ma", "mhux", "hu", "hi", "huma", "jien", "aħna", "int", "intom", "dan", "din", "dawn", "dak",
    "dik", "dawk", "kif", "meta", "fejn", "għal", "għall", "ukoll", "biex", "imma", "iżda", "kien",
    "kienet", "kienu", "hemm", "hawn", "wara", "qabel", "bejn", "kull", "xi", "anke", "jekk",
    "wkoll", "lill", "mal", "ma'", "ta'", "bħal", "tal", "tas", "tat", "tad",
];

/// The root of one Maltese word, or None.
pub fn root(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    let part = lower.rsplit(['-', '\'', '’']).next()?;
    if part.is_empty() || FUNCTION_WORDS.contains(&part) || FUNCTION_WORDS.contains(&lower.as_str())
    {
        return None;
    }
    let mut w = Vec::with_capacity(part.len());
    let mut chars = part.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'a' | 'e' | 'i' | 'o' | 'u' | 'à' | 'è' | 'ì' | 'ò' | 'ù' => {}
            'g' if chars.peek() == Some(&'ħ') => {
                chars.next();
                w.push('ʕ');
            }
            'b'..='z' | 'ħ' | 'ż' | 'ċ' | 'ġ' => w.push(c),
            _ => return None,
        }
    }
    if w.len() < 2 {
        return None;
    }
    let (mut r, _) = engine::analyse(&w, &LANG)?;
    r.dedup_by(|a, b| a == b && *a != 'ʕ');
    let s: String = r
        .into_iter()
        .map(|c| {
            if c == 'ʕ' {
                "għ".to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    Some(s)
}
