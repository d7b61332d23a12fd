//! Hebrew (and Biblical Aramaic spelling): niqqud and final forms folded,
//! clitics (ו ה ב כ ל מ ש), binyan prefixes (נ, ה, הת, מ, ת), inflection,
//! matres lectionis inside the stem, and weak (ל״ה, פ״י/פ״נ, ע״ו) and
//! geminate restoration. Roots are spelled with a final letter form, with
//! ו/י kept in hollow roots (as dictionaries write them).
use std::sync::LazyLock;

use super::engine::{self, Lang, Weak};

// Affix kinds are not constrained in Hebrew: clitics and inflection combine freely.
fn compatible(_: u8, _: u8) -> bool {
    true
}

const PREFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("ו", 1.0, 0),
    ("ה", 0.8, 0),
    ("ב", 1.1, 0),
    ("כ", 1.3, 0),
    ("ל", 1.1, 0),
    ("מ", 0.8, 0),
    ("ש", 1.3, 0),
    ("ת", 0.9, 0),
    ("נ", 1.0, 0),
    ("א", 1.5, 0),
    ("י", 1.1, 0),
    ("הת", 0.8, 0),
    ("מת", 0.9, 0),
    ("וה", 1.3, 0),
    ("וב", 1.5, 0),
    ("ול", 1.5, 0),
    ("ומ", 1.4, 0),
    ("וי", 1.3, 0),
    ("ות", 1.5, 0),
    ("שה", 1.6, 0),
    ("מה", 1.5, 0),
    ("לה", 1.5, 0),
    ("בה", 1.6, 0),
    ("כש", 1.8, 0),
    ("שמ", 1.8, 0),
];

const SUFFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("ה", 0.5, 0),
    ("ים", 0.5, 0),
    ("ות", 0.5, 0),
    ("ית", 0.7, 0),
    ("י", 0.9, 0),
    ("ת", 0.9, 0),
    ("ון", 0.7, 0),
    ("ן", 1.0, 0),
    ("וני", 1.0, 0),
    ("ני", 1.4, 0),
    ("נו", 1.2, 0),
    ("כם", 1.4, 0),
    ("הם", 1.3, 0),
    ("יה", 1.2, 0),
    ("יו", 1.2, 0),
    ("תי", 1.2, 0),
    ("תם", 1.4, 0),
    ("ו", 1.2, 0),
    ("יות", 0.9, 0),
    ("יים", 1.0, 0),
    ("תה", 1.2, 0),
    ("א", 1.0, 0),
    ("ין", 1.0, 0),
    ("ם", 1.5, 0),
];

const PATTERNS: &[(&str, f32)] = &[
    ("CCC", 0.0),
    ("CC", 1.0),
    ("CCCC", 1.3),
    ("CCוC", 0.6),
    ("CCיC", 0.6),
    ("CוCC", 0.9),
    ("CיCC", 1.3),
    ("CCוCC", 1.8),
    ("CוCיC", 1.5),
    ("וCC<", 0.3),
];

fn fold_final(c: char) -> char {
    match c {
        'ך' => 'כ',
        'ם' => 'מ',
        'ן' => 'נ',
        'ף' => 'פ',
        'ץ' => 'צ',
        c => c,
    }
}

fn final_form(c: char) -> char {
    match c {
        'כ' => 'ך',
        'מ' => 'ם',
        'נ' => 'ן',
        'פ' => 'ף',
        'צ' => 'ץ',
        c => c,
    }
}

fn is_servile(c: char) -> bool {
    matches!(
        c,
        'א' | 'י' | 'ת' | 'נ' | 'מ' | 'ש' | 'ה' | 'ו' | 'כ' | 'ל' | 'ב'
    )
}

fn root_cost(r: &[char]) -> f32 {
    let mut cost = 0.0;
    for (i, &c) in r.iter().enumerate() {
        if is_servile(c) {
            cost += 0.1;
        }
        match (i, c) {
            (0, 'ו') => cost += 1.0,
            (0, 'מ') => cost += 0.5,
            (0, 'ת') => cost += 0.4,
            (0, 'ה') => cost += 0.3,
            _ => {}
        }
    }
    if r.len() >= 2 && r[0] == r[1] {
        cost += 2.0;
    }
    let weak = r.iter().filter(|c| matches!(c, 'ו' | 'י')).count();
    if weak >= 2 {
        cost += 0.7 * (weak - 1) as f32;
    }
    cost
}

