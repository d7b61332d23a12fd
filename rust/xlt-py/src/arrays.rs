//! numpy → `xlt_core::matrix::Mat`, zero-copy. Python's `xlt._arrays` has
//! already turned torch tensors and ml_dtypes bf16 into numpy views; bf16
//! arrives as uint16 bits (int16 views are re-viewed as uint16 there), f16 and f32 as themselves.
use half::f16;
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use xlt_core::matrix::Mat;

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
        let what = match obj.cast::<numpy::PyUntypedArray>() {
            Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
            Err(_) => format!("a {}", obj.get_type().name()?),
        };
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
