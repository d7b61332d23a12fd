//! Borrowed (n, d) matrices in the dtypes activations come in (f32, f16, bf16
//! stored as raw u16 bits), read block by block as f32.
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use ndarray::{Array2, ArrayView2};

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

    /// Rows `start..end` decoded in one pass to a C-ordered f32 block, minus
    /// `shift` (one value per column, subtracted in f64) when given, with the
    /// index of the first row holding NaN or inf. `out`'s allocation is reused.
    pub fn decode(
        &self,
        start: usize,
        end: usize,
        shift: Option<&[f64]>,
        out: Vec<f32>,
    ) -> Decoded {
        self.decode_with(start, end, shift, out, |_| {})
    }

    /// [`Mat::decode`], handing `each` every decoded row while it is in L1
    /// (statistics gathered there cost no extra pass over the block).
    pub fn decode_with(
        &self,
        start: usize,
        end: usize,
        shift: Option<&[f64]>,
        out: Vec<f32>,
        each: impl FnMut(&[f32]),
    ) -> Decoded {
        match self {
            Mat::F32(a) => decode_rows(a, start, end, shift, out, each),
            Mat::F16(a) => decode_rows(a, start, end, shift, out, each),
            Mat::BF16(a) => decode_rows(a, start, end, shift, out, each),
        }
    }

    /// Column sums of rows `start..end` in f64 (NaN or inf propagate).
    pub fn col_sums(&self, start: usize, end: usize) -> Vec<f64> {
        match self {
            Mat::F32(a) => sum_rows(a, start, end),
            Mat::F16(a) => sum_rows(a, start, end),
            Mat::BF16(a) => sum_rows(a, start, end),
        }
    }

    /// Row blocks of at most `rows` rows: `(start, end)` pairs.
    pub fn blocks(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let n = self.nrows();
        let rows = rows.max(1);
        (0..n.div_ceil(rows)).map(move |b| (b * rows, ((b + 1) * rows).min(n)))
    }
}

/// A decoded block and the first row (if any) holding NaN or inf.
pub type Decoded = (Array2<f32>, Option<usize>);

/// An element type activations come in, widened to f32.
pub(crate) trait Elem: Copy {
    fn to_f32(self) -> f32;
    /// `dst[i] = src[i].to_f32()` for slices of one length (vectorised where
    /// the type allows: f16 uses F16C when the CPU has it).
    fn widen(src: &[Self], dst: &mut [f32]) {
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v.to_f32());
    }
}

impl Elem for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl Elem for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn widen(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// bfloat16 bits.
impl Elem for u16 {
    fn to_f32(self) -> f32 {
        bf16::from_bits(self).to_f32()
    }
}

fn decode_rows<T: Elem>(
    a: &ArrayView2<T>,
    start: usize,
    end: usize,
    shift: Option<&[f64]>,
    mut out: Vec<f32>,
    mut each: impl FnMut(&[f32]),
) -> Decoded {
    let d = a.ncols();
    out.clear();
    out.reserve((end - start) * d);
    let mut bad = None;
    let rows = a.slice(ndarray::s![start..end, ..]);
    for (i, row) in rows.rows().into_iter().enumerate() {
        // grown a row at a time: each row's passes stay in L1, the block is written once
        let at = out.len();
        out.resize(at + d, 0.0);
        let o = &mut out[at..];
        match row.as_slice() {
            Some(r) => T::widen(r, o),
            None => o.iter_mut().zip(row).for_each(|(o, &v)| *o = v.to_f32()),
        }
        if let Some(c) = shift {
            o.iter_mut()
                .zip(c)
                .for_each(|(o, &c)| *o = (*o as f64 - c) as f32);
        }
        if bad.is_none() && !o.iter().fold(true, |ok, v| ok & v.is_finite()) {
            bad = Some(start + i);
        }
        each(o);
    }
    (
        Array2::from_shape_vec((end - start, d), out).expect("rows × d values"),
        bad,
    )
}

fn sum_rows<T: Elem>(a: &ArrayView2<T>, start: usize, end: usize) -> Vec<f64> {
    let mut sums = vec![0.0f64; a.ncols()];
    let mut wide = vec![0.0f32; a.ncols()];
    for row in a.slice(ndarray::s![start..end, ..]).rows() {
        match row.as_slice() {
            Some(r) => T::widen(r, &mut wide),
            None => wide.iter_mut().zip(row).for_each(|(w, &v)| *w = v.to_f32()),
        }
        sums.iter_mut()
            .zip(&wide)
            .for_each(|(s, &v)| *s += v as f64);
    }
    sums
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
            assert_eq!(m.decode(0, 2, None, vec![]), (x.clone(), None));
            assert_eq!(m.col_sums(0, 2), vec![1.5, 1.5]);
            let shifted = m.decode(1, 2, Some(&[0.5, 1.0]), vec![9.0]).0;
            assert_eq!(shifted, array![[0.0f32, 3.0]]);
        }
    }

    #[test]
    fn blocks_cover_rows_once() {
        let x = Array2::<f32>::zeros((10, 3));
        let b: Vec<_> = Mat::F32(x.view()).blocks(4).collect();
        assert_eq!(b, vec![(0, 4), (4, 8), (8, 10)]);
    }

    #[test]
    fn decode_names_the_first_non_finite_row() {
        let x = array![[1.0f32, 2.0], [1.0, f32::NAN], [f32::INFINITY, 0.0]];
        assert_eq!(Mat::F32(x.view()).decode(0, 3, None, vec![]).1, Some(1));
        assert_eq!(
            Mat::F32(x.t()).decode(1, 2, Some(&[0.0; 3]), vec![]).1,
            Some(1)
        );
    }
}
