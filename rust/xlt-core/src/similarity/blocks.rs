//! Plumbing shared by the similarity measures: input checks, column means,
//! shifted f32 row blocks, and f32 block products accumulated in f64.
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self as tri, BlockStructure};
use faer::{Accum, MatRef, Par};
use ndarray::{Array2, ShapeBuilder};
use rayon::prelude::*;

use super::gemm::{self, Scratch};
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
    let (b, bad) = m.decode(start, end, shift, vec![]);
    checked(b, bad, name)
}

/// A decoded block, or a `Data` error naming its first NaN or inf row.
fn checked(b: Array2<f32>, bad: Option<usize>, name: &str) -> Result<Array2<f32>> {
    ensure_data(bad.is_none(), || {
        format!(
            "{name} contains NaN or inf (first in row {}); drop or fix those rows before comparing",
            bad.unwrap_or(0)
        )
    })?;
    Ok(b)
}

/// Column means in f64, in one parallel pass; NaN or inf is a `Data` error.
pub(crate) fn col_means(m: &Mat, name: &str) -> Result<Vec<f64>> {
    let blocks: Vec<_> = m.blocks(BLOCK_ROWS).collect();
    let sums = blocks
        .par_iter()
        .map(|&(s, e)| m.col_sums(s, e))
        .reduce_with(|a, b| a.iter().zip(&b).map(|(u, v)| u + v).collect())
        .unwrap_or_else(|| vec![0.0; m.ncols()]);
    if sums.iter().any(|v| !v.is_finite()) {
        // Rare: find the row for the message.
        for &(s, e) in &blocks {
            decode(m, s, e, None, name)?;
        }
    }
    let n = m.nrows().max(1) as f64;
    Ok(sums.into_iter().map(|s| s / n).collect())
}

/// What [`decode_summed`] gathers from a block, in f64: column sums, the sum
/// of all squares, and (when asked) each row's squared norm.
pub(crate) struct BlockSums {
    pub sums: Vec<f64>,
    pub sq: f64,
    pub norms: Option<Vec<f64>>,
}

/// [`decode`] into `buf`'s allocation, also gathering the block's [`BlockSums`] from each row
/// as it is decoded (no extra pass over the block).
pub(crate) fn decode_summed(
    m: &Mat,
    start: usize,
    end: usize,
    shift: Option<&[f64]>,
    name: &str,
    buf: Vec<f32>,
    norms: bool,
) -> Result<(Array2<f32>, BlockSums)> {
    let mut s = vec![0.0f64; m.ncols()];
    let mut q = vec![0.0f64; m.ncols()];
    let mut rn = Vec::with_capacity(if norms { end - start } else { 0 });
    let (b, bad) = m.decode_with(start, end, shift, buf, |row| {
        for ((a, aq), &v) in s.iter_mut().zip(q.iter_mut()).zip(row) {
            let v = v as f64;
            *a += v;
            *aq += v * v;
        }
        if norms {
            rn.push(row_sq_norm(row));
        }
    });
    checked(b, bad, name).map(|b| {
        let sums = BlockSums {
            sums: s,
            sq: q.iter().sum(),
            norms: norms.then_some(rn),
        };
        (b, sums)
    })
}

/// Squared norm of a row, in f64 (eight running lanes, so it vectorises).
fn row_sq_norm(r: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut it = r.chunks_exact(8);
    for c in &mut it {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += (v as f64) * (v as f64);
        }
    }
    let tail: f64 = it
        .remainder()
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// A C- or F-ordered block as a faer view.
pub(crate) fn fview<T>(b: &Array2<T>) -> MatRef<'_, T> {
    let (r, c) = b.dim();
    if b.is_standard_layout() {
        MatRef::from_row_major_slice(b.as_slice().expect("C-ordered block"), r, c)
    } else {
        MatRef::from_column_major_slice(b.as_slice_memory_order().expect("F-ordered block"), r, c)
    }
}

/// An F-ordered f64 copy of an f32 block, widened in the same pass: faer's
/// `aᵀb` products run about twice as fast when both operands are contiguous
/// along the rows being summed.
fn fortran_f64(b: &Array2<f32>) -> Array2<f64> {
    const TILE: usize = 32; // cache-blocked transpose
    let (r, c) = b.dim();
    let src = b.as_slice().expect("C-ordered block");
    let mut out = Vec::with_capacity(r * c); // not cleared: every slot is written
    let slots = &mut out.spare_capacity_mut()[..r * c];
    for i0 in (0..r).step_by(TILE) {
        for j0 in (0..c).step_by(TILE) {
            for j in j0..(j0 + TILE).min(c) {
                for i in i0..(i0 + TILE).min(r) {
                    slots[j * r + i].write(src[i * c + j] as f64);
                }
            }
        }
    }
    // SAFETY: the tiles cover every (i, j), so all r·c slots are initialised.
    unsafe { out.set_len(r * c) };
    Array2::from_shape_vec((r, c).f(), out).expect("shape matches")
}