fn restore(r: &[char; 2], weak: Weak, prefix: Option<u8>, suffix: Option<u8>) -> engine::Restored {
    let [a, b] = *r;
    let prefixed = prefix.is_some();
    if weak == Weak::Initial {
        return [
            Some((['י', a, b], 0.0)),
            Some((['נ', a, b], 0.4)),
            None,
            None,
            None,
            None,
        ];
    }
    let lamed_he = if suffix.is_some() { 0.2 } else { 0.8 };
    let initial = if prefixed { 0.5 } else { 1.3 };
    [
        Some(([a, b, 'ה'], lamed_he)),
        Some(([a, b, b], 0.4)),
        Some(([a, 'ו', b], 0.7)),
        Some((['י', a, b], initial)),
        Some((['נ', a, b], initial + 0.2)),
        None,
    ]
}

static LANG: LazyLock<Lang> = LazyLock::new(|| {
    let folded: Vec<(String, f32, u8)> = SUFFIXES
        .iter()
        .map(|(s, c, k)| (s.chars().map(fold_final).collect(), *c, *k))
        .collect();
    let suffixes: Vec<(&str, f32, u8)> = folded
        .iter()
        .map(|(s, c, k)| (s.as_str(), *c, *k))
        .collect();
    Lang {
        prefixes: engine::prefixes(PREFIXES),
        suffixes: engine::suffixes(&suffixes),
        patterns: engine::patterns(PATTERNS),
        verbal_prefix: None,
        weak_letters: &[],
        root_cost,
        restore,
        compatible,
        min_prefix: |_| 0,
    }
});

/// Function words: no root.
const FUNCTION_WORDS: &[&str] = &[
    "את",
    "של",
    "על",
    "אל",
    "כי",
    "אם",
    "לא",
    "גם",
    "רק",
    "זה",
    "זו",
    "זאת",
    "הוא",
    "היא",
    "הם",
    "הן",
    "אני",
    "אנחנו",
    "אתם",
    "או",
    "אך",
    "מן",
    "עד",
    "כמו",
    "אין",
    "שם",
    "פה",
    "כאן",
    "מה",
    "מי",
    "איך",
    "למה",
    "כך",
    "אז",
    "אותו",
    "אותה",
    "אותם",
    "לו",
    "לה",
    "להם",
    "בו",
    "בה",
    "בהם",
    "ממנו",
    "ממנה",
    "שלו",
    "שלה",
    "שלהם",
    "אף",
];

/// Strip niqqud, cantillation and shin/sin dots, fold final forms; a maqaf
/// compound keeps its longest part. None if a character is not a Hebrew letter.
pub fn normalise(word: &str) -> Option<Vec<char>> {
    let part = word
        .split(['\u{5BE}', '-'])
        .max_by_key(|p| p.chars().count())?;
    let mut out = Vec::with_capacity(part.len() / 2);
    for c in part.chars() {
        match c {
            '\u{591}'..='\u{5C7}' | '\u{5F3}' | '\u{5F4}' | '\'' | '"' => {}
            'א'..='ת' => out.push(fold_final(c)),
            _ => return None,
        }
    }
    Some(out)
}

/// Reduplicated stems (pilpel: גלגל, הפכפך) keep one copy of the repeated pair,
/// a geminate ABAB keeps ABB.
fn unreduplicate(mut w: Vec<char>) -> Vec<char> {
    let n = w.len();
    if n >= 5 && w[n - 2..] == w[n - 4..n - 2] {
        w.truncate(n - 2);
    } else if n == 4 && w[..2] == w[2..] {
        w[2] = w[1];
        w.truncate(3);
    }
    w
}

/// The root of one Hebrew word, or None.
pub fn root(word: &str) -> Option<String> {
    let w = normalise(word)?;
    if w.len() < 2 {
        return None;
    }
    if FUNCTION_WORDS
        .iter()
        .any(|f| f.chars().map(fold_final).eq(w.iter().copied()))
    {
        return None;
    }
    let w = unreduplicate(w);
    let (mut r, _) = engine::analyse(&w, &LANG)?;
    // ל״ה roots are written with a final ה: a stem-final י/ו after two strong radicals is one.
    if let [.., x, last] = r[..] {
        if r.len() == 3 && matches!(last, 'י' | 'ו') && !matches!(x, 'י' | 'ו') {
            *r.last_mut()? = 'ה';
        }
    }
    let n = r.len();
    Some(
        r.iter()
            .enumerate()
            .map(|(i, &c)| if i + 1 == n { final_form(c) } else { c })
            .collect(),
    )
}
