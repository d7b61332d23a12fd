//! Linear and debiased CKA (Kornblith et al. 2019; unbiased HSIC of Song et
//! al. 2012), from sufficient statistics computed once per matrix set.
//!
//! For centred matrices X̄, Ȳ with Grams K = X̄X̄ᵀ, L = ȲȲᵀ:
//! `tr(KL) = ‖X̄ᵀȲ‖²`, the Gram diagonals are the centred row norms² k, l,
//! and the unbiased HSIC times n(n-3) is
//! `tr(KL) − n/(n−2)·kᵀl + (Σk)(Σl)/((n−1)(n−2))`.
//! Two routes give `tr(KL)`: feature space (`X̄ᵀȲ`, cost n·dx·dy; [`feature`])
//! or Gram space (tiles of K and L, cost n²·d; [`gram`]);
//! [`pairwise_stats`] picks the cheaper. [`Sums`] holds the feature route's
//! running sums (streaming, mergeable); [`CkaAccumulator`] streams layers.
mod accumulator;
mod feature;
mod gram;
mod sums;

use ndarray::Array2;
use std::str::FromStr;

pub use super::blocks::Precision;
use super::blocks::{col_means, paired_rows};
use crate::error::{ensure_data, ensure_shape, Error, Result};
use crate::matrix::Mat;
pub use accumulator::CkaAccumulator;
pub use sums::{Sums, STREAM_ROWS};

/// Sufficient statistics of CKA for M matrices sharing rows.
#[derive(Clone, Debug)]
pub struct CkaStats {
    /// Number of rows.
    pub n: usize,
    /// `tr(K_p K_q) = ‖X̄_pᵀ X̄_q‖²` (NaN where not computed).
    pub hsic: Array2<f64>,
    /// `k_pᵀ k_q`, k = centred row norms² (NaN where not computed).
    pub kl: Array2<f64>,
    /// `Σ k_p = ‖X̄_p‖²`.
    pub tr: Vec<f64>,
    /// Names of the matrices, for messages.
    pub names: Vec<String>,
}

impl CkaStats {
    /// Statistics assembled from parts (e.g. summed dask states); the
    /// matrices are named `reps[i]`. `Shape` error unless `hsic` and `kl`
    /// are (m, m) for the m entries of `tr`.
    pub fn from_parts(n: usize, hsic: Array2<f64>, kl: Array2<f64>, tr: Vec<f64>) -> Result<Self> {
        let m = tr.len();
        ensure_shape(hsic.dim() == (m, m) && kl.dim() == (m, m), || {
            format!(
                "hsic {:?} and kl {:?} must both be ({m}, {m}) for {m} matrices",
                hsic.dim(),
                kl.dim()
            )
        })?;
        let names = (0..m).map(|i| format!("reps[{i}]")).collect();
        Ok(CkaStats {
            n,
            hsic,
            kl,
            tr,
            names,
        })
    }

    fn zero_variance(&self, p: usize) -> Result<()> {
        ensure_data(self.tr[p] > 0.0, || {
            format!(
                "{} has zero variance (all rows identical); CKA is undefined for it",
                self.names[p]
            )
        })
    }

    /// Linear CKA between matrices `p` and `q`.
    pub fn linear(&self, p: usize, q: usize) -> Result<f64> {
        self.zero_variance(p)?;
        self.zero_variance(q)?;
        let v = self.hsic[[p, q]] / (self.hsic[[p, p]] * self.hsic[[q, q]]).sqrt();
        Ok(v.clamp(0.0, 1.0))
    }

    /// n(n−3) times the unbiased HSIC between `p` and `q`.
    fn unbiased(&self, p: usize, q: usize) -> f64 {
        let n = self.n as f64;
        self.hsic[[p, q]] - n / (n - 2.0) * self.kl[[p, q]]
            + self.tr[p] * self.tr[q] / ((n - 1.0) * (n - 2.0))
    }

