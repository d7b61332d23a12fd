//! The Python exception hierarchy, defined here so Rust can raise it, and the
//! mapping from `xlt_core::Error` onto it. `xlt.errors` re-exports the classes.
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use xlt_core::Error;

create_exception!(
    xlt._core,
    XltError,
    PyException,
    "Base class of every error xlt raises."
);
create_exception!(
    xlt._core,
    ShapeError,
    XltError,
    "Arrays of the wrong shape, or shapes that do not agree."
);
create_exception!(
    xlt._core,
    DataError,
    XltError,
    "Input data that cannot be used: NaN/inf, unknown codes, missing or corrupt files."
);
create_exception!(
    xlt._core,
    ConfigError,
    XltError,
    "A setting or parameter that makes no sense."
);
create_exception!(
    xlt._core,
    UnsupportedModelError,
    XltError,
    "A model xlt cannot find layers or routers in."
);

/// Convert a core error into the matching Python exception.
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Shape(m) => ShapeError::new_err(m),
        Error::Data(m) => DataError::new_err(m),
        Error::Config(m) => ConfigError::new_err(m),
    }
}

/// `Result<T, Error>` → `PyResult<T>`.
pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for xlt_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("XltError", py.get_type::<XltError>())?;
    m.add("ShapeError", py.get_type::<ShapeError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add(
        "UnsupportedModelError",
        py.get_type::<UnsupportedModelError>(),
    )?;
    Ok(())
}
