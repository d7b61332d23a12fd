//! Kernel-only benchmarks of `xlt_core::similarity` (small sizes; the
//! end-to-end comparisons against numpy live in benches/bench_similarity.py).
use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use std::hint::black_box;
use xlt_core::matrix::Mat;
use xlt_core::similarity::{self as sim, Precision, RdmMetric, Route, RsaMethod};

fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut s = seed;
    Array2::from_shape_fn((n, d), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    })
}

fn kernels(c: &mut Criterion) {
    let (x, y) = (data(4000, 256, 1), data(4000, 256, 2));
    let (mx, my) = (Mat::F32(x.view()), Mat::F32(y.view()));
    c.bench_function("linear_cka 4000x256", |b| {
        b.iter(|| black_box(sim::linear_cka(&mx, &my).unwrap()))
    });
    c.bench_function("debiased_cka 4000x256", |b| {
        b.iter(|| black_box(sim::debiased_cka(&mx, &my).unwrap()))
    });
    let (xs, ys) = (data(800, 64, 3), data(800, 64, 4));
    let (sx, sy) = (Mat::F32(xs.view()), Mat::F32(ys.view()));
    c.bench_function("rsa correlation/spearman 800x64", |b| {
        b.iter(|| {
            black_box(sim::rsa(&sx, &sy, RdmMetric::Correlation, RsaMethod::Spearman).unwrap())
        })
    });
    let layers: Vec<Array2<f32>> = (0..8).map(|i| data(1500, 96, 10 + i)).collect();
    let mats: Vec<Mat> = layers.iter().map(|a| Mat::F32(a.view())).collect();
    let names: Vec<String> = (0..8).map(|i| format!("L{i}")).collect();
    for route in [Route::Feature, Route::Gram] {
        c.bench_function(&format!("pairwise 8x(1500x96) {route:?}"), |b| {
            b.iter(|| {
                black_box(sim::pairwise_stats(&mats, &names, Some(route), Precision::F32).unwrap())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = kernels
}
criterion_main!(benches);
