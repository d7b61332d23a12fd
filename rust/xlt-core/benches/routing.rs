//! Criterion bench of the routing accumulator: one chunk of 65,536 tokens ×
//! 48 MoE layers × top-8 of 128 experts (i16 indices, f16 weights), 22 groups.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use half::f16;
use xlt_core::routing::{Chunk, Indices, RoutingAccumulator, Values};

fn bench(c: &mut Criterion) {
    let (t, l, k, e, g) = (65_536usize, 48usize, 8usize, 128usize, 22usize);
    // A cheap deterministic generator: distinct experts per (token, layer).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut idx = Vec::with_capacity(t * l * k);
    for _ in 0..t * l {
        let base = (next() % e as u64) as usize;
        idx.extend((0..k).map(|j| ((base + j * (e / k)) % e) as i16));
    }
    let weight: Vec<f16> = (0..t * l * k)
        .map(|i| f16::from_f32(((i % 7) as f32 + 1.0) / 28.0))
        .collect();
    let group: Vec<i32> = (0..t).map(|i| (i * g / t) as i32).collect();
    let chunk = Chunk {
        idx: Indices::I16(&idx),
        weight: Values::F16(&weight),
        prob: None,
        group: &group,
        item: None,
    };
    let mut grp = c.benchmark_group("routing");
    grp.throughput(Throughput::Elements((t * l * k) as u64));
    grp.sample_size(10);
    grp.bench_function("update_65536x48x8_e128", |b| {
        b.iter(|| {
            let mut acc = RoutingAccumulator::new(g, l, e, k, false).unwrap();
            acc.update(&chunk).unwrap();
            acc
        })
    });
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
