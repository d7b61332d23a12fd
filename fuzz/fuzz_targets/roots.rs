//! Root extractors on arbitrary text: every script's analyser, the Arabic
//! candidate ranking and the cross-script transliteration must return (a root
//! of 2–4 consonants or nothing) for any string, never panic or loop.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use xlt_core::roots::{self, arabic, inventory, Family};

fuzz_target!(|data: &[u8]| {
    common::one_thread();
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let family = [
        Family::Arabic,
        Family::Hebrew,
        Family::Geez,
        Family::Maltese,
    ][sel as usize % 4];
    for word in text.split_whitespace().take(64) {
        if let Some(r) = roots::extract(word, family) {
            let n = r.chars().count() - r.matches("għ").count();
            assert!((2..=4).contains(&n), "{word:?} -> {r:?}");
            inventory::transliterate_root(&r);
        }
        if family == Family::Arabic {
            for (c, cost) in arabic::candidates(word, 1.0) {
                assert!(
                    cost.is_finite() && !c.is_empty(),
                    "{word:?} -> {c:?} {cost}"
                );
            }
        }
    }
    inventory::transliterate(&text);
    let words: Vec<&str> = text.split_whitespace().take(64).collect();
    let all = roots::extract_all(&words, family);
    assert_eq!(all.len(), words.len());
});
