//! Bindings of `xlt_core::neurons`: a streaming accumulator of per-group
//! neuron statistics, LAPE and the language-specific neuron mask.
use numpy::{IntoPyArray, PyArray1, PyArray3, PyReadonlyArray1, PyReadonlyArray3, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use xlt_core::neurons::{self, Dtype, NeuronStats};

use crate::arrays::{by_name, PyBlock3};
use crate::dump::array_files;
use crate::errors::IntoPyResult;

/// Per group × layer × neuron sums over token blocks; mergeable.
#[pyclass(module = "xlt._core")]
pub struct NeuronAccumulator {
    inner: NeuronStats,
}

#[pymethods]
impl NeuronAccumulator {
    #[new]
    fn new(groups: usize, layers: usize, hidden: usize) -> PyResult<Self> {
        let inner = NeuronStats::try_new(groups, layers, hidden).py()?;
        Ok(NeuronAccumulator { inner })
    }

    /// Add a (token, layer, hidden) block; `group` holds one id per token (< 0 skips).
    fn update(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        group: PyReadonlyArray1<'_, i32>,
    ) -> PyResult<()> {
        let block = PyBlock3::extract(x, "hidden")?;
        let (v, g) = (block.view(), group.as_array());
        let inner = &mut self.inner;
        py.detach(|| inner.update(v, g)).py()
    }

    /// Add `len(group)` tokens of a (token, layer, hidden) array read from its
    /// chunk files (`spec`: see `xlt.dumps.chunk_files`; raw or zstd, plain or
    /// sharded, checksums verified), the first file starting at token
    /// `first_token`; `dtype`: bfloat16, float16 or float32. GIL released.
    #[pyo3(signature = (spec, dtype, group, first_token=0))]
    fn update_files(
        &mut self,
        py: Python<'_>,
        spec: &Bound<'_, PyDict>,
        dtype: &str,
        group: PyReadonlyArray1<'_, i32>,
        first_token: usize,
    ) -> PyResult<()> {
        let table = [
            ("bfloat16", Dtype::BF16),
            ("float16", Dtype::F16),
            ("float32", Dtype::F32),
        ];
        let dtype = by_name(dtype, &table, "NeuronAccumulator.update_files")?;
        let files = array_files(spec, first_token)?;
        let group = group.as_array().to_vec();
        let inner = &mut self.inner;
        py.detach(|| inner.update_array(dtype, &files, &group)).py()
    }

    /// Add another accumulator's partial statistics.
    fn merge(&mut self, other: PyRef<'_, NeuronAccumulator>) -> PyResult<()> {
        self.inner.merge(&other.inner).py()
    }

    /// The raw partial sums: count (group), sum, sumsq, positive (group, layer, hidden).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("count", self.inner.count.to_pyarray(py))?;
        d.set_item("sum", self.inner.sum().into_pyarray(py))?;
        d.set_item("sumsq", self.inner.sumsq().into_pyarray(py))?;
        d.set_item("positive", self.inner.positive().into_pyarray(py))?;
        Ok(d)
    }

    /// Rebuild an accumulator from `state()` arrays (e.g. summed across dask chunks).
    #[staticmethod]
    fn from_state(
        count: PyReadonlyArray1<'_, u64>,
        sum: PyReadonlyArray3<'_, f64>,
        sumsq: PyReadonlyArray3<'_, f64>,
        positive: PyReadonlyArray3<'_, u64>,
    ) -> PyResult<Self> {
        let inner = NeuronStats::from_parts(
            count.as_array().to_vec(),
            sum.as_array(),
            sumsq.as_array(),
            positive.as_array(),
        )
        .py()?;
        Ok(NeuronAccumulator { inner })
    }

    /// (mean, var, positive_rate), each (group, layer, hidden) float64.
    #[allow(clippy::type_complexity)]
    fn finish<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Bound<'py, PyArray3<f64>>,
        Bound<'py, PyArray3<f64>>,
        Bound<'py, PyArray3<f64>>,
    )> {
        let (m, v, r) = self.inner.finish().py()?;
        Ok((m.into_pyarray(py), v.into_pyarray(py), r.into_pyarray(py)))
    }

    #[getter]
    fn count<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.inner.count.to_pyarray(py)
    }
}

/// LAPE (layer, hidden) from positive rates (group, layer, hidden).
#[pyfunction]
fn lape<'py>(
    py: Python<'py>,
    rate: PyReadonlyArray3<'py, f64>,
) -> Bound<'py, numpy::PyArray2<f64>> {
    let r = rate.as_array();
    py.detach(|| neurons::lape(r)).into_pyarray(py)
}

/// Mask (group, layer, hidden) of language-specific neurons.
#[pyfunction]
fn lape_specific<'py>(
    py: Python<'py>,
    rate: PyReadonlyArray3<'py, f64>,
    lape: numpy::PyReadonlyArray2<'py, f64>,
    top: f64,
    min_rate: f64,
) -> PyResult<Bound<'py, PyArray3<bool>>> {
    let (r, e) = (rate.as_array(), lape.as_array().to_owned());
    Ok(py
        .detach(|| neurons::specific(r, &e, top, min_rate))
        .py()?
        .into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NeuronAccumulator>()?;
    m.add_function(wrap_pyfunction!(lape, m)?)?;
    m.add_function(wrap_pyfunction!(lape_specific, m)?)?;
    Ok(())
}
