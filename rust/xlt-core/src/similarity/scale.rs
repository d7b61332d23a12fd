//! Scale-invariant measures at any finite scale. Products run in f32, whose
//! range (2^±126) a matrix near the ends of its own range leaves behind:
//! 1e19·X overflows its squares, 1e-30·X underflows them. A matrix whose
//! largest |value| lies outside [2^-SAFE, 2^SAFE] is read through a copy
//! multiplied by a power of two (exact) that brings it to [0.5, 1); every
//! measure here (CKA, RSA, CCA, Procrustes, retrieval) is invariant to that
//! factor, and the common case costs one read-only pass.
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::Result;
use crate::matrix::Mat;

/// Largest |value| (as a power of two) used without rescaling. The Gram route squares
/// Gram entries (~ d·x²) in f32, so 2^40 overflowed (hypothesis: n = 8, d = 24, 1e10·X
/// gave 0); at 2^16 x⁴·d²·n² stays below f32's range for any shape that route takes.
const SAFE: i32 = 16;

/// Largest |value| of `m`, or +inf if any value is NaN or inf.
pub(crate) fn max_abs(m: &Mat) -> f32 {
    fn of<T: Copy + Sync>(a: &ArrayView2<T>, f: impl Fn(T) -> f32 + Sync) -> f32 {
        a.outer_iter()
            .into_par_iter()
            .with_min_len(64)
            .map(|row| match row.as_slice() {
                Some(r) => slice_max(r, &f),
                None => slice_max(&row.to_vec(), &f),
            })
            .reduce(|| 0.0, f32::max)
    }
    match m {
        Mat::F32(a) => of(a, |v| v),
        Mat::F16(a) => widened(a),
        Mat::BF16(a) => of(a, |v| bf16::from_bits(v).to_f32()),
    }
}

/// [`max_abs`] of f16 rows, each widened in one vectorised pass first
/// (converting value by value costs several times more).
fn widened(a: &ArrayView2<f16>) -> f32 {
    a.outer_iter()
        .into_par_iter()
        .with_min_len(64)
        .map_init(
            || vec![0.0f32; a.ncols()],
            |w, row| {
                match row.as_slice() {
                    Some(r) => r.convert_to_f32_slice(w),
                    None => w.iter_mut().zip(row).for_each(|(w, v)| *w = v.to_f32()),
                }
                slice_max(w, &|v| v)
            },
        )
        .reduce(|| 0.0, f32::max)
}

/// Largest |f(v)| over `r`, or +inf for a NaN or inf: sixteen lanes of
/// maxima and of `v·0` (0 for finite values, NaN otherwise), no branches, so
/// it vectorises (a memory-bound pass).
fn slice_max<T: Copy>(r: &[T], f: &impl Fn(T) -> f32) -> f32 {
    let (mut lanes, mut zero) = ([0.0f32; 16], [0.0f32; 16]);
    let mut it = r.chunks_exact(16);
    for c in &mut it {
        for ((l, z), &v) in lanes.iter_mut().zip(zero.iter_mut()).zip(c) {
            let v = f(v);
            *z += v * 0.0;
            *l = l.max(v.abs());
        }
    }
    for &v in it.remainder() {
        let v = f(v);
        zero[0] += v * 0.0;
        lanes[0] = lanes[0].max(v.abs());
    }
    if zero.iter().all(|&z| z == 0.0) {
        lanes.iter().fold(0.0f32, |a, &b| a.max(b))
    } else {
        f32::INFINITY
    }
}

/// The power of two that brings `max` (finite, > 0) into [0.5, 1), when it
/// lies outside [2^-SAFE, 2^SAFE]; None otherwise.
fn exponent(max: f32) -> Option<i32> {
    let e = (max as f64).log2().floor() as i32 + 1;
    (max > 0.0 && !(-SAFE..=SAFE).contains(&e)).then_some(-e)
}

