//! Streaming neuron statistics per group (language) × layer × neuron: count,
//! mean, variance and the rate of positive activations, in one pass over
//! token-level hidden states; and LAPE (Tang et al. 2024), the entropy over
//! groups of the normalised activation probability.
mod files;
mod kernel;

use half::f16;
use ndarray::{Array2, Array3, ArrayView1, ArrayView3, Axis};

use crate::error::{ensure_data, ensure_shape, Error, Result};
pub use files::{ChunkFiles, IndexAt};
pub use kernel::{Dtype, Simd};
use kernel::{Part, Row};

/// A borrowed (token, layer, hidden) block in its stored dtype.
#[derive(Clone, Copy)]
pub enum Block3<'a> {
    F32(ArrayView3<'a, f32>),
    F16(ArrayView3<'a, f16>),
    /// bfloat16 as its raw 16-bit pattern.
    BF16(ArrayView3<'a, u16>),
}

impl Block3<'_> {
    pub fn dim(&self) -> (usize, usize, usize) {
        match self {
            Block3::F32(a) => a.dim(),
            Block3::F16(a) => a.dim(),
            Block3::BF16(a) => a.dim(),
        }
    }
}

/// Additive partial statistics; `merge` combines two partials exactly, so a
/// dump can be reduced chunk by chunk, in any order, on any machine.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronStats {
    /// Tokens per group.
    pub count: Vec<u64>,
    layers: usize,
    hidden: usize,
    /// Sums of x, of x², and counts of x > 0, per group, cut by columns.
    parts: Vec<Part>,
}

