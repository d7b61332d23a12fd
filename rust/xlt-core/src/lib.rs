//! xlt-core: the numeric kernels of xlt, in pure Rust (no Python).
//!
//! One module per concept; the `xlt-py` crate binds them as `xlt._core`.
pub mod dump;
pub mod error;
pub mod limits;
pub mod matrix;
pub mod neurons;
pub mod overlap;
pub mod roots;
pub mod routing;
pub mod similarity;

pub use error::{Error, Result};

/// Threads the rayon pool uses.
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}
