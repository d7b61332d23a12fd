//! Bindings of `xlt_core::similarity`: numpy matrices in (zero-copy), the
//! work done with the GIL released, numpy or floats out.
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use xlt_core::matrix::Mat;
use xlt_core::similarity::{self as sim, cka, RdmMetric, Route, RsaMethod};

use crate::arrays::{views, PyMat};
use crate::errors::IntoPyResult;

/// `f(X, Y)` on the core views of `x` and `y`, with the GIL released.
fn on_pair<R: Send>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    f: impl for<'a> FnOnce(&Mat<'a>, &Mat<'a>) -> xlt_core::Result<R> + Send,
) -> PyResult<R> {
    let (x, y) = (PyMat::extract(x, "X")?, PyMat::extract(y, "Y")?);
    let (xv, yv) = (x.view(), y.view());
    py.detach(|| f(&xv, &yv)).py()
}

/// Linear CKA between paired rows of X and Y.
#[pyfunction]
fn linear_cka(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    on_pair(py, &x, &y, sim::linear_cka)
}

/// Debiased CKA (unbiased HSIC) between paired rows of X and Y.
#[pyfunction]
fn debiased_cka(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    on_pair(py, &x, &y, sim::debiased_cka)
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
    on_pair(py, &x, &y, |xv, yv| sim::rsa(xv, yv, metric, method))
}

/// SVCCA keeping the principal directions that explain `keep` of the variance.
#[pyfunction]
#[pyo3(signature = (x, y, keep = 0.99))]
fn svcca(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>, keep: f64) -> PyResult<f64> {
    on_pair(py, &x, &y, |xv, yv| sim::svcca(xv, yv, keep))
}

/// Projection-weighted CCA (weights from X).
#[pyfunction]
fn pwcca(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    on_pair(py, &x, &y, sim::pwcca)
}

/// Orthogonal Procrustes distance of the centred, unit-norm matrices.
#[pyfunction]
fn procrustes(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<f64> {
    on_pair(py, &x, &y, sim::procrustes)
}

/// Top-1 cosine retrieval accuracy, (X→Y, Y→X).
#[pyfunction]
fn retrieval(py: Python<'_>, x: Bound<'_, PyAny>, y: Bound<'_, PyAny>) -> PyResult<(f64, f64)> {
    on_pair(py, &x, &y, sim::retrieval)
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
    let route: Option<Route> = route.map(str::parse).transpose().py()?;
    let (held, names) = PyMat::extract_all(&mats, "reps")?;
    let v = views(&held);
    let out = py
        .detach(|| sim::cka_matrix(&v, &names, debiased, route))
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
    let (held, names) = PyMat::extract_all(&mats, "reps")?;
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
        let (hx, _) = PyMat::extract_all(&xs, "X")?;
        let (hy, _) = PyMat::extract_all(&ys, "Y")?;
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
        let inner = cka::Sums::checked(&dims, pairs, shift, debiased).py()?;
        Ok(CkaSums { inner })
    }

    /// Add the rows of `mats` (one (rows, dims[p]) matrix each, same rows).
    fn update(&mut self, py: Python<'_>, mats: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let (held, names) = PyMat::extract_all(&mats, "reps")?;
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
        let inner = cka::Sums::restored(&dims, state.as_slice()?, pairs, shift, debiased).py()?;
        Ok(CkaSums { inner })
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
        format!("CkaSums({})", self.inner)
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
    let (hsic, kl) = (hsic.as_array().to_owned(), kl.as_array().to_owned());
    let st = cka::CkaStats::from_parts(n, hsic, kl, tr).py()?;
    let out = py.detach(|| st.matrix(debiased)).py()?;
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
