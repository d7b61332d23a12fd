//! Criterion bench of the neuron-statistics kernel: 4,096 bf16 tokens × 8
//! layers × 1,024 units, 10 groups, tokens in runs of 64 (items of one
//! language) and in random order.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array1, Array3};
use xlt_core::neurons::{Block3, NeuronStats};

fn bench(c: &mut Criterion) {
    let (t, l, h, g) = (4096usize, 8usize, 1024usize, 10usize);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // bf16 bits of values in about ±4 (exponents 120..129, random mantissa and sign)
    let x = Array3::from_shape_fn((t, l, h), |_| {
        let r = next();
        (((r & 1) << 15) | ((120 + (r >> 8) % 10) << 7) | ((r >> 20) & 0x7F)) as u16
    });
    let mut grp = c.benchmark_group("neurons");
    grp.throughput(Throughput::Bytes((t * l * h * 2) as u64));
    grp.sample_size(10);
    for (name, group) in [
        (
            "runs64",
            Array1::from_shape_fn(t, |i| ((i / 64) % g) as i32),
        ),
        (
            "random",
            Array1::from_shape_fn(t, |_| (next() % g as u64) as i32),
        ),
    ] {
        grp.bench_function(format!("bf16_4096x8x1024_{name}"), |b| {
            let mut acc = NeuronStats::new(g, l, h);
            b.iter(|| acc.update(Block3::BF16(x.view()), group.view()).unwrap())
        });
    }
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
