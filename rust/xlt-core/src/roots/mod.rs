//! Consonantal roots of Semitic words, rule- and pattern-based, one analyser
//! per script: Arabic (`arabic`), Hebrew (`hebrew`), Ge'ez-script Amharic and
//! Tigrinya (`geez`), Maltese (`maltese`); Arabic's affix and template tables
//! are `arabic_templates`, its closed classes `arabic_closed`. `inventory` maps
//! every script's consonants onto one shared symbol set so roots compare across scripts;
//! `attested` scores Arabic roots by how often unlabeled text attests them.
use rayon::prelude::*;

pub mod arabic;
mod arabic_closed;
mod arabic_templates;
mod attested;
mod engine;
pub mod geez;
pub mod hebrew;
pub mod inventory;
pub mod maltese;

/// Which analyser to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Arabic,
    Hebrew,
    Geez,
    Maltese,
}

impl Family {
    pub const NAMES: [&'static str; 4] = ["arabic", "hebrew", "geez", "maltese"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "arabic" => Family::Arabic,
            "hebrew" => Family::Hebrew,
            "geez" => Family::Geez,
            "maltese" => Family::Maltese,
            _ => return None,
        })
    }
}

/// The root of one word in its own script (2–4 letters), or None.
pub fn extract(word: &str, family: Family) -> Option<String> {
    let r = match family {
        Family::Arabic => arabic::root(word),
        Family::Hebrew => hebrew::root(word),
        Family::Geez => geez::root(word),
        Family::Maltese => maltese::root(word),
    }?;
    let n = r.chars().count() - r.matches("għ").count();
    (2..=4).contains(&n).then_some(r)
}

/// Roots of many words, in parallel.
pub fn extract_all<S: AsRef<str> + Sync>(words: &[S], family: Family) -> Vec<Option<String>> {
    words
        .par_iter()
        .with_min_len(256)
        .map(|w| extract(w.as_ref(), family))
        .collect()
}
