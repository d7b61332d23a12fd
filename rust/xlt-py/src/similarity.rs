//! Bindings of `xlt_core::similarity`: numpy matrices in (zero-copy), the
//! work done with the GIL released, numpy or floats out.
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
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

/// The (m, m) matrix of linear (or debiased) CKA from statistics.
fn cka_matrix(st: &cka::CkaStats, debiased: bool) -> xlt_core::Result<ndarray::Array2<f64>> {
    let m = st.tr.len();
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
            let st = sim::pairwise_stats(&v, &names, route, precision(debiased))?;
            cka_matrix(&st, debiased)
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

/// Partial CKA sufficient statistics of M matrices sharing rows, for
/// chunk-wise (dask) reductions: states of disjoint row chunks taken with the
/// same shift add up elementwise; `stats()` of the summed state gives the
/// statistics that `cka_from_stats` turns into CKA.
#[pyclass(module = "xlt._core")]
struct CkaSums {
    inner: cka::Sums,
    dims: Vec<usize>,
    pairs: Vec<(usize, usize)>,
    shift: Vec<Vec<f64>>,
    debiased: bool,
}

/// Kept pairs and per-matrix shift rows.
type Layout = (Vec<(usize, usize)>, Vec<Vec<f64>>);

fn check_layout(
    dims: &[usize],
    pairs: Option<Vec<(usize, usize)>>,
    shift: Option<Vec<Vec<f64>>>,
) -> PyResult<Layout> {
    let pairs = pairs.unwrap_or_else(|| cka::all_pairs(dims.len()));
    if let Some(&(p, q)) = pairs.iter().find(|&&(p, q)| p > q || q >= dims.len()) {
        return Err(crate::errors::ShapeError::new_err(format!(
            "pair ({p}, {q}) is not p <= q < {} (the number of matrices)",
            dims.len()
        )));
    }
    let shift = shift.unwrap_or_default();
    let widths: Vec<usize> = shift.iter().map(|s| s.len()).collect();
    if !shift.is_empty() && widths != dims {
        return Err(crate::errors::ShapeError::new_err(format!(
            "shift widths {widths:?} do not match the matrix widths {dims:?}"
        )));
    }
    Ok((pairs, shift))
}

fn precision(debiased: bool) -> Precision {
    if debiased {
        Precision::F64
    } else {
        Precision::F32
    }
}

#[pymethods]
impl CkaSums {
    /// Rows per product block: chunks whose row counts are multiples of it
    /// give exactly the blocks of the in-memory path.
    #[classattr]
    const BLOCK_ROWS: usize = cka::STREAM_ROWS;

    /// Sums for matrices of widths `dims`, keeping cross products for
    /// `pairs` (p <= q; default all), each matrix shifted by its `shift` row
    /// (default: the first block's means). `debiased` runs products in f64.
    #[new]
    #[pyo3(signature = (dims, pairs = None, shift = None, debiased = false))]
    fn new(
        dims: Vec<usize>,
        pairs: Option<Vec<(usize, usize)>>,
        shift: Option<Vec<Vec<f64>>>,
        debiased: bool,
    ) -> PyResult<Self> {
        let (pairs, shift) = check_layout(&dims, pairs, shift)?;
        cka::Sums::check_sizes(&dims, &pairs).py()?;
        Ok(CkaSums {
            inner: cka::Sums::new(&dims, &pairs, shift.clone(), precision(debiased)),
            dims,
            pairs,
            shift,
            debiased,
        })
    }

    /// Add the rows of `mats` (one (rows, dims[p]) matrix each, same rows).
    fn update(&mut self, py: Python<'_>, mats: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let (held, names) = extract_list(&mats, "reps")?;
        let v = views(&held);
        let inner = &mut self.inner;
        py.detach(|| inner.update_all(&v, &names)).py()
    }

    /// Rows seen so far.
    #[getter]
    fn n(&self) -> usize {
        self.inner.n()
    }

    /// The sums as one float64 vector (add states of disjoint rows to merge).
    fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.state().into_pyarray(py)
    }

    /// Sums rebuilt from a (summed) `state()` taken with the same layout.
    #[staticmethod]
    #[pyo3(signature = (dims, state, pairs = None, shift = None, debiased = false))]
    fn from_state(
        dims: Vec<usize>,
        state: PyReadonlyArray1<'_, f64>,
        pairs: Option<Vec<(usize, usize)>>,
        shift: Option<Vec<Vec<f64>>>,
        debiased: bool,
    ) -> PyResult<Self> {
        let (pairs, shift) = check_layout(&dims, pairs, shift)?;
        let state = state.as_slice()?;
        let inner =
            cka::Sums::from_state(&dims, &pairs, shift.clone(), precision(debiased), state).py()?;
        Ok(CkaSums {
            inner,
            dims,
            pairs,
            shift,
            debiased,
        })
    }

    /// Column means of every matrix over the rows seen (one array each).
    fn column_means<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray1<f64>>> {
        self.inner
            .column_means()
            .into_iter()
            .map(|m| m.into_pyarray(py))
            .collect()
    }

    /// `(n, hsic, kl, tr)`: the CKA statistics of the kept pairs (NaN elsewhere).
    #[allow(clippy::type_complexity)]
    fn stats<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        usize,
        Bound<'py, PyArray2<f64>>,
        Bound<'py, PyArray2<f64>>,
        Bound<'py, PyArray1<f64>>,
    ) {
        let st = self.inner.stats();
        (
            st.n,
            st.hsic.into_pyarray(py),
            st.kl.into_pyarray(py),
            st.tr.into_pyarray(py),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "CkaSums(dims={:?}, pairs={}, shifted={}, debiased={}, n={})",
            self.dims,
            self.pairs.len(),
            !self.shift.is_empty(),
            self.debiased,
            self.inner.n()
        )
    }
}

/// Linear (or debiased) CKA of every pair from assembled statistics
/// `(n, hsic, kl, tr)` of `CkaSums.stats()` (each entry from some state).
#[pyfunction]
#[pyo3(signature = (n, hsic, kl, tr, debiased = false))]
fn cka_from_stats<'py>(
    py: Python<'py>,
    n: usize,
    hsic: PyReadonlyArray2<'py, f64>,
    kl: PyReadonlyArray2<'py, f64>,
    tr: Vec<f64>,
    debiased: bool,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let m = tr.len();
    let (hsic, kl) = (hsic.as_array().to_owned(), kl.as_array().to_owned());
    if hsic.dim() != (m, m) || kl.dim() != (m, m) {
        return Err(crate::errors::ShapeError::new_err(format!(
            "hsic {:?} and kl {:?} must both be ({m}, {m}) for {m} matrices",
            hsic.dim(),
            kl.dim()
        )));
    }
    let st = cka::CkaStats {
        n,
        hsic,
        kl,
        tr,
        names: (0..m).map(|i| format!("reps[{i}]")).collect(),
    };
    let out = py.detach(|| cka_matrix(&st, debiased)).py()?;
    Ok(out.into_pyarray(py))
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
    m.add_class::<CkaSums>()?;
    m.add_function(wrap_pyfunction!(cka_from_stats, m)?)?;
    Ok(())
}