    /// Debiased CKA between matrices `p` and `q` (needs n ≥ 4).
    pub fn debiased(&self, p: usize, q: usize) -> Result<f64> {
        ensure_shape(self.n >= 4, || {
            format!(
                "debiased CKA needs at least 4 rows, got {}; pass more samples",
                self.n
            )
        })?;
        ensure_shape(!self.kl[[p, q]].is_nan(), || {
            "these statistics hold linear CKA's terms only (f32 sums); compute them in f64 for debiased CKA"
                .to_string()
        })?;
        self.zero_variance(p)?;
        self.zero_variance(q)?;
        let (hp, hq) = (self.unbiased(p, p), self.unbiased(q, q));
        ensure_data(hp > 0.0 && hq > 0.0, || {
            "the unbiased HSIC of an input with itself is not positive (too few rows for its rank); \
             pass more samples or use linear CKA"
                .to_string()
        })?;
        Ok(self.unbiased(p, q) / (hp * hq).sqrt())
    }

    /// The (m, m) matrix of linear (or debiased) CKA between every pair.
    pub fn matrix(&self, debiased: bool) -> Result<Array2<f64>> {
        let m = self.tr.len();
        let mut out = Array2::zeros((m, m));
        for p in 0..m {
            for q in 0..m {
                out[[p, q]] = if debiased {
                    self.debiased(p, q)?
                } else {
                    self.linear(p, q)?
                };
            }
        }
        Ok(out)
    }
}

/// Every pair `p ≤ q` of `m` matrices.
pub fn all_pairs(m: usize) -> Vec<(usize, usize)> {
    (0..m).flat_map(|p| (p..m).map(move |q| (p, q))).collect()
}

/// Which way to compute `tr(K_p K_q)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Feature,
    Gram,
}

impl FromStr for Route {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "feature" => Ok(Route::Feature),
            "gram" => Ok(Route::Gram),
            _ => Err(Error::Config(format!(
                "unknown route {s:?}; use \"feature\", \"gram\" or None"
            ))),
        }
    }
}

/// The cheaper route for all pairs of matrices with `n` rows and widths `dims`:
/// multiply-adds, weighed by what each costs here (measured on 24 layers at
/// n = 2000–10000, d = 256–1024: a Gram tile's multiply-add 1.3× one of
/// xlt's own feature-space kernel, a Gram-space inner product, memory-bound, 19×).
pub fn choose_route(n: usize, dims: &[usize]) -> Route {
    let n = n as f64;
    let d: Vec<f64> = dims.iter().map(|&v| v as f64).collect();
    let total: f64 = d.iter().sum();
    let feature = n * (total * total + d.iter().map(|v| v * v).sum::<f64>()) / 2.0;
    let m = d.len() as f64;
    let gram = 1.3 * n * n / 2.0 * total + 19.0 * m * (m + 1.0) / 2.0 * n * n / 2.0;
    if gram < feature {
        Route::Gram
    } else {
        Route::Feature
    }
}

/// CKA statistics for all pairs of `mats` (same rows), each matrix read with
/// its exact column means; the route is chosen by shape unless given.
pub fn pairwise_stats(
    mats: &[Mat],
    names: &[String],
    route: Option<Route>,
    prec: Precision,
) -> Result<CkaStats> {
    ensure_shape(!mats.is_empty(), || "no matrices to compare".to_string())?;
    let n = mats[0].nrows();
    for (m, nm) in mats.iter().zip(names) {
        ensure_shape(m.nrows() == n, || {
            format!(
                "{nm} has {} rows but {} has {n}; rows must be paired samples (the same items, in the same order)",
                m.nrows(),
                names[0]
            )
        })?;
        ensure_shape(m.ncols() > 0, || format!("{nm} has no columns"))?;
    }
    ensure_shape(n >= 2, || {
        format!("CKA needs at least 2 paired rows, got {n}")
    })?;
    super::scale::at_unit_scale(mats, names, |mats| unit_stats(mats, names, n, route, prec))
}

/// [`pairwise_stats`] of checked matrices whose values cannot over- or
/// underflow f32 products.
fn unit_stats(
    mats: &[Mat],
    names: &[String],
    n: usize,
    route: Option<Route>,
    prec: Precision,
) -> Result<CkaStats> {
    let means: Vec<Vec<f64>> = mats
        .iter()
        .zip(names)
        .map(|(m, nm)| col_means(m, nm))
        .collect::<Result<_>>()?;
    let dims: Vec<usize> = mats.iter().map(|m| m.ncols()).collect();
    match route.unwrap_or_else(|| choose_route(n, &dims)) {
        Route::Feature => feature::stats(mats, names, &dims, means, prec),
        Route::Gram => match prec {
            Precision::F32 => gram::stats::<f32>(mats, names, &means),
            Precision::F64 => gram::stats::<f64>(mats, names, &means),
        },
    }
}

