//! Streaming neuron statistics per group (language) × layer × neuron: count,
//! mean, variance and the rate of positive activations, in one pass over
//! token-level hidden states; and LAPE (Tang et al. 2024), the entropy over
//! groups of the normalised activation probability.
use half::f16;
use ndarray::{Array2, Array3, ArrayView1, ArrayView3, Axis};
use rayon::prelude::*;

use crate::error::{ensure_data, ensure_shape, Error, Result};

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
    /// (layer, group, hidden) sums of x, of x², and counts of x > 0.
    pub sum: Array3<f64>,
    pub sumsq: Array3<f64>,
    pub positive: Array3<u64>,
}

impl NeuronStats {
    pub fn new(groups: usize, layers: usize, hidden: usize) -> Self {
        NeuronStats {
            count: vec![0; groups],
            sum: Array3::zeros((layers, groups, hidden)),
            sumsq: Array3::zeros((layers, groups, hidden)),
            positive: Array3::zeros((layers, groups, hidden)),
        }
    }

    pub fn groups(&self) -> usize {
        self.count.len()
    }

    /// Add a block of hidden states; `group[t]` is token t's group in
    /// `0..groups`, or a negative value to skip the token (padding).
    pub fn update(&mut self, x: Block3<'_>, group: ArrayView1<'_, i32>) -> Result<()> {
        let (t, l, h) = x.dim();
        let (layers, _, hidden) = self.sum.dim();
        ensure_shape(l == layers && h == hidden, || {
            format!("hidden block has {l} layers × {h} units but the statistics were started with {layers} × {hidden}; feed blocks of one dump only")
        })?;
        ensure_shape(group.len() == t, || {
            format!(
                "{t} tokens in the hidden block but {} group ids; pass one group id per token",
                group.len()
            )
        })?;
        let g = self.groups() as i32;
        if let Some(bad) = group.iter().find(|&&v| v >= g) {
            return Err(Error::Data(format!(
                "group id {bad} out of range for {g} groups; ids must be 0..{g} (negative = skip)"
            )));
        }
        for &v in group.iter().filter(|&&v| v >= 0) {
            self.count[v as usize] += 1;
        }
        let sums = self.sum.axis_iter_mut(Axis(0));
        let sqs = self.sumsq.axis_iter_mut(Axis(0));
        let pos = self.positive.axis_iter_mut(Axis(0));
        sums.into_par_iter()
            .zip(sqs.into_par_iter())
            .zip(pos.into_par_iter())
            .enumerate()
            .for_each(|(layer, ((mut s, mut q), mut p))| {
                for (ti, &gi) in group.iter().enumerate() {
                    if gi < 0 {
                        continue;
                    }
                    let gi = gi as usize;
                    let (s, q, p) = (s.row_mut(gi), q.row_mut(gi), p.row_mut(gi));
                    let (s, q, p) = (
                        s.into_slice().unwrap(),
                        q.into_slice().unwrap(),
                        p.into_slice().unwrap(),
                    );
                    let at = ndarray::s![ti, layer, ..];
                    match &x {
                        Block3::F32(a) => accumulate(a.slice(at), |v| *v, s, q, p),
                        Block3::F16(a) => accumulate(a.slice(at), |v| v.to_f32(), s, q, p),
                        Block3::BF16(a) => {
                            accumulate(a.slice(at), |v| f32::from_bits((*v as u32) << 16), s, q, p)
                        }
                    }
                }
            });
        // NaN and inf propagate into the sums: one check per block, not per value.
        match self.sum.indexed_iter().find(|(_, v)| !v.is_finite()) {
            Some(((layer, _, unit), _)) => Err(Error::Data(format!(
                "a hidden state at layer {layer}, unit {unit} is NaN or inf; the dump may be corrupt or truncated (missing chunks read as NaN)"
            ))),
            None => Ok(()),
        }
    }

    /// Combine another partial into this one.
    pub fn merge(&mut self, other: &NeuronStats) -> Result<()> {
        ensure_shape(self.sum.dim() == other.sum.dim(), || {
            format!(
                "cannot merge statistics of shape {:?} and {:?}",
                self.sum.dim(),
                other.sum.dim()
            )
        })?;
        for (a, b) in self.count.iter_mut().zip(&other.count) {
            *a += b;
        }
        self.sum += &other.sum;
        self.sumsq += &other.sumsq;
        self.positive += &other.positive;
        Ok(())
    }

    /// Mean, population variance and positive rate, each (group, layer, hidden).
    /// Groups without tokens are an error (their statistics are undefined).
    pub fn finish(&self) -> Result<(Array3<f64>, Array3<f64>, Array3<f64>)> {
        if let Some(g) = self.count.iter().position(|&c| c == 0) {
            return Err(Error::Data(format!(
                "group {g} has no tokens; drop it from the grouping or add its data"
            )));
        }
        let (l, g, h) = self.sum.dim();
        let mut mean = Array3::zeros((g, l, h));
        let mut var = Array3::zeros((g, l, h));
        let mut rate = Array3::zeros((g, l, h));
        for ((gi, li, hi), m) in mean.indexed_iter_mut() {
            let n = self.count[gi] as f64;
            let mu = self.sum[[li, gi, hi]] / n;
            *m = mu;
            var[[gi, li, hi]] = (self.sumsq[[li, gi, hi]] / n - mu * mu).max(0.0);
            rate[[gi, li, hi]] = self.positive[[li, gi, hi]] as f64 / n;
        }
        Ok((mean, var, rate))
    }
}

/// Add one decoded row into the f64 sums, sums of squares and positive counts.
#[inline(always)]
fn accumulate<T>(
    row: ArrayView1<'_, T>,
    decode: impl Fn(&T) -> f32,
    s: &mut [f64],
    q: &mut [f64],
    p: &mut [u64],
) {
    let body = |(((v, s), q), p): (((&T, &mut f64), &mut f64), &mut u64)| {
        let v = decode(v);
        let v64 = v as f64;
        *s += v64;
        *q += v64 * v64;
        *p += (v > 0.0) as u64;
    };
    match row.as_slice() {
        Some(r) => r.iter().zip(s).zip(q).zip(p).for_each(body),
        None => row.iter().zip(s).zip(q).zip(p).for_each(body),
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
    fn split_and_merge_equals_one_pass() {
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
