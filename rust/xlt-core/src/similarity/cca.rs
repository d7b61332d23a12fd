//! Measures built on the centred second moments of X and Y (in f64):
//! SVCCA (Raghu et al. 2017), PWCCA (Morcos et al. 2018) and the orthogonal
//! Procrustes distance — all in feature space, O(n·d² + d³).
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat as FMat, MatRef, Par, Side};

use super::blocks::{col_means, decode, paired_rows, BLOCK_ROWS};
use crate::error::{ensure_data, Error, Result};
use crate::matrix::Mat;

/// Directions whose variance is below this fraction of the largest are
/// treated as null (rank deficiency) when whitening.
pub const RANK_TOL: f64 = 1e-10;

/// Centred moments `X̄ᵀX̄`, `X̄ᵀȲ`, `ȲᵀȲ` in f64.
struct Moments {
    xx: FMat<f64>,
    xy: FMat<f64>,
    yy: FMat<f64>,
}

fn centred_f64(m: &Mat, s: usize, e: usize, mu: &[f64], name: &str) -> Result<FMat<f64>> {
    let b = decode(m, s, e, None, name)?;
    Ok(FMat::from_fn(e - s, mu.len(), |i, j| {
        b[[i, j]] as f64 - mu[j]
    }))
}

fn moments<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<Moments> {
    let (mx, my) = (col_means(x, "X")?, col_means(y, "Y")?);
    let (dx, dy) = (x.ncols(), y.ncols());
    let mut m = Moments {
        xx: FMat::zeros(dx, dx),
        xy: FMat::zeros(dx, dy),
        yy: FMat::zeros(dy, dy),
    };
    let par = Par::rayon(0);
    for (s, e) in x.blocks(BLOCK_ROWS) {
        let bx = centred_f64(x, s, e, &mx, "X")?;
        let by = centred_f64(y, s, e, &my, "Y")?;
        matmul(
            m.xx.as_mut(),
            Accum::Add,
            bx.transpose(),
            bx.as_ref(),
            1.0,
            par,
        );
        matmul(
            m.xy.as_mut(),
            Accum::Add,
            bx.transpose(),
            by.as_ref(),
            1.0,
            par,
        );
        matmul(
            m.yy.as_mut(),
            Accum::Add,
            by.transpose(),
            by.as_ref(),
            1.0,
            par,
        );
    }
    Ok(m)
}

fn trace(a: &FMat<f64>) -> f64 {
    (0..a.nrows()).map(|i| a[(i, i)]).sum()
}

fn nonzero_variance(m: &FMat<f64>, name: &str) -> Result<()> {
    ensure_data(trace(m) > 0.0, || {
        format!("{name} has zero variance (all rows identical); the measure is undefined")
    })
}

/// Eigenpairs of a symmetric matrix, largest first, keeping those above the
/// rank tolerance and (if `keep` < 1) only as many as explain `keep` of the
/// variance; returns the whitening basis `V Λ^{-1/2}` and `V Λ^{1/2}`.
fn principal(c: &FMat<f64>, keep: f64) -> Result<(FMat<f64>, FMat<f64>)> {
    let evd = c
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Data(format!("eigendecomposition failed: {e:?}")))?;
    let d = c.nrows();
    let lam: Vec<f64> = (0..d).rev().map(|i| evd.S().column_vector()[i]).collect();
    let total: f64 = lam.iter().filter(|&&l| l > 0.0).sum();
    let floor = RANK_TOL * lam[0];
    let mut k = 0;
    let mut acc = 0.0;
    while k < d && lam[k] > floor && (keep >= 1.0 || acc < keep * total) {
        acc += lam[k];
        k += 1;
    }
    let u = evd.U();
    let w = FMat::from_fn(d, k, |i, j| u[(i, d - 1 - j)] / lam[j].sqrt());
    let h = FMat::from_fn(d, k, |i, j| u[(i, d - 1 - j)] * lam[j].sqrt());
    Ok((w, h))
}

/// Canonical correlations of the whitened bases and the X-side rotation U.
fn canonical(m: &Moments, wx: MatRef<f64>, wy: MatRef<f64>) -> Result<(Vec<f64>, FMat<f64>)> {
    let t = wx.transpose() * m.xy.as_ref() * wy;
    let svd = t
        .thin_svd()
        .map_err(|e| Error::Data(format!("SVD failed: {e:?}")))?;
    let k = t.nrows().min(t.ncols());
    let rho = (0..k)
        .map(|i| svd.S().column_vector()[i].min(1.0))
        .collect();
    Ok((rho, svd.U().to_owned()))
}

fn checked<'a>(x: &Mat<'a>, y: &Mat<'a>, what: &str) -> Result<Moments> {
    paired_rows(x, y, 2, what)?;
    let m = moments(x, y)?;
    nonzero_variance(&m.xx, "X")?;
    nonzero_variance(&m.yy, "Y")?;
    Ok(m)
}

/// SVCCA: keep the top principal directions of X and of Y that explain
/// `keep` of their variance, then average the canonical correlations.
pub fn svcca<'a>(x: &Mat<'a>, y: &Mat<'a>, keep: f64) -> Result<f64> {
    if !(keep > 0.0 && keep <= 1.0) {
        return Err(Error::Config(format!("keep must be in (0, 1], got {keep}")));
    }
    let m = checked(x, y, "SVCCA")?;
    let (wx, _) = principal(&m.xx, keep)?;
    let (wy, _) = principal(&m.yy, keep)?;
    let (rho, _) = canonical(&m, wx.as_ref(), wy.as_ref())?;
    Ok(rho.iter().sum::<f64>() / rho.len() as f64)
}

/// PWCCA: canonical correlations weighted by how much of X each canonical
/// variate accounts for, `α_i = Σ_j |⟨X̄ a_i, X̄_j⟩|` (asymmetric: X weighs).
pub fn pwcca<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<f64> {
    let m = checked(x, y, "PWCCA")?;
    let (wx, hx) = principal(&m.xx, 1.0)?;
    let (wy, _) = principal(&m.yy, 1.0)?;
    let (rho, u) = canonical(&m, wx.as_ref(), wy.as_ref())?;
    // X̄ᵀ(X̄ W U) = V Λ^{1/2} U: columns are the variates' covariances with X's columns.
    let cov = hx.as_ref() * u.as_ref();
    let alpha: Vec<f64> = (0..rho.len())
        .map(|i| cov.col(i).iter().map(|v| v.abs()).sum())
        .collect();
    let total: f64 = alpha.iter().sum();
    Ok(alpha.iter().zip(&rho).map(|(a, r)| a * r).sum::<f64>() / total)
}

/// Orthogonal Procrustes distance between X and Y, each centred and scaled to
/// unit Frobenius norm: `2 − 2‖X̂ᵀŶ‖_*` (0 when one is a rotation of the
/// other, at most 2; widths may differ).
pub fn procrustes<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<f64> {
    let m = checked(x, y, "Procrustes distance")?;
    let sv =
        m.xy.singular_values()
            .map_err(|e| Error::Data(format!("SVD failed: {e:?}")))?;
    let nuc: f64 = sv.iter().sum();
    Ok((2.0 - 2.0 * nuc / (trace(&m.xx) * trace(&m.yy)).sqrt()).max(0.0))
}
