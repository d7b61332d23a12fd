//! The routing accumulator on arbitrary chunks: any indices (negative, out of
//! range), any weights and router probabilities (NaN, inf, negative, zero
//! rows), any groups and item ids, chunks of any length. Each update either
//! counts the chunk or fails with an error (counting nothing, or leaving an
//! accumulator that says it is incomplete); merge, parts/from_parts and the profile never panic.
#![no_main]
mod common;
use half::f16;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use xlt_core::routing::{Chunk, Indices, RoutingAccumulator, Thresholds, Values};

#[derive(Arbitrary, Debug)]
struct Part {
    tokens: u8,
    idx: Vec<i16>,
    weight: Vec<u16>,
    prob: Option<Vec<u16>>,
    group: Vec<i8>,
    item: Vec<i8>,
    wide: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    dims: (u8, u8, u8, u8),
    items: bool,
    reference: Option<u8>,
    parts: Vec<Part>,
    th: (f32, f32, f32),
}

/// `v` cycled to length `n` (empty stays empty: a shape error).
fn fit<T: Copy>(v: &[T], n: usize) -> Vec<T> {
    v.iter()
        .copied()
        .cycle()
        .take(if v.is_empty() { 0 } else { n })
        .collect()
}

fuzz_target!(|inp: Input| {
    common::one_thread();
    let (g, l, e, k) = inp.dims;
    let (g, l, e, k) = (
        g as usize % 5,
        l as usize % 4,
        e as usize % 9,
        k as usize % 4,
    );
    let Ok(mut acc) = RoutingAccumulator::new(g, l, e, k, inp.items) else {
        return;
    };
    let mut other = acc.clone();
    for (i, p) in inp.parts.iter().take(6).enumerate() {
        let t = p.tokens as usize % 40;
        let idx = fit(&p.idx, t * l * k);
        let idx32: Vec<i32> = idx.iter().map(|&x| x as i32).collect();
        let weight: Vec<f16> = fit(&p.weight, t * l * k)
            .into_iter()
            .map(f16::from_bits)
            .collect();
        let w32: Vec<f32> = weight.iter().map(|x| x.to_f32()).collect();
        let prob: Option<Vec<f16>> = p
            .prob
            .as_ref()
            .map(|v| fit(v, t * l * e).into_iter().map(f16::from_bits).collect());
        let group: Vec<i32> = fit(&p.group, t).into_iter().map(|x| x as i32 % 6).collect();
        let item: Vec<i64> = fit(&p.item, t).into_iter().map(|x| x as i64 % 3).collect();
        let chunk = Chunk {
            idx: if p.wide {
                Indices::I32(&idx32)
            } else {
                Indices::I16(&idx)
            },
            weight: if p.wide {
                Values::F32(&w32)
            } else {
                Values::F16(&weight)
            },
            prob: prob.as_deref().map(Values::F16),
            group: &group,
            item: (inp.items != (i == 3)).then_some(&item[..]),
        };
        let target = if i % 2 == 0 { &mut acc } else { &mut other };
        let before = target.parts().expect("usable so far");
        if target.update(&chunk).is_err() {
            // refused whole (counts unchanged) or poisoned (every later call says so)
            if let Ok(after) = target.parts() {
                assert_eq!(after, before, "a refused chunk was half-counted");
            }
            return;
        }
    }
    acc.merge(&other).expect("same dimensions merge");
    let parts = acc.parts().expect("usable");
    let back =
        RoutingAccumulator::from_parts(l, e, k, inp.items, parts.clone()).expect("own parts");
    assert_eq!(back.parts().unwrap(), parts);
    let th = Thresholds {
        min_lift: inp.th.0 as f64,
        min_usage: inp.th.1 as f64,
        min_specificity: inp.th.2 as f64,
    };
    if let Ok(p) = acc.profile(inp.reference.map(|r| r as usize % 6), &th) {
        for v in p.usage.iter().chain(&p.usage_entropy).chain(&p.never_used) {
            assert!(v.is_nan() || (-1e-9..=1.0 + 1e-9).contains(v), "{v}");
        }
    }
});
