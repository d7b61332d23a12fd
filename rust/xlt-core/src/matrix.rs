//! Borrowed (n, d) matrices in the dtypes activations come in (f32, f16, bf16
//! stored as raw u16 bits), read block by block as f32.
use half::{bf16, f16};
use ndarray::{Array2, ArrayView2, Axis};

use crate::error::{ensure_data, Result};

/// A borrowed 2-D matrix of activations. Strides are free (C or F order).
#[derive(Clone, Copy)]
pub enum Mat<'a> {
    F32(ArrayView2<'a, f32>),
    F16(ArrayView2<'a, f16>),
    /// bfloat16 as its raw 16-bit pattern.
    BF16(ArrayView2<'a, u16>),
}

impl<'a> Mat<'a> {
    pub fn nrows(&self) -> usize {
        self.dim().0
    }
    pub fn ncols(&self) -> usize {
        self.dim().1
    }
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Mat::F32(a) => a.dim(),
            Mat::F16(a) => a.dim(),
            Mat::BF16(a) => a.dim(),
        }
    }

    /// Rows `start..end` decoded to an owned, C-ordered f32 block.
    pub fn block_f32(&self, start: usize, end: usize) -> Array2<f32> {
        let sl = ndarray::s![start..end, ..];
        match self {
            Mat::F32(a) => a.slice(sl).as_standard_layout().into_owned(),
            Mat::F16(a) => a.slice(sl).mapv(|v| v.to_f32()),
            Mat::BF16(a) => a.slice(sl).mapv(|v| bf16::from_bits(v).to_f32()),
        }
    }

    /// The whole matrix as f32 (a copy only when the dtype is not f32 or
    /// the layout is not C order).
    pub fn to_f32(&self) -> Array2<f32> {
        self.block_f32(0, self.nrows())
    }

    /// Row blocks of at most `rows` rows: `(start, end)` pairs.
    pub fn blocks(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let n = self.nrows();
        let rows = rows.max(1);
        (0..n.div_ceil(rows)).map(move |b| (b * rows, ((b + 1) * rows).min(n)))
    }
}

/// Fail with a `Data` error naming `what` if a decoded block holds NaN or inf.
pub fn check_finite(block: &Array2<f32>, what: &str) -> Result<()> {
    let bad = block
        .axis_iter(Axis(0))
        .position(|r| r.iter().any(|v| !v.is_finite()));
    ensure_data(bad.is_none(), || {
        format!(
            "{what} contains NaN or inf (first in row {}); drop or fix those rows before comparing",
            bad.unwrap_or(0)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn decodes_each_dtype_to_the_same_f32() {
        let x = array![[1.0f32, -2.5], [0.5, 4.0]];
        let h = x.mapv(f16::from_f32);
        let b = x.mapv(|v| bf16::from_f32(v).to_bits());
        for m in [Mat::F32(x.view()), Mat::F16(h.view()), Mat::BF16(b.view())] {
            assert_eq!(m.to_f32(), x);
        }
    }

    #[test]
    fn blocks_cover_rows_once() {
        let x = Array2::<f32>::zeros((10, 3));
        let b: Vec<_> = Mat::F32(x.view()).blocks(4).collect();
        assert_eq!(b, vec![(0, 4), (4, 8), (8, 10)]);
    }

    #[test]
    fn non_finite_is_a_data_error() {
        let x = array![[1.0f32, f32::NAN]];
        assert!(check_finite(&x, "X").is_err());
    }
}