const LOWER: BlockStructure = BlockStructure::TriangularLower;
const RECT: BlockStructure = BlockStructure::Rectangular;

/// Precision of the products (sums are always f64). F32 is twice as fast and
/// ~1e-7 relative, and its feature-space sums keep only linear CKA's terms
/// (`CkaStats::kl` is NaN); F64 also keeps debiased CKA's Gram-diagonal terms,
/// whose estimator cancels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    /// The precision CKA's estimator needs: F64 for debiased, F32 for linear.
    pub fn for_cka(debiased: bool) -> Self {
        if debiased {
            Precision::F64
        } else {
            Precision::F32
        }
    }
}

/// The two product precisions behind one interface.
pub(crate) trait Scalar: Copy + Default + Send + Sync + 'static {
    /// A decoded f32 block in this precision.
    fn from_block(b: &Array2<f32>) -> Array2<Self>;
    /// A decoded block laid out for [`Scalar::add_tn`].
    type Operand<'s>: Send + Sync;
    fn operand<'s>(b: &Array2<f32>, scratch: &'s Scratch) -> Self::Operand<'s>;
    /// `dst += aᵀ b` for row blocks `a` (r × p) and `b` (r × q) from
    /// [`Scalar::operand`]; `dst` is an f64, column-major (p × q) sum.
    fn add_tn(dst: &mut Array2<f64>, a: &Self::Operand<'_>, b: &Self::Operand<'_>, par: Par);
    /// `dst += aᵀ a`, lower triangle only (half the work).
    fn add_syrk(dst: &mut Array2<f64>, a: &Self::Operand<'_>, par: Par);
    /// `a · bᵀ` for row blocks `a` (r × d) and `b` (s × d), sequential.
    fn gram_tile(a: &Array2<Self>, b: &Array2<Self>) -> faer::Mat<Self>;
    /// Dot product with an f64 total.
    fn dot(a: &[Self], b: &[Self]) -> f64;
}

impl Scalar for f32 {
    fn from_block(b: &Array2<f32>) -> Array2<f32> {
        b.clone()
    }
    type Operand<'s> = gemm::Operand<'s>;
    fn operand<'s>(b: &Array2<f32>, scratch: &'s Scratch) -> gemm::Operand<'s> {
        gemm::Operand::new(b, scratch)
    }
    fn add_tn(dst: &mut Array2<f64>, a: &gemm::Operand, b: &gemm::Operand, par: Par) {
        gemm::add_tn(dst, a, b, false, par != Par::Seq);
    }
    fn add_syrk(dst: &mut Array2<f64>, a: &gemm::Operand, par: Par) {
        gemm::add_tn(dst, a, a, true, par != Par::Seq);
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
    type Operand<'s> = Array2<f64>;
    fn operand(b: &Array2<f32>, _: &Scratch) -> Array2<f64> {
        fortran_f64(b)
    }
    fn add_tn(dst: &mut Array2<f64>, a: &Array2<f64>, b: &Array2<f64>, par: Par) {
        let (p, q) = (a.ncols(), b.ncols());
        let slice = dst.as_slice_memory_order_mut().expect("contiguous sum");
        let out = faer::MatMut::from_column_major_slice_mut(slice, p, q);
        matmul(out, Accum::Add, fview(a).transpose(), fview(b), 1.0f64, par);
    }
    fn add_syrk(dst: &mut Array2<f64>, a: &Array2<f64>, par: Par) {
        let d = a.ncols();
        let slice = dst.as_slice_memory_order_mut().expect("contiguous sum");
        let out = faer::MatMut::from_column_major_slice_mut(slice, d, d);
        let (lhs, rhs) = (fview(a).transpose(), fview(a));
        tri::matmul(out, LOWER, Accum::Add, lhs, RECT, rhs, RECT, 1.0f64, par);
    }
    fn gram_tile(a: &Array2<f64>, b: &Array2<f64>) -> faer::Mat<f64> {
        let mut out = faer::Mat::zeros(a.nrows(), b.nrows());
        matmul(
            out.as_mut(),
            Accum::Replace,
            fview(a),
            fview(b).transpose(),
            1.0f64,
            Par::Seq,
        );
        out
    }
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
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
