//! Bindings of `xlt_core::similarity`: numpy matrices in (zero-copy), the
//! work done with the GIL released, numpy or floats out.
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use xlt_core::matrix::Mat;
use xlt_core::similarity::{self as sim, cka, Precision, RdmMetric, Route, RsaMethod};

use crate::arrays::PyMat;
use crate::errors::IntoPyResult;

fn extract_list<'py>(
    objs: &[Bound<'py, PyAny>],
    prefix: &str,
) -> PyResult<(Vec<PyMat<'py>>, Vec<String>)> {
    let names: Vec<String> = (0..objs.len()).map(|i| format!("{prefix}[{i}]")).collect();
    let mats = objs
        .iter()
        .zip(&names)
        .map(|(o, n)| PyMat::extract(o, n))
        .collect::<PyResult<_>>()?;
    Ok((mats, names))
}

fn views<'a>(mats: &'a [PyMat<'_>]) -> Vec<Mat<'a>> {
    mats.iter().map(|m| m.view()).collect()
}

/// Linear CKA between paired rows of X and Y.
#[pyfunction]
fn linear_cka(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::linear_cka(&xv, &yv)).py()
}

/// Debiased CKA (unbiased HSIC) between paired rows of X and Y.
#[pyfunction]
fn debiased_cka(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::debiased_cka(&xv, &yv)).py()
}

/// RSA: correlation of the upper triangles of the two RDMs.
#[pyfunction]
#[pyo3(signature = (x, y, metric = "correlation", method = "spearman"))]
fn rsa(
    py: Python<'_>,
    x: Bound<'_, PyAny>,
    y: Bound<'_, PyAny>,
    metric: &str,
    method: &str,
) -> PyResult<f64> {
    let (metric, method): (RdmMetric, RsaMethod) = (metric.parse().py()?, method.parse().py()?);
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::rsa(&xv, &yv, metric, method)).py()
}

/// SVCCA keeping the principal directions that explain `keep` of the variance.
#[pyfunction]
#[pyo3(signature = (x, y, keep = 0.99))]
fn svcca(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>, keep: f64) -> PyResult<f64> {
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::svcca(&xv, &yv, keep)).py()
}

/// Projection-weighted CCA (weights from X).
#[pyfunction]
fn pwcca(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::pwcca(&xv, &yv)).py()
}

/// Orthogonal Procrustes distance of the centred, unit-norm matrices.
#[pyfunction]
fn procrustes(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::procrustes(&xv, &yv)).py()
}

/// Top-1 cosine retrieval accuracy, (X→Y, Y→X).
#[pyfunction]
fn retrieval(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<(f64, f64)> {
    let (x, y) = (PyMat::extract(&x, "X")?, PyMat::extract(&y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| sim::retrieval(&xv, &yv)).py()
}

/// Linear (or debiased) CKA between all pairs of matrices, from statistics
/// computed once per matrix; `route` forces "feature" or "gram".
#[pyfunction]
#[pyo3(signature = (mats, debiased = false, route = None))]
fn cka_pairwise<'py>(
    py: Python<'py>,
    mats: Vec<Bound<'py, PyAny>>,
    debiased: bool,
    route: Option<&str>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let route = match route {
        None => None,
        Some("feature") => Some(Route::Feature),
        Some("gram") => Some(Route::Gram),
        Some(r) => {
            return Err(crate::errors::ConfigError::new_err(format!(
                "unknown route {r:?}; use \"feature\", \"gram\" or None"
            )))
        }
    };
    let (held, names) = extract_list(&mats, "reps")?;
    let v = views(&held);
    let out = py
        .detach(|| -> xlt_core::Result<_> {
            let prec = if debiased {
                Precision::F64
            } else {
                Precision::F32
            };
            let st = sim::pairwise_stats(&v, &names, route, prec)?;
            let m = v.len();
            let mut out = ndarray::Array2::zeros((m, m));
            for p in 0..m {
                for q in 0..m {
                    out[[p, q]] = if debiased {
                        st.debiased(p, q)?
                    } else {
                        st.linear(p, q)?
                    };
                }
            }
            Ok(out)
        })
        .py()?;
    Ok(out.into_pyarray(py))
}

/// RSA between all pairs of matrices (each RDM ranked once).
#[pyfunction]
#[pyo3(signature = (mats, metric = "correlation", method = "spearman"))]
fn rsa_pairwise<'py>(
    py: Python<'py>,
    mats: Vec<Bound<'py, PyAny>>,
    metric: &str,
    method: &str,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (metric, method): (RdmMetric, RsaMethod) = (metric.parse().py()?, method.parse().py()?);
    let (held, names) = extract_list(&mats, "reps")?;
    let v = views(&held);
    let out = py
        .detach(|| sim::rsa_pairwise(&v, &names, metric, method))
        .py()?;
    Ok(out.into_pyarray(py))
}

/// Streaming linear/debiased CKA over row blocks, for one or more layers.
#[pyclass(module = "xlt._core")]
struct CkaAccumulator {
    inner: cka::CkaAccumulator,
}

#[pymethods]
impl CkaAccumulator {
    #[new]
    fn new() -> Self {
        CkaAccumulator {
            inner: cka::CkaAccumulator::new(),
        }
    }

    /// Add one row block per layer: `xs[l]` and `ys[l]` pair rows.
    fn update(
        &mut self,
        py: Python<'_>,
        xs: Vec<Bound<'_, PyAny>>,
        ys: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (hx, _) = extract_list(&xs, "X")?;
        let (hy, _) = extract_list(&ys, "Y")?;
        let (vx, vy) = (views(&hx), views(&hy));
        let inner = &mut self.inner;
        py.detach(|| inner.update(&vx, &vy)).py()
    }

    /// Rows seen so far.
    #[getter]
    fn n(&self) -> usize {
        self.inner.n()
    }

    /// Per-layer linear CKA of the rows seen so far.
    fn linear(&self, py: Python<'_>) -> PyResult<Vec<f64>> {
        py.detach(|| self.inner.linear()).py()
    }

    /// Per-layer debiased CKA of the rows seen so far.
    fn debiased(&self, py: Python<'_>) -> PyResult<Vec<f64>> {
        py.detach(|| self.inner.debiased()).py()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(linear_cka, m)?)?;
    m.add_function(wrap_pyfunction!(debiased_cka, m)?)?;
    m.add_function(wrap_pyfunction!(rsa, m)?)?;
    m.add_function(wrap_pyfunction!(svcca, m)?)?;
    m.add_function(wrap_pyfunction!(pwcca, m)?)?;
    m.add_function(wrap_pyfunction!(procrustes, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval, m)?)?;
    m.add_function(wrap_pyfunction!(cka_pairwise, m)?)?;
    m.add_function(wrap_pyfunction!(rsa_pairwise, m)?)?;
    m.add_class::<CkaAccumulator>()?;
    Ok(())
}