impl NeuronStats {
    /// Empty statistics; panics where [`try_new`](Self::try_new) fails.
    pub fn new(groups: usize, layers: usize, hidden: usize) -> Self {
        Self::try_new(groups, layers, hidden).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Empty statistics, sizes checked first: a `Config` error when the
    /// (group, layer, hidden) tables would overflow or not fit in memory.
    pub fn try_new(groups: usize, layers: usize, hidden: usize) -> Result<Self> {
        // sum, sum of squares and positive count: 8 bytes each
        crate::limits::table(
            "neuron statistics",
            &[("groups", groups), ("layers", layers), ("hidden", hidden)],
            24,
        )?;
        Ok(NeuronStats {
            count: vec![0; groups],
            layers,
            hidden,
            parts: kernel::parts(groups, layers * hidden),
        })
    }

    pub fn groups(&self) -> usize {
        self.count.len()
    }

    /// Add a block of hidden states; `group[t]` is token t's group in
    /// `0..groups`, or a negative value to skip the token (padding).
    pub fn update(&mut self, x: Block3<'_>, group: ArrayView1<'_, i32>) -> Result<()> {
        let (t, l, h) = x.dim();
        ensure_shape(l == self.layers && h == self.hidden, || {
            format!(
                "hidden block has {l} layers × {h} units but the statistics were started with {} × {}; feed blocks of one dump only",
                self.layers, self.hidden
            )
        })?;
        ensure_shape(group.len() == t, || {
            format!(
                "{t} tokens in the hidden block but {} group ids; pass one group id per token",
                group.len()
            )
        })?;
        let group = group.to_vec();
        match x {
            Block3::F32(a) => self.update_view(Dtype::F32, a, &group),
            Block3::F16(a) => self.update_view(Dtype::F16, a, &group),
            Block3::BF16(a) => self.update_view(Dtype::BF16, a, &group),
        }
    }

    fn update_view<T: Clone>(
        &mut self,
        dtype: Dtype,
        a: ArrayView3<'_, T>,
        group: &[i32],
    ) -> Result<()> {
        let a = a.as_standard_layout();
        let d = self.layers * self.hidden;
        let base = a.as_ptr().cast::<u8>();
        let rows: Vec<Row> = (0..group.len())
            .map(|t| Row(base.wrapping_add(t * d * dtype.size())))
            .collect();
        // SAFETY: `a` is contiguous (token, layer, hidden) and outlives the call.
        unsafe { self.update_rows(dtype, &rows, group, 0) }
    }

    /// Add token rows of `layers × hidden` values each, one per group id;
    /// errors number the tokens from `first`.
    ///
    /// # Safety
    /// Each row must point at `layers × hidden` readable values of `dtype`.
    pub(crate) unsafe fn update_rows(
        &mut self,
        dtype: Dtype,
        rows: &[Row],
        group: &[i32],
        first: usize,
    ) -> Result<()> {
        let g = self.groups() as i32;
        if let Some(bad) = group.iter().find(|&&v| v >= g) {
            return Err(Error::Data(format!(
                "group id {bad} out of range for {g} groups; ids must be 0..{g} (negative = skip)"
            )));
        }
        for &v in group.iter().filter(|&&v| v >= 0) {
            self.count[v as usize] += 1;
        }
        match kernel::accumulate(dtype, rows, group, &mut self.parts) {
            Some((token, col)) => Err(Error::Data(format!(
                "a hidden state at token {}, layer {}, unit {} is NaN or inf; the dump may be corrupt or truncated (missing chunks read as NaN)",
                first + token,
                col / self.hidden,
                col % self.hidden
            ))),
            None => Ok(()),
        }
    }

    /// Combine another partial into this one.
    pub fn merge(&mut self, other: &NeuronStats) -> Result<()> {
        ensure_shape(
            (self.groups(), self.layers, self.hidden)
                == (other.groups(), other.layers, other.hidden),
            || {
                format!(
                    "cannot merge statistics of {} groups × {} layers × {} units with {} × {} × {}",
                    self.groups(),
                    self.layers,
                    self.hidden,
                    other.groups(),
                    other.layers,
                    other.hidden
                )
            },
        )?;
        let layout = |s: &NeuronStats| {
            s.parts
                .iter()
                .map(|p| (p.start, p.width))
                .collect::<Vec<_>>()
        };
        if layout(self) != layout(other) {
            // made under another thread count: cut the same way as this one
            let (sum, sumsq, positive) = (other.sum(), other.sumsq(), other.positive());
            let other = NeuronStats::from_parts(
                other.count.clone(),
                sum.view(),
                sumsq.view(),
                positive.view(),
            )?;
            return self.merge(&other);
        }
        for (a, b) in self.count.iter_mut().zip(&other.count) {
            *a += b;
        }
        for (a, b) in self.parts.iter_mut().zip(&other.parts) {
            a.sum.iter_mut().zip(&b.sum).for_each(|(x, y)| *x += y);
            a.sumsq.iter_mut().zip(&b.sumsq).for_each(|(x, y)| *x += y);
            a.positive
                .iter_mut()
                .zip(&b.positive)
                .for_each(|(x, y)| *x += y);
        }
        Ok(())
    }

    /// One accumulator as a (group, layer, hidden) array.
    fn gather<T: Copy + Default>(&self, field: impl Fn(&Part) -> &[T]) -> Array3<T> {
        let (g, d) = (self.groups(), self.layers * self.hidden);
        let mut out = Array3::from_elem((g, self.layers, self.hidden), T::default());
        let flat = out.as_slice_mut().expect("fresh array is contiguous");
        for p in &self.parts {
            for gi in 0..g {
                let src = &field(p)[gi * p.width..(gi + 1) * p.width];
                flat[gi * d + p.start..gi * d + p.start + p.width].copy_from_slice(src);
            }
        }
        out
    }

    /// Sums of x, (group, layer, hidden).
    pub fn sum(&self) -> Array3<f64> {
        self.gather(|p| &p.sum)
    }

    /// Sums of x², (group, layer, hidden).
    pub fn sumsq(&self) -> Array3<f64> {
        self.gather(|p| &p.sumsq)
    }

    /// Counts of x > 0, (group, layer, hidden).
    pub fn positive(&self) -> Array3<u64> {
        self.gather(|p| &p.positive)
    }

    /// Rebuild from `count` and the (group, layer, hidden) arrays of
    /// [`sum`](Self::sum), [`sumsq`](Self::sumsq), [`positive`](Self::positive).
    pub fn from_parts(
        count: Vec<u64>,
        sum: ArrayView3<'_, f64>,
        sumsq: ArrayView3<'_, f64>,
        positive: ArrayView3<'_, u64>,
    ) -> Result<Self> {
        let (g, l, h) = sum.dim();
        ensure_shape(
            count.len() == g && sumsq.dim() == (g, l, h) && positive.dim() == (g, l, h),
            || {
                format!(
                    "state arrays disagree: count {}, sum {:?}, sumsq {:?}, positive {:?}; pass (group, layer, hidden) arrays of one accumulator",
                    count.len(),
                    sum.dim(),
                    sumsq.dim(),
                    positive.dim()
                )
            },
        )?;
        let mut s = NeuronStats::try_new(g, l, h)?;
        s.count = count;
        let d = l * h;
        let (sum, sumsq, positive) = (
            sum.as_standard_layout(),
            sumsq.as_standard_layout(),
            positive.as_standard_layout(),
        );
        let (sum, sumsq, positive) = (
            sum.as_slice().expect("standard layout"),
            sumsq.as_slice().expect("standard layout"),
            positive.as_slice().expect("standard layout"),
        );
        for p in &mut s.parts {
            for gi in 0..g {
                let src = gi * d + p.start..gi * d + p.start + p.width;
                let dst = gi * p.width..(gi + 1) * p.width;
                p.sum[dst.clone()].copy_from_slice(&sum[src.clone()]);
                p.sumsq[dst.clone()].copy_from_slice(&sumsq[src.clone()]);
                p.positive[dst].copy_from_slice(&positive[src]);
            }
        }
        Ok(s)
    }

    /// Mean, population variance and positive rate, each (group, layer, hidden).
    /// Groups without tokens are an error (their statistics are undefined).
    pub fn finish(&self) -> Result<(Array3<f64>, Array3<f64>, Array3<f64>)> {
        if let Some(g) = self.count.iter().position(|&c| c == 0) {
            return Err(Error::Data(format!(
                "group {g} has no tokens; drop it from the grouping or add its data"
            )));
        }
        let (mut mean, mut var) = (self.sum(), self.sumsq());
        let mut rate = self.positive().mapv(|c| c as f64);
        for (gi, &n) in self.count.iter().enumerate() {
            let n = n as f64;
            ndarray::Zip::from(mean.index_axis_mut(Axis(0), gi))
                .and(var.index_axis_mut(Axis(0), gi))
                .and(rate.index_axis_mut(Axis(0), gi))
                .for_each(|m, v, r| {
                    let mu = *m / n;
                    *m = mu;
                    *v = (*v / n - mu * mu).max(0.0);
                    *r /= n;
                });
        }
        Ok((mean, var, rate))
    }
}

/// LAPE per (layer, hidden): with p = positive rate (group, layer, hidden),
/// normalise over groups, p' = p / Σ_g p, and take -Σ_g p' ln p' (natural log).
/// Neurons never active in any group get NaN (no distribution to speak of).
pub fn lape(rate: ArrayView3<'_, f64>) -> Array2<f64> {
    let (_, l, h) = rate.dim();
    let mut out = Array2::zeros((l, h));
    for ((li, hi), e) in out.indexed_iter_mut() {
        let col = rate.slice(ndarray::s![.., li, hi]);
        let total: f64 = col.sum();
        *e = if total > 0.0 {
            -col.iter()
                .filter(|&&p| p > 0.0)
                .map(|&p| (p / total) * (p / total).ln())
                .sum::<f64>()
        } else {
            f64::NAN
        };
    }
    out
}

/// Language-specific neurons (Tang et al. 2024): among neurons whose maximum
/// positive rate over groups reaches `min_rate`, the `top` fraction with the
/// lowest LAPE; each is assigned to every group whose rate reaches
/// `min_rate`. Returns a (group, layer, hidden) mask.
pub fn specific(
    rate: ArrayView3<'_, f64>,
    lape: &Array2<f64>,
    top: f64,
    min_rate: f64,
) -> Result<Array3<bool>> {
    ensure_data(
        (0.0..=1.0).contains(&top) && (0.0..=1.0).contains(&min_rate),
        || format!("top ({top}) and min_rate ({min_rate}) must lie in [0, 1]"),
    )?;
    let (g, l, h) = rate.dim();
    let eligible = |li: usize, hi: usize| {
        rate.slice(ndarray::s![.., li, hi])
            .iter()
            .any(|&p| p >= min_rate)
    };
    let mut cand: Vec<(f64, usize, usize)> = lape
        .indexed_iter()
        .filter(|&((li, hi), e)| e.is_finite() && eligible(li, hi))
        .map(|((li, hi), &e)| (e, li, hi))
        .collect();
    cand.sort_by(|a, b| a.0.total_cmp(&b.0));
    let keep = ((l * h) as f64 * top).round() as usize;
    let mut mask = Array3::from_elem((g, l, h), false);
    for &(_, li, hi) in cand.iter().take(keep) {
        for gi in 0..g {
            mask[[gi, li, hi]] = rate[[gi, li, hi]] >= min_rate;
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};

    fn stats(x: &Array3<f32>, g: &Array1<i32>, groups: usize) -> NeuronStats {
        let (_, l, h) = x.dim();
        let mut s = NeuronStats::new(groups, l, h);
        s.update(Block3::F32(x.view()), g.view()).unwrap();
        s
    }

    #[test]
    fn mean_variance_rate_by_group() {
        let x = Array3::from_shape_vec((4, 1, 2), vec![1.0, -1.0, 3.0, -1.0, 2.0, 5.0, -2.0, 5.0])
            .unwrap();
        let (mean, var, rate) = stats(&x, &array![0, 0, 1, 1], 2).finish().unwrap();
        assert_eq!(mean[[0, 0, 0]], 2.0);
        assert_eq!(var[[0, 0, 0]], 1.0);
        assert_eq!(rate[[1, 0, 0]], 0.5);
        assert_eq!(rate[[1, 0, 1]], 1.0);
    }

    #[test]
    fn miri_split_and_merge_equals_one_pass() {
        let x = Array3::from_shape_fn((6, 2, 3), |(t, l, h)| {
            (t * 7 + l * 3 + h) as f32 % 5.0 - 2.0
        });
        let g = array![0, 1, 2, 0, -1, 1];
        let whole = stats(&x, &g, 3);
        let mut a = stats(
            &x.slice(ndarray::s![..3, .., ..]).to_owned(),
            &g.slice(ndarray::s![..3]).to_owned(),
            3,
        );
        a.merge(&stats(
            &x.slice(ndarray::s![3.., .., ..]).to_owned(),
            &g.slice(ndarray::s![3..]).to_owned(),
            3,
        ))
        .unwrap();
        assert_eq!(a, whole);
        assert_eq!(whole.count, vec![2, 2, 1]);
    }

    #[test]
    fn partials_cut_differently_still_merge() {
        let x = Array3::from_shape_fn((5, 2, 1100), |(t, l, h)| {
            ((t * 5 + l * 3 + h) % 9) as f32 - 4.0
        });
        let g = array![0, 1, 1, 0, 1];
        let whole = stats(&x, &g, 2);
        assert!(whole.parts.len() > 1);
        let mut one = whole.clone();
        one.parts = vec![Part {
            start: 0,
            width: 2200,
            sum: whole.sum().into_raw_vec_and_offset().0,
            sumsq: whole.sumsq().into_raw_vec_and_offset().0,
            positive: whole.positive().into_raw_vec_and_offset().0,
        }];
        let mut a = whole.clone();
        a.merge(&one).unwrap();
        let mut b = whole.clone();
        b.merge(&whole).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn lape_is_zero_for_one_group_and_log_g_for_uniform() {
        let rate = Array3::from_shape_vec((2, 1, 2), vec![0.8, 0.5, 0.0, 0.5]).unwrap();
        let e = lape(rate.view());
        assert_eq!(e[[0, 0]], 0.0);
        assert!((e[[0, 1]] - 2f64.ln()).abs() < 1e-12);
        let m = specific(rate.view(), &e, 0.5, 0.6).unwrap();
        assert!(m[[0, 0, 0]] && !m[[1, 0, 0]] && !m[[0, 0, 1]]);
    }

    #[test]
    fn errors_are_clear() {
        let x = Array3::<f32>::zeros((2, 1, 1));
        let mut s = NeuronStats::new(1, 1, 1);
        assert!(matches!(
            s.update(Block3::F32(x.view()), array![0, 1].view()),
            Err(Error::Data(_))
        ));
        assert!(matches!(
            s.update(Block3::F32(x.view()), array![0].view()),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            NeuronStats::new(2, 1, 1).finish(),
            Err(Error::Data(_))
        ));
        let nan = Array3::from_elem((1, 1, 1), f32::NAN);
        assert!(matches!(
            s.update(Block3::F32(nan.view()), array![0].view()),
            Err(Error::Data(_))
        ));
    }
}