/// CKA statistics of the pair (X, Y): index 0 is X, 1 is Y.
pub fn pair_stats<'a>(x: &Mat<'a>, y: &Mat<'a>, prec: Precision) -> Result<CkaStats> {
    pairwise_stats(&[*x, *y], &["X".into(), "Y".into()], None, prec)
}

/// Linear CKA (Kornblith et al. 2019) between paired rows of `x` and `y`.
pub fn linear_cka<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<f64> {
    paired_rows(x, y, 2, "linear CKA")?;
    pair_stats(x, y, Precision::for_cka(false))?.linear(0, 1)
}

/// Debiased CKA (unbiased HSIC, Song et al. 2012) between paired rows.
pub fn debiased_cka<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<f64> {
    paired_rows(x, y, 4, "debiased CKA")?;
    pair_stats(x, y, Precision::for_cka(true))?.debiased(0, 1)
}

/// Linear (or debiased) CKA between every pair of `mats` (named `names`),
/// in the precision the estimator needs; `route` as in [`pairwise_stats`].
pub fn cka_matrix(
    mats: &[Mat],
    names: &[String],
    debiased: bool,
    route: Option<Route>,
) -> Result<Array2<f64>> {
    pairwise_stats(mats, names, route, Precision::for_cka(debiased))?.matrix(debiased)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Rows of a deterministic pseudo-random matrix far from the origin
    /// (centring matters) with some column structure.
    pub(crate) fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut s = seed;
        Array2::from_shape_fn((n, d), |(i, j)| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                + 0.1 * (i % 7) as f32 * (j % 3) as f32
                + 40.0
        })
    }

    #[test]
    fn cka_of_a_matrix_with_itself_is_one() {
        let x = data(50, 6, 1);
        let m = Mat::F32(x.view());
        assert!((linear_cka(&m, &m).unwrap() - 1.0).abs() < 1e-9);
        assert!((debiased_cka(&m, &m).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn mismatched_rows_and_tiny_inputs_are_shape_errors() {
        let (x, y) = (data(5, 3, 1), data(6, 3, 2));
        let e = linear_cka(&Mat::F32(x.view()), &Mat::F32(y.view())).unwrap_err();
        assert!(matches!(e, Error::Shape(_)));
        let e = debiased_cka(
            &Mat::F32(x.slice(ndarray::s![..3, ..])),
            &Mat::F32(x.slice(ndarray::s![..3, ..])),
        );
        assert!(matches!(e, Err(Error::Shape(_))));
    }

    #[test]
    fn routes_parse_and_parts_are_checked() {
        assert_eq!("gram".parse::<Route>(), Ok(Route::Gram));
        assert_eq!("feature".parse::<Route>(), Ok(Route::Feature));
        assert!(matches!("fast".parse::<Route>(), Err(Error::Config(m)) if m.contains("\"fast\"")));
        let bad = CkaStats::from_parts(
            9,
            Array2::zeros((2, 2)),
            Array2::zeros((2, 3)),
            vec![1.0; 2],
        );
        assert!(matches!(bad, Err(Error::Shape(_))));
    }

    #[test]
    fn the_matrix_is_symmetric_with_a_unit_diagonal() {
        let layers: Vec<_> = (0..3).map(|i| data(300, 5 + i, 10 + i as u64)).collect();
        let mats: Vec<Mat> = layers.iter().map(|a| Mat::F32(a.view())).collect();
        let names: Vec<String> = (0..3).map(|i| format!("L{i}")).collect();
        for debiased in [false, true] {
            let m = cka_matrix(&mats, &names, debiased, None).unwrap();
            for p in 0..3 {
                assert!((m[[p, p]] - 1.0).abs() < 1e-9);
                for q in 0..3 {
                    assert_eq!(m[[p, q]], m[[q, p]]);
                }
            }
            let one = if debiased {
                debiased_cka(&mats[0], &mats[2])
            } else {
                linear_cka(&mats[0], &mats[2])
            };
            assert!((m[[0, 2]] - one.unwrap()).abs() < 1e-7);
        }
    }
}
