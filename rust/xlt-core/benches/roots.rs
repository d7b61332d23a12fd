//! Root extraction throughput on the Arabic and Hebrew gold words (one thread).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use xlt_core::roots::{extract, Family};

fn words(file: &str, col: usize, sep: char) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/linguistic");
    let text = std::fs::read_to_string(dir.join(file)).expect("gold file");
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(sep).nth(col).map(str::to_owned))
        .collect()
}

fn bench(c: &mut Criterion) {
    let arabic: Vec<String> = [
        "arabic_roots/0450AbuHasanMawardi.HawiKabir-sample.csv",
        "arabic_roots/0460ShaykhTusi.Mabsut-sample.csv",
        "arabic_roots/0483IbnAhmadSarakhsi.Mabsut-sample.csv",
    ]
    .iter()
    .flat_map(|f| words(f, 0, ','))
    .chain(words("arabic_roots/word_stem_root.tsv", 0, '\t'))
    .collect();
    let hebrew = words("hebrew_roots/hebrew_lemma_root.dev.tsv", 0, '\t');
    let mut g = c.benchmark_group("roots");
    for (name, ws, family) in [
        ("arabic", &arabic, Family::Arabic),
        ("hebrew", &hebrew, Family::Hebrew),
    ] {
        g.throughput(Throughput::Elements(ws.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| ws.iter().filter(|w| extract(w, family).is_some()).count())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
