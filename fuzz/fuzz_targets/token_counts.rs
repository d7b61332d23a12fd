//! Token counting on arbitrary chunks: ids, token and word spans, sentence
//! offsets in any shape and order. `update` either rejects the chunk with an
//! error or counts it; overlap of any two accumulators is in range. Never a
//! panic, abort or an allocation beyond the vocabulary limit.
#![no_main]
mod common;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use xlt_core::overlap::{TokenCounts, MAX_TOKEN_ID};

#[derive(Arbitrary, Debug)]
struct Chunk {
    ids: Vec<u32>,
    spans: Vec<(i64, i64)>,
    words: Vec<(i64, i64)>,
    offsets: Vec<i64>,
    /// Derive consistent offsets/spans instead of using the raw ones.
    tidy: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    vocab: u32,
    chunks: Vec<(bool, Chunk)>,
}

fuzz_target!(|inp: Input| {
    common::one_thread();
    // Dense tables up to MAX_TOKEN_ID (128 MB) are legal but slow to scan under
    // ASan: small vocabularies and ids, except those past the limit (refused).
    let vocab = inp.vocab as usize;
    if vocab > MAX_TOKEN_ID {
        assert!(TokenCounts::new(vocab).is_err());
    }
    let (mut a, mut b) = (
        TokenCounts::new(vocab % (1 << 16)).unwrap(),
        TokenCounts::new(0).unwrap(),
    );
    for (to_a, c) in inp.chunks.iter().take(8) {
        let ids: Vec<u32> = c
            .ids
            .iter()
            .map(|&i| {
                if i as usize >= MAX_TOKEN_ID {
                    i
                } else {
                    i % (1 << 17)
                }
            })
            .collect();
        let n = ids.len();
        let (mut ts, mut te): (Vec<i64>, Vec<i64>) = c.spans.iter().copied().unzip();
        let (mut ws, mut we): (Vec<i64>, Vec<i64>) = c.words.iter().copied().unzip();
        let mut off = c.offsets.clone();
        if c.tidy {
            ts.resize(n, 0);
            te.resize(n, 0);
            ts.sort();
            te.iter_mut().zip(&ts).for_each(|(e, s)| *e = (*e).max(*s));
            ws.sort();
            we.iter_mut()
                .zip(&ws)
                .for_each(|(e, s)| *e = (*e).max(s.saturating_add(1)));
            off.iter_mut().for_each(|o| *o = o.rem_euclid(n as i64 + 1));
            off.push(0);
            off.push(n as i64);
            off.sort();
        }
        let acc = if *to_a { &mut a } else { &mut b };
        let before = acc.tokens();
        match acc.update(&ids, (&ts, &te), (&ws, &we), &off) {
            Ok(()) => assert_eq!(acc.tokens(), before + n as u64),
            Err(_) => assert_eq!(acc.tokens(), before),
        }
    }
    if let Ok(o) = a.overlap(&b) {
        for v in [o.jaccard, o.weighted, o.js_divergence, o.coverage] {
            assert!((0.0..=1.0 + 1e-9).contains(&v), "{o:?}");
        }
    }
    a.merge(&b);
    let _ = (a.types(), a.fertility(), a.single_token_rate());
});
