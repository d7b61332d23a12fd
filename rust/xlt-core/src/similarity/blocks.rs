//! Plumbing shared by the similarity measures: input checks, column means,
//! shifted f32 row blocks, and f32 block products accumulated in f64.
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self as tri, BlockStructure};
use faer::{Accum, MatRef, Par};
use ndarray::{Array2, Axis};
use rayon::prelude::*;

use crate::error::{ensure_data, ensure_shape, Result};
use crate::matrix::Mat;

/// Rows decoded and multiplied at a time: large enough for efficient GEMMs,
/// small enough that f32 sums within a block stay accurate.
pub(crate) const BLOCK_ROWS: usize = 2048;

/// Check that `x` and `y` pair rows and have at least `need` of them.
pub(crate) fn paired_rows<'a>(x: &Mat<'a>, y: &Mat<'a>, need: usize, what: &str) -> Result<usize> {
    let n = x.nrows();
    ensure_shape(n == y.nrows(), || {
        format!(
            "X has {n} rows but Y has {}; rows must be paired samples (the same items, in the same order)",
            y.nrows()
        )
    })?;
    ensure_shape(n >= need, || {
        format!("{what} needs at least {need} paired rows, got {n}; pass more samples")
    })?;
    for (m, name) in [(x, "X"), (y, "Y")] {
        ensure_shape(m.ncols() > 0, || format!("{name} has no columns"))?;
    }
    Ok(n)
}

/// Rows `start..end` of `m` as a C-ordered f32 block, minus `shift` (if any);
/// NaN or inf is a `Data` error naming the row.
pub(crate) fn decode(
    m: &Mat,
    start: usize,
    end: usize,
    shift: Option<&[f64]>,
    name: &str,
) -> Result<Array2<f32>> {
    let mut b = m.block_f32(start, end);
    let bad = b
        .axis_iter(Axis(0))
        .position(|r| r.iter().any(|v| !v.is_finite()));
    ensure_data(bad.is_none(), || {
        format!(
            "{name} contains NaN or inf (first in row {}); drop or fix those rows before comparing",
            start + bad.unwrap_or(0)
        )
    })?;
    if let Some(s) = shift {
        for mut row in b.axis_iter_mut(Axis(0)) {
            for (v, c) in row.iter_mut().zip(s) {
                *v = (*v as f64 - c) as f32;
            }
        }
    }
    Ok(b)
}

/// Column means in f64, in one parallel pass (checks NaN/inf on the way).
pub(crate) fn col_means(m: &Mat, name: &str) -> Result<Vec<f64>> {
    let d = m.ncols();
    let blocks: Vec<_> = m.blocks(BLOCK_ROWS).collect();
    let sums = blocks
        .par_iter()
        .map(|&(s, e)| decode(m, s, e, None, name).map(|b| col_sums(&b)))
        .try_reduce(
            || vec![0.0; d],
            |a, b| Ok(a.iter().zip(&b).map(|(u, v)| u + v).collect()),
        )?;
    let n = m.nrows().max(1) as f64;
    Ok(sums.into_iter().map(|s| s / n).collect())
}

/// Column sums of a block, in f64.
pub(crate) fn col_sums(b: &Array2<f32>) -> Vec<f64> {
    let mut s = vec![0.0f64; b.ncols()];
    for row in b.axis_iter(Axis(0)) {
        for (a, v) in s.iter_mut().zip(row) {
            *a += *v as f64;
        }
    }
    s
}

/// Squared norm of each row, in f64.
pub(crate) fn row_sq_norms(b: &Array2<f32>) -> Vec<f64> {
    b.axis_iter(Axis(0))
        .map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum())
        .collect()
}

/// A C-ordered f32 block as a faer view.
pub(crate) fn fview(b: &Array2<f32>) -> MatRef<'_, f32> {
    let (r, c) = b.dim();
    MatRef::from_row_major_slice(b.as_slice().expect("C-ordered block"), r, c)
}

const LOWER: BlockStructure = BlockStructure::TriangularLower;
const RECT: BlockStructure = BlockStructure::Rectangular;

/// Precision of the products (sums are always f64): f32 is twice as fast
/// and ~1e-7 relative; f64 for estimators that cancel (debiased HSIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

/// The two product precisions behind one interface.
pub(crate) trait Scalar: Copy + Send + Sync + 'static {
    /// A decoded f32 block in this precision.
    fn from_block(b: &Array2<f32>) -> Array2<Self>;
    /// `dst += aᵀ b` for row blocks `a` (r × p) and `b` (r × q); `dst` is an
    /// f64, column-major (p × q) sum.
    fn add_tn(dst: &mut Array2<f64>, a: &Array2<Self>, b: &Array2<Self>, par: Par);
    /// `dst += aᵀ a`, lower triangle only (half the work; see [`symmetrize`]).
    fn add_syrk(dst: &mut Array2<f64>, a: &Array2<Self>, par: Par);
    /// `a · bᵀ` for row blocks `a` (r × d) and `b` (s × d), sequential.
    fn gram_tile(a: &Array2<Self>, b: &Array2<Self>) -> faer::Mat<Self>;
    /// Dot product with an f64 total.
    fn dot(a: &[Self], b: &[Self]) -> f64;
}

