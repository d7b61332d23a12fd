//! The one error type of the core. The binding crate maps each variant onto
//! the Python `XltError` hierarchy (`ShapeError`, `DataError`, ...).
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// Arrays of the wrong shape, or shapes that do not agree.
    #[error("{0}")]
    Shape(String),
    /// Values that cannot be used: NaN/inf, out-of-range ids, empty groups.
    #[error("{0}")]
    Data(String),
    /// Parameters that make no sense (unknown metric, bad threshold).
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `Err(Error::Shape(..))` unless `cond` holds.
pub fn ensure_shape(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::Shape(msg()))
    }
}

/// `Err(Error::Data(..))` unless `cond` holds.
pub fn ensure_data(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::Data(msg()))
    }
}
