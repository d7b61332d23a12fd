//! Representational similarity analysis: the upper triangles of two
//! representational dissimilarity matrices (RDMs), compared by Spearman or
//! Pearson correlation. Each RDM is reduced once to a centred unit vector
//! (of ranks or values), so comparing M inputs costs M RDMs and M² dots.
use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::blocks::{col_means, decode, dot_f64, fview};
use super::rank::{advise_huge, unit_ranks};
use crate::error::{ensure_data, ensure_shape, Error, Result};
use crate::matrix::Mat;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self as tri, BlockStructure};
use faer::{Accum, MatRef, Par};

/// Dissimilarity between two rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdmMetric {
    /// 1 − Pearson correlation of the two rows.
    Correlation,
    /// 1 − cosine similarity.
    Cosine,
    /// Euclidean distance.
    Euclidean,
}

/// How two RDMs are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaMethod {
    Spearman,
    Pearson,
}

impl std::str::FromStr for RdmMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "correlation" => Ok(Self::Correlation),
            "cosine" => Ok(Self::Cosine),
            "euclidean" => Ok(Self::Euclidean),
            _ => Err(Error::Config(format!(
                "unknown RDM metric {s:?}; use \"correlation\", \"cosine\" or \"euclidean\""
            ))),
        }
    }
}

impl std::str::FromStr for RsaMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "spearman" => Ok(Self::Spearman),
            "pearson" => Ok(Self::Pearson),
            _ => Err(Error::Config(format!(
                "unknown RSA method {s:?}; use \"spearman\" or \"pearson\""
            ))),
        }
    }
}

/// Rows of the RDM computed per task.
const RDM_ROWS: usize = 512;

/// Offset of row `i`'s first entry (j = i+1) in the row-major upper triangle.
fn tri_offset(n: usize, i: usize) -> usize {
    i * (2 * n - i - 1) / 2
}

/// Rows prepared for a Gram product: normalised (correlation, cosine) or
/// column-centred (euclidean), with their squared norms for the latter.
fn prepare(x: &Mat, metric: RdmMetric, name: &str) -> Result<(Array2<f32>, Vec<f64>)> {
    let shift = match metric {
        RdmMetric::Euclidean => Some(col_means(x, name)?),
        _ => None,
    };
    let mut z = decode(x, 0, x.nrows(), shift.as_deref(), name)?;
    let mut norms = Vec::with_capacity(x.nrows());
    for (i, mut row) in z.axis_iter_mut(Axis(0)).enumerate() {
        if metric == RdmMetric::Correlation {
            let m = row.iter().map(|&v| v as f64).sum::<f64>() / row.len() as f64;
            row.mapv_inplace(|v| (v as f64 - m) as f32);
        }
        let sq: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        if metric != RdmMetric::Euclidean {
            ensure_data(sq > 0.0, || {
                format!(
                    "row {i} of {name} is {}; the {metric:?} distance is undefined for it (drop the row or use euclidean)",
                    if metric == RdmMetric::Correlation { "constant" } else { "all zeros" }
                )
            })?;
            let inv = 1.0 / sq.sqrt();
            row.mapv_inplace(|v| (v as f64 * inv) as f32);
        }
        norms.push(sq);
    }
    Ok((z, norms))
}

fn sq_dist(z: &Array2<f32>, i: usize, j: usize) -> f64 {
    z.row(i)
        .iter()
        .zip(z.row(j))
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum()
}

/// Dot products of rows j > i with rows i in s..e of `z`, into column i − s,
/// row j − s of `g`: the diagonal block's strict lower triangle, then the rows below.
fn block_products(g: &mut faer::Mat<f32>, z: MatRef<f32>, s: usize, e: usize) {
    use BlockStructure::{Rectangular as Rect, StrictTriangularLower as Strict};
    let (n, w) = (z.nrows(), e - s);
    let (diag, below) = g.as_mut().submatrix_mut(0, 0, n - s, w).split_at_row_mut(w);
    let (mine, t) = (z.subrows(s, w), z.subrows(s, w).transpose());
    tri::matmul(
        diag,
        Strict,
        Accum::Replace,
        mine,
        Rect,
        t,
        Rect,
        1.0f32,
        Par::Seq,
    );
    matmul(
        below,
        Accum::Replace,
        z.subrows(e, n - e),
        t,
        1.0f32,
        Par::Seq,
    );
}