/// `m` times 2^e, as an f32 copy (f64 in between, so the product is exact).
fn times_pow2(m: &Mat, e: i32) -> Array2<f32> {
    let k = 2f64.powi(e);
    match m {
        Mat::F32(a) => a.mapv(|v| (v as f64 * k) as f32),
        Mat::F16(a) => a.mapv(|v: f16| (v.to_f64() * k) as f32),
        Mat::BF16(a) => a.mapv(|v| (bf16::from_bits(v).to_f64() * k) as f32),
    }
}

/// The rescaled copy of `m` if it needs one (see the module docs); NaN or
/// inf is a `Data` error naming the first row that holds one.
fn unit_copy(m: &Mat, name: &str) -> Result<Option<Array2<f32>>> {
    let max = max_abs(m);
    if !max.is_finite() {
        for (s, e) in m.blocks(super::blocks::BLOCK_ROWS) {
            super::blocks::decode(m, s, e, None, name)?;
        }
    }
    Ok(exponent(max).map(|e| times_pow2(m, e)))
}

/// Run `f` on `mats`, each replaced by its rescaled copy where it needs one.
pub(crate) fn at_unit_scale<R>(
    mats: &[Mat],
    names: &[String],
    f: impl FnOnce(&[Mat]) -> Result<R>,
) -> Result<R> {
    let copies: Vec<Option<Array2<f32>>> = mats
        .par_iter()
        .enumerate()
        .map(|(i, m)| unit_copy(m, names.get(i).map_or("a matrix", |s| s.as_str())))
        .collect::<Result<_>>()?;
    /// A copy's view, or the matrix re-viewed (views are invariant in their lifetime).
    fn pick<'b>(m: &'b Mat, c: &'b Option<Array2<f32>>) -> Mat<'b> {
        match (c, m) {
            (Some(c), _) => Mat::F32(c.view()),
            (None, Mat::F32(a)) => Mat::F32(a.view()),
            (None, Mat::F16(a)) => Mat::F16(a.view()),
            (None, Mat::BF16(a)) => Mat::BF16(a.view()),
        }
    }
    let views: Vec<Mat> = mats.iter().zip(&copies).map(|(m, c)| pick(m, c)).collect();
    f(&views)
}

/// [`at_unit_scale`] for a pair (X, Y).
pub(crate) fn pair_at_unit_scale<'a, R>(
    x: &Mat<'a>,
    y: &Mat<'a>,
    f: impl FnOnce(&Mat, &Mat) -> Result<R>,
) -> Result<R> {
    at_unit_scale(&[*x, *y], &["X".into(), "Y".into()], |m| f(&m[0], &m[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn exponent_brings_extremes_to_half_one_and_leaves_the_rest() {
        assert_eq!(exponent(1.0), None);
        assert_eq!(exponent(3e4), None);
        assert_eq!(exponent(1e10), Some(-34));
        assert_eq!(exponent(1e19), Some(-64));
        assert_eq!(exponent(1e-30), Some(99));
        for max in [1e19f32, 1e-30, f32::MAX, 1e-45] {
            let m = max as f64 * 2f64.powi(exponent(max).unwrap());
            assert!((0.5..1.0).contains(&m), "{max} -> {m}");
        }
    }

    #[test]
    fn max_abs_sees_every_dtype_and_flags_non_finite() {
        let x = array![[1.0f32, -3.0], [2.0, 0.5]];
        assert_eq!(max_abs(&Mat::F32(x.view())), 3.0);
        assert_eq!(max_abs(&Mat::F32(x.t())), 3.0);
        let h = x.mapv(f16::from_f32);
        assert_eq!(max_abs(&Mat::F16(h.view())), 3.0);
        let b = x.mapv(|v| bf16::from_f32(v).to_bits());
        assert_eq!(max_abs(&Mat::BF16(b.view())), 3.0);
        let n = array![[1.0f32, f32::NAN]];
        assert_eq!(max_abs(&Mat::F32(n.view())), f32::INFINITY);
        for (at, bad) in [(20, f32::NAN), (37, f32::NEG_INFINITY), (3, 7.0)] {
            let mut v: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 0.1).collect();
            v[at] = bad;
            let want = if bad.is_finite() { 7.0 } else { f32::INFINITY };
            assert_eq!(slice_max(&v, &|x| x), want, "{at}");
        }
    }
}
