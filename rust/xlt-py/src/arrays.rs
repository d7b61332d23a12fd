//! numpy → core views, zero-copy, with one dtype dispatch for every binding
//! (by the array's dtype: [`one_of`]; by a dtype's name: [`by_name`]).
//! Python's `xlt._arrays` has already turned torch tensors and ml_dtypes bf16
//! into numpy views; bf16 arrives as uint16 bits (int16 views are re-viewed as
//! uint16 there), f16 and f32 as themselves.
use half::f16;
use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use xlt_core::matrix::Mat;
use xlt_core::neurons::Block3;

use crate::errors::{ConfigError, ShapeError};

/// One way to read `obj`: `Some` when its dtype and rank fit.
pub type Try<'py, T> = fn(&Bound<'py, PyAny>) -> Option<T>;

/// The first of `tries` that reads `obj` (e.g. one per accepted dtype), else a
/// `ShapeError` "`{name}` must be `{what}`, got a 2-D array of dtype float64".
pub fn one_of<'py, T>(
    obj: &Bound<'py, PyAny>,
    tries: &[Try<'py, T>],
    name: &str,
    what: &str,
) -> PyResult<T> {
    if let Some(v) = tries.iter().find_map(|t| t(obj)) {
        return Ok(v);
    }
    Err(ShapeError::new_err(format!(
        "{name} must be {what}, got {}",
        describe(obj)
    )))
}

/// The value that `table` pairs with the numpy dtype name `dtype`, else a
/// `ConfigError` "{what} reads int16 or int32, not 'float64'".
pub fn by_name<T: Copy>(dtype: &str, table: &[(&str, T)], what: &str) -> PyResult<T> {
    if let Some(&(_, v)) = table.iter().find(|(n, _)| *n == dtype) {
        return Ok(v);
    }
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let list = match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "nothing".into(),
    };
    Err(ConfigError::new_err(format!(
        "{what} reads {list}, not {dtype:?}"
    )))
}

/// `read(obj, "{prefix}[i]")` for each object, and those names (for messages).
pub fn each<'py, T>(
    objs: &[Bound<'py, PyAny>],
    prefix: &str,
    read: impl Fn(&Bound<'py, PyAny>, &str) -> PyResult<T>,
) -> PyResult<(Vec<T>, Vec<String>)> {
    let names: Vec<String> = (0..objs.len()).map(|i| format!("{prefix}[{i}]")).collect();
    let held = objs
        .iter()
        .zip(&names)
        .map(|(o, n)| read(o, n))
        .collect::<PyResult<_>>()?;
    Ok((held, names))
}

/// A numpy matrix held for the duration of a call.
pub enum PyMat<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F16(PyReadonlyArray2<'py, f16>),
    BF16(PyReadonlyArray2<'py, u16>),
}

impl<'py> PyMat<'py> {
    /// Borrow `obj` (a 2-D numpy array) as a matrix; `name` labels errors.
    pub fn extract(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        one_of(
            obj,
            &[
                |o| o.extract().ok().map(PyMat::F32),
                |o| o.extract().ok().map(PyMat::F16),
                |o| o.extract().ok().map(PyMat::BF16),
            ],
            name,
            "a 2-D (n, d) float32, float16 or bfloat16 (uint16 bits) matrix \
             (e.g. x.reshape(len(x), -1).astype('float32'))",
        )
    }

    /// Every object of `objs` as a matrix named `{prefix}[i]`, and those names.
    pub fn extract_all(
        objs: &[Bound<'py, PyAny>],
        prefix: &str,
    ) -> PyResult<(Vec<Self>, Vec<String>)> {
        each(objs, prefix, PyMat::extract)
    }

    /// The core view.
    pub fn view(&self) -> Mat<'_> {
        match self {
            PyMat::F32(a) => Mat::F32(a.as_array()),
            PyMat::F16(a) => Mat::F16(a.as_array()),
            PyMat::BF16(a) => Mat::BF16(a.as_array()),
        }
    }
}

/// Core views of held matrices.
pub fn views<'a>(mats: &'a [PyMat<'_>]) -> Vec<Mat<'a>> {
    mats.iter().map(PyMat::view).collect()
}

/// A numpy (token, layer, hidden) block held for the duration of a call.
pub enum PyBlock3<'py> {
    F32(PyReadonlyArray3<'py, f32>),
    F16(PyReadonlyArray3<'py, f16>),
    BF16(PyReadonlyArray3<'py, u16>),
}

impl<'py> PyBlock3<'py> {
    /// Borrow `obj` (a 3-D numpy array); `name` labels errors.
    pub fn extract(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        one_of(
            obj,
            &[
                |o| o.extract().ok().map(PyBlock3::F32),
                |o| o.extract().ok().map(PyBlock3::F16),
                |o| o.extract().ok().map(PyBlock3::BF16),
            ],
            name,
            "a 3-D (token, layer, hidden) float32, float16 or bfloat16 (uint16 bits) array",
        )
    }

    pub fn view(&self) -> Block3<'_> {
        match self {
            PyBlock3::F32(a) => Block3::F32(a.as_array()),
            PyBlock3::F16(a) => Block3::F16(a.as_array()),
            PyBlock3::BF16(a) => Block3::BF16(a.as_array()),
        }
    }
}

/// "a 2-D array of dtype float64" or "a list": for error messages.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
        Err(_) => format!(
            "a {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ),
    }
}