/// The RDM's upper triangle (i < j, row-major), as values increasing with the
/// dissimilarity: −similarity for correlation and cosine (an affine map of
/// the distance, which neither correlation sees), the distance for euclidean.
pub fn rdm(x: &Mat, metric: RdmMetric, name: &str) -> Result<Vec<f32>> {
    let n = x.nrows();
    let half = n
        .checked_mul(n.saturating_sub(1))
        .map_or(usize::MAX, |v| v / 2);
    crate::limits::table(&format!("the RDM of {name}"), &[("row pairs", half)], 4)?;
    let (z, norms) = prepare(x, metric, name)?;
    let mut out = vec![0.0f32; half];
    advise_huge(&mut out);
    let mut chunks = Vec::new();
    let mut rest = out.as_mut_slice();
    let mut start = 0;
    while start < n {
        let end = (start + RDM_ROWS).min(n);
        let len = tri_offset(n, end) - tri_offset(n, start);
        let (head, tail) = rest.split_at_mut(len);
        chunks.push((start, end, head));
        rest = tail;
        start = end;
    }
    let zall = fview(&z);
    // One product buffer per worker; row i's block column is contiguous.
    let buffer = || faer::Mat::<f32>::zeros(n, RDM_ROWS.min(n));
    chunks
        .into_par_iter()
        .for_each_init(buffer, |g, (s, e, dst)| {
            block_products(g, zall, s, e);
            let mut pos = 0;
            for i in s..e {
                let col = &g.col_as_slice(i - s)[i + 1 - s..n - s];
                let row = &mut dst[pos..pos + col.len()];
                pos += col.len();
                if metric != RdmMetric::Euclidean {
                    row.iter_mut().zip(col).for_each(|(d, &dot)| *d = -dot);
                    continue;
                }
                for ((d, &dot), j) in row.iter_mut().zip(col).zip(i + 1..) {
                    let sq = norms[i] + norms[j] - 2.0 * dot as f64;
                    // Near-duplicate rows: the Gram form cancels, so sum the differences.
                    let sq = if sq < 1e-3 * (norms[i] + norms[j]) {
                        sq_dist(&z, i, j)
                    } else {
                        sq
                    };
                    *d = sq.max(0.0).sqrt() as f32;
                }
            }
        });
    Ok(out)
}

const CONSTANT: &str = "the RDM is constant (every pair equally distant); RSA is undefined";

/// Values centred and scaled to unit norm.
fn value_unit(values: &[f32]) -> Result<Vec<f32>> {
    let mean = values.par_iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
    let ss: f64 = values
        .par_iter()
        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
        .sum();
    ensure_data(ss > 0.0, || CONSTANT.to_string())?;
    let inv = 1.0 / ss.sqrt();
    Ok(values
        .par_iter()
        .map(|&v| ((v as f64 - mean) * inv) as f32)
        .collect())
}

/// An RDM reduced to the unit vector whose dot products are the RSA scores.
pub fn rdm_unit(x: &Mat, metric: RdmMetric, method: RsaMethod, name: &str) -> Result<Vec<f32>> {
    ensure_shape(x.nrows() >= 3, || {
        format!("RSA needs at least 3 rows, got {}", x.nrows())
    })?;
    ensure_shape(x.nrows() <= u32::MAX as usize / 2, || {
        "RSA supports at most 2^31 rows".to_string()
    })?;
    let v = rdm(x, metric, name)?;
    ensure_shape(v.len() < (1usize << 32), || {
        "RSA's RDM has more than 2^32 pairs; subsample rows".to_string()
    })?;
    match method {
        RsaMethod::Spearman => {
            let mut v = v;
            ensure_data(unit_ranks(&mut v), || CONSTANT.to_string())?;
            Ok(v)
        }
        RsaMethod::Pearson => value_unit(&v),
    }
}

/// Correlation of two unit vectors (parallel dot in f64).
pub fn unit_dot(a: &[f32], b: &[f32]) -> f64 {
    a.par_chunks(1 << 16)
        .zip(b.par_chunks(1 << 16))
        .map(|(x, y)| dot_f64(x, y))
        .sum::<f64>()
        .clamp(-1.0, 1.0)
}

/// RSA between paired rows of `x` and `y`.
pub fn rsa<'a>(x: &Mat<'a>, y: &Mat<'a>, metric: RdmMetric, method: RsaMethod) -> Result<f64> {
    super::blocks::paired_rows(x, y, 3, "RSA")?;
    super::scale::pair_at_unit_scale(x, y, |x, y| {
        let (a, b) = rayon::join(
            || rdm_unit(x, metric, method, "X"),
            || rdm_unit(y, metric, method, "Y"),
        );
        Ok(unit_dot(&a?, &b?))
    })
}

/// RSA between all pairs of `mats` (same rows): an M × M symmetric matrix.
pub fn rsa_pairwise(
    mats: &[Mat],
    names: &[String],
    metric: RdmMetric,
    method: RsaMethod,
) -> Result<Array2<f64>> {
    let n = mats.first().map_or(0, |m| m.nrows());
    for (m, nm) in mats.iter().zip(names) {
        ensure_shape(m.nrows() == n, || {
            format!(
                "{nm} has {} rows, {} has {n}; rows must be paired samples",
                m.nrows(),
                names[0]
            )
        })?;
    }
    let units: Vec<Vec<f32>> = mats
        .iter()
        .zip(names)
        .map(|(m, nm)| {
            let one = [nm.clone()];
            super::scale::at_unit_scale(&[*m], &one, |v| rdm_unit(&v[0], metric, method, nm))
        })
        .collect::<Result<_>>()?;
    let mm = mats.len();
    let mut out = Array2::zeros((mm, mm));
    for p in 0..mm {
        for q in p..mm {
            let v = if p == q {
                1.0
            } else {
                unit_dot(&units[p], &units[q])
            };
            out[[p, q]] = v;
            out[[q, p]] = v;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triangle_offsets_tile_the_upper_triangle() {
        let n = 9;
        let total: usize = (0..n).map(|i| n - 1 - i).sum();
        assert_eq!(tri_offset(n, n), total);
        assert_eq!(tri_offset(n, 1), n - 1);
    }
}
