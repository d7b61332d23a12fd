//! Representational similarity analysis: the upper triangles of two
//! representational dissimilarity matrices (RDMs), compared by Spearman or
//! Pearson correlation. Each RDM is reduced once to a centred unit vector
//! (of ranks or values), so comparing M inputs costs M RDMs and M² dots.
use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::blocks::{col_means, decode, dot_f64, fview};
use crate::error::{ensure_data, ensure_shape, Error, Result};
use crate::matrix::Mat;
use faer::linalg::matmul::matmul;
use faer::{Accum, Par};

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

/// Rows rows of the RDM computed per task.
const RDM_ROWS: usize = 256;

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

/// The RDM's upper triangle (i < j, row-major), as values increasing with the
/// dissimilarity: −similarity for correlation and cosine (an affine map of
/// the distance, which neither correlation sees), the distance for euclidean.
pub fn rdm(x: &Mat, metric: RdmMetric, name: &str) -> Result<Vec<f32>> {
    let n = x.nrows();
    let (z, norms) = prepare(x, metric, name)?;
    let mut out = vec![0.0f32; n * n.saturating_sub(1) / 2];
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
    chunks.into_par_iter().for_each(|(s, e, dst)| {
        // Transposed block (rows j ≥ s, columns i in s..e): row i's entries are contiguous.
        let mut g = faer::Mat::<f32>::zeros(n - s, e - s);
        let (rest, mine) = (zall.subrows(s, n - s), zall.subrows(s, e - s));
        matmul(
            g.as_mut(),
            Accum::Replace,
            rest,
            mine.transpose(),
            1.0f32,
            Par::Seq,
        );
        let mut pos = 0;
        for i in s..e {
            let col = g.col_as_slice(i - s);
            for j in (i + 1)..n {
                let dot = col[j - s];
                dst[pos] = match metric {
                    RdmMetric::Euclidean => {
                        let sq = norms[i] + norms[j] - 2.0 * dot as f64;
                        // Near-duplicate rows: the Gram form cancels, so sum the differences.
                        let sq = if sq < 1e-3 * (norms[i] + norms[j]) {
                            sq_dist(&z, i, j)
                        } else {
                            sq
                        };
                        sq.max(0.0).sqrt() as f32
                    }
                    _ => -dot,
                };
                pos += 1;
            }
        }
    });
    Ok(out)
}

/// f32 → u32 whose unsigned order is the float order.
fn order_bits(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | (1 << 31)
    }
}

/// Stable LSD radix sort of `(key << 32 | index)` by key.
fn radix_sort_keys(v: &mut Vec<u64>) {
    let mut buf = vec![0u64; v.len()];
    for (shift, bits) in [(32u32, 11u32), (43, 11), (54, 10)] {
        let mask = (1u64 << bits) - 1;
        let mut count = vec![0usize; 1 << bits];
        for &x in v.iter() {
            count[((x >> shift) & mask) as usize] += 1;
        }
        let mut total = 0;
        for c in count.iter_mut() {
            let k = *c;
            *c = total;
            total += k;
        }
        for &x in v.iter() {
            let b = ((x >> shift) & mask) as usize;
            buf[count[b]] = x;
            count[b] += 1;
        }
        std::mem::swap(v, &mut buf);
    }
}

/// Runs of equal keys in sorted `keys`: (start, end, average 1-based rank).
fn tie_groups(keys: &[u64]) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        (start < keys.len()).then(|| {
            let key = keys[start] >> 32;
            let end = start
                + keys[start..]
                    .iter()
                    .take_while(|&&k| k >> 32 == key)
                    .count();
            let g = (start, end, (start + end + 1) as f64 / 2.0);
            start = end;
            g
        })
    })
}

/// Tie-averaged ranks of `values` (1-based), centred and scaled to unit norm.
fn rank_unit(values: &[f32]) -> Result<Vec<f32>> {
    let len = values.len();
    let mut keys: Vec<u64> = values
        .par_iter()
        .enumerate()
        .map(|(i, &v)| ((order_bits(v) as u64) << 32) | i as u64)
        .collect();
    radix_sort_keys(&mut keys);
    let mean = (len as f64 + 1.0) / 2.0;
    let ss: f64 = tie_groups(&keys)
        .map(|(s, e, r)| (e - s) as f64 * (r - mean) * (r - mean))
        .sum();
    ensure_data(ss > 0.0, || {
        "the RDM is constant (every pair equally distant); RSA is undefined".to_string()
    })?;
    let inv = 1.0 / ss.sqrt();
    let mut out = vec![0.0f32; len];
    for (s, e, r) in tie_groups(&keys) {
        let z = ((r - mean) * inv) as f32;
        for &k in &keys[s..e] {
            out[(k & 0xffff_ffff) as usize] = z;
        }
    }
    Ok(out)
}

/// Values centred and scaled to unit norm.
fn value_unit(values: &[f32]) -> Result<Vec<f32>> {
    let mean = values.par_iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
    let ss: f64 = values
        .par_iter()
        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
        .sum();
    ensure_data(ss > 0.0, || {
        "the RDM is constant (every pair equally distant); RSA is undefined".to_string()
    })?;
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
        RsaMethod::Spearman => rank_unit(&v),
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
    let (a, b) = rayon::join(
        || rdm_unit(x, metric, method, "X"),
        || rdm_unit(y, metric, method, "Y"),
    );
    Ok(unit_dot(&a?, &b?))
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
        .map(|(m, nm)| rdm_unit(m, metric, method, nm))
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
    fn ranks_average_ties_and_follow_float_order() {
        let v = [3.0f32, -1.0, 3.0, 0.0, -0.0, 7.5, -2.0];
        let z = rank_unit(&v).unwrap();
        // ranks: 3→5.5, -1→2, 3→5.5, 0/-0→3 and 4 (distinct bits, -0 first), 7.5→7, -2→1
        let r = [5.5f64, 2.0, 5.5, 4.0, 3.0, 7.0, 1.0];
        let m = 4.0;
        let norm = r.iter().map(|x| (x - m) * (x - m)).sum::<f64>().sqrt();
        for (a, b) in z.iter().zip(r) {
            assert!((*a as f64 - (b - m) / norm).abs() < 1e-6);
        }
    }

    #[test]
    fn triangle_offsets_tile_the_upper_triangle() {
        let n = 9;
        let total: usize = (0..n).map(|i| n - 1 - i).sum();
        assert_eq!(tri_offset(n, n), total);
        assert_eq!(tri_offset(n, 1), n - 1);
    }
}
