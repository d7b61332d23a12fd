//! `xlt._core`: thin PyO3 bindings over `xlt-core`. Arrays come in zero-copy,
//! work runs with the GIL released, errors map onto `xlt.errors`.
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod arrays;
mod dump;
mod errors;
mod linguistic;
mod neurons;
mod routing;
mod similarity;

/// Facts about this build of the extension.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", env!("CARGO_PKG_VERSION"))?;
    d.set_item("release", !cfg!(debug_assertions))?;
    d.set_item("threads", xlt_core::num_threads())?;
    Ok(d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    linguistic::register(m)?;
    similarity::register(m)?;
    routing::register(m)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    neurons::register(m)?;
    dump::register(m)?;
    Ok(())
}