impl Scalar for f32 {
    fn from_block(b: &Array2<f32>) -> Array2<f32> {
        b.clone()
    }
    fn add_tn(dst: &mut Array2<f64>, a: &Array2<f32>, b: &Array2<f32>, par: Par) {
        let mut tmp = faer::Mat::<f32>::zeros(a.ncols(), b.ncols());
        matmul(
            tmp.as_mut(),
            Accum::Replace,
            fview(a).transpose(),
            fview(b),
            1.0f32,
            par,
        );
        for j in 0..b.ncols() {
            for (d, v) in dst.column_mut(j).iter_mut().zip(tmp.col_as_slice(j)) {
                *d += *v as f64;
            }
        }
    }
    fn add_syrk(dst: &mut Array2<f64>, a: &Array2<f32>, par: Par) {
        let d = a.ncols();
        let mut tmp = faer::Mat::<f32>::zeros(d, d);
        let (lhs, rhs) = (fview(a).transpose(), fview(a));
        tri::matmul(
            tmp.as_mut(),
            LOWER,
            Accum::Replace,
            lhs,
            RECT,
            rhs,
            RECT,
            1.0f32,
            par,
        );
        for j in 0..d {
            for (dv, v) in dst
                .column_mut(j)
                .iter_mut()
                .zip(tmp.col_as_slice(j))
                .skip(j)
            {
                *dv += *v as f64;
            }
        }
    }
    fn gram_tile(a: &Array2<f32>, b: &Array2<f32>) -> faer::Mat<f32> {
        gram_tile(a, b)
    }
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        dot_f64(a, b)
    }
}

impl Scalar for f64 {
    fn from_block(b: &Array2<f32>) -> Array2<f64> {
        b.mapv(|v| v as f64)
    }
    fn add_tn(dst: &mut Array2<f64>, a: &Array2<f64>, b: &Array2<f64>, par: Par) {
        let (p, q) = (a.ncols(), b.ncols());
        let slice = dst.as_slice_memory_order_mut().expect("contiguous sum");
        let out = faer::MatMut::from_column_major_slice_mut(slice, p, q);
        matmul(
            out,
            Accum::Add,
            fview64(a).transpose(),
            fview64(b),
            1.0f64,
            par,
        );
    }
    fn add_syrk(dst: &mut Array2<f64>, a: &Array2<f64>, par: Par) {
        let d = a.ncols();
        let slice = dst.as_slice_memory_order_mut().expect("contiguous sum");
        let out = faer::MatMut::from_column_major_slice_mut(slice, d, d);
        let (lhs, rhs) = (fview64(a).transpose(), fview64(a));
        tri::matmul(out, LOWER, Accum::Add, lhs, RECT, rhs, RECT, 1.0f64, par);
    }
    fn gram_tile(a: &Array2<f64>, b: &Array2<f64>) -> faer::Mat<f64> {
        let mut out = faer::Mat::zeros(a.nrows(), b.nrows());
        matmul(
            out.as_mut(),
            Accum::Replace,
            fview64(a),
            fview64(b).transpose(),
            1.0f64,
            Par::Seq,
        );
        out
    }
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
}

/// Copy the lower triangle of a square matrix onto its upper triangle.
pub(crate) fn symmetrize(a: &mut Array2<f64>) {
    for i in 0..a.nrows() {
        for j in (i + 1)..a.ncols() {
            a[[i, j]] = a[[j, i]];
        }
    }
}

fn fview64(b: &Array2<f64>) -> MatRef<'_, f64> {
    let (r, c) = b.dim();
    MatRef::from_row_major_slice(b.as_slice().expect("C-ordered block"), r, c)
}

/// `a · bᵀ` for f32 row blocks `a` (r × d) and `b` (s × d), sequential
/// (callers parallelise over blocks).
pub(crate) fn gram_tile(a: &Array2<f32>, b: &Array2<f32>) -> faer::Mat<f32> {
    let mut out = faer::Mat::zeros(a.nrows(), b.nrows());
    matmul(
        out.as_mut(),
        Accum::Replace,
        fview(a),
        fview(b).transpose(),
        1.0f32,
        Par::Seq,
    );
    out
}

/// Dot product of two f32 slices with f32 partial sums over short runs and an
/// f64 total: vectorises, and stays accurate for millions of terms.
pub(crate) fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    const RUN: usize = 256;
    let mut total = 0.0f64;
    for (ca, cb) in a.chunks(RUN).zip(b.chunks(RUN)) {
        let mut lanes = [0.0f32; 16];
        let mut ia = ca.chunks_exact(16);
        let mut ib = cb.chunks_exact(16);
        for (x, y) in (&mut ia).zip(&mut ib) {
            for k in 0..16 {
                lanes[k] += x[k] * y[k];
            }
        }
        let tail: f32 = ia
            .remainder()
            .iter()
            .zip(ib.remainder())
            .map(|(x, y)| x * y)
            .sum();
        total += lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    }
    total
}
