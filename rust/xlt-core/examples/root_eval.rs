// Temporary dev harness (not committed): accuracy on the gold files.
use std::fs;
use xlt_core::roots::{extract, Family};

fn norm_ar(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'أ' | 'إ' | 'آ' | 'ٱ' | 'ء' => 'ا',
            'ؤ' => 'و',
            'ئ' | 'ى' => 'ي',
            c => c,
        })
        .collect()
}
fn norm_he(s: &str) -> String {
    s.chars()
        .filter(|c| ('א'..='ת').contains(c))
        .map(|c| match c {
            'ך' => 'כ',
            'ם' => 'מ',
            'ן' => 'נ',
            'ף' => 'פ',
            'ץ' => 'צ',
            c => c,
        })
        .collect()
}
fn main() {
    let show: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(0);
    let base = "/work/shared/data/arabic_roots/";
    let mut rows = vec![];
    for f in [
        "0450AbuHasanMawardi.HawiKabir-sample.csv",
        "0460ShaykhTusi.Mabsut-sample.csv",
        "0483IbnAhmadSarakhsi.Mabsut-sample.csv",
    ] {
        for l in fs::read_to_string(format!("{base}root_extraction_validation/gs/{f}"))
            .unwrap()
            .lines()
            .skip(1)
        {
            let (w, r) = l.split_once(',').unwrap();
            if r != "#" {
                rows.push((w.to_string(), r.to_string()));
            }
        }
    }
    let mut gold = vec![];
    for l in fs::read_to_string(format!("{base}golden_corpus_arabic/word_stem_root.tsv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let v: Vec<_> = l.split('\t').collect();
        gold.push((v[0].to_string(), v[2].to_string()));
    }
    for (name, set) in [("openiti", &rows), ("golden", &gold)] {
        let mut ok = 0;
        let mut bad = vec![];
        for (w, r) in set.iter() {
            let p = extract(w, Family::Arabic)
                .map(|p| norm_ar(&p))
                .unwrap_or_default();
            if r.split('\\').any(|a| norm_ar(a) == p) {
                ok += 1
            } else {
                bad.push(format!("{w} gold={r} got={p}"))
            }
        }
        println!(
            "{name}: {:.4} ({ok}/{})",
            ok as f64 / set.len() as f64,
            set.len()
        );
        for b in bad.iter().take(show) {
            println!("  {b}")
        }
    }
    let mut ok = 0;
    let mut n = 0;
    let mut bad = vec![];
    for l in fs::read_to_string("/work/shared/data/hebrew_roots/hebrew_lemma_root.dev.tsv")
        .unwrap()
        .lines()
        .skip(1)
    {
        let v: Vec<_> = l.split('\t').collect();
        if v[7].is_empty() {
            continue;
        }
        n += 1;
        let p = extract(v[2], Family::Hebrew)
            .map(|p| norm_he(&p))
            .unwrap_or_default();
        if p == norm_he(v[7]) {
            ok += 1
        } else {
            bad.push(format!("{} gold={} got={p} {}", v[3], v[7], v[5]))
        }
    }
    println!("hebrew: {:.4} ({ok}/{n})", ok as f64 / n as f64);
    for b in bad.iter().take(show) {
        println!("  {b}")
    }
}
