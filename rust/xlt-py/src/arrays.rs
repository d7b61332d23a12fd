//! numpy → `xlt_core::matrix::Mat`, zero-copy. Python's `xlt._arrays` has
//! already turned torch tensors and ml_dtypes bf16 into numpy views; bf16
//! arrives as uint16 bits (int16 views are re-viewed as uint16 there), f16 and f32 as themselves.
use half::f16;
use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use xlt_core::matrix::Mat;
use xlt_core::neurons::Block3;

use crate::errors::ShapeError;

/// A numpy matrix held for the duration of a call.
pub enum PyMat<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F16(PyReadonlyArray2<'py, f16>),
    BF16(PyReadonlyArray2<'py, u16>),
}

impl<'py> PyMat<'py> {
    /// Borrow `obj` (a 2-D numpy array) as a matrix; `name` labels errors.
    pub fn extract(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        if let Ok(a) = obj.extract::<PyReadonlyArray2<f32>>() {
            return Ok(PyMat::F32(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray2<f16>>() {
            return Ok(PyMat::F16(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray2<u16>>() {
            return Ok(PyMat::BF16(a));
        }
        let what = describe(obj)?;
        Err(ShapeError::new_err(format!(
            "{name} must be a 2-D float32, float16 or bfloat16 (uint16 bits) matrix, got {what}; \
             pass an (n, d) array, e.g. x.reshape(len(x), -1).astype('float32')"
        )))
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

/// A numpy (token, layer, hidden) block held for the duration of a call.
pub enum PyBlock3<'py> {
    F32(PyReadonlyArray3<'py, f32>),
    F16(PyReadonlyArray3<'py, f16>),
    BF16(PyReadonlyArray3<'py, u16>),
}

impl<'py> PyBlock3<'py> {
    /// Borrow `obj` (a 3-D numpy array); `name` labels errors.
    pub fn extract(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        if let Ok(a) = obj.extract::<PyReadonlyArray3<f32>>() {
            return Ok(PyBlock3::F32(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray3<f16>>() {
            return Ok(PyBlock3::F16(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray3<u16>>() {
            return Ok(PyBlock3::BF16(a));
        }
        Err(ShapeError::new_err(format!(
            "{name} must be a 3-D (token, layer, hidden) float32, float16 or bfloat16 (uint16 bits) array, got {}",
            describe(obj)?
        )))
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
pub fn describe(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
        Err(_) => format!("a {}", obj.get_type().name()?),
    })
}
