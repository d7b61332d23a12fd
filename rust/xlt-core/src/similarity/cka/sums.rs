//! Shifted running sums of CKA's feature-space statistics for M matrices
//! sharing rows: fed row block by row block (streaming), and mergeable —
//! states of disjoint rows taken with the same shift add up (dask).
use ndarray::{Array1, Array2, Axis, ShapeBuilder};
use rayon::prelude::*;
use std::fmt;

use super::{all_pairs, CkaStats, Precision};
use crate::error::{ensure_data, ensure_shape, Error, Result};
use crate::matrix::Mat;
use crate::similarity::blocks::{decode_summed, BlockSums, Scalar, BLOCK_ROWS};
use crate::similarity::gemm::Scratch;
use faer::Par;

/// `Ok` when a block whose centred values have `sq` as the sum of their
/// squares multiplies in f32 without overflow (every product and partial sum
/// is at most `sq`) or underflow. In-memory callers rescale first
/// (`scale::at_unit_scale`); streamed blocks cannot, so they are refused.
fn in_f32_range(sq: f64, name: &str, start: usize, end: usize) -> Result<()> {
    ensure_data(
        sq == 0.0 || (2f64.powi(-100)..=2f64.powi(120)).contains(&sq),
        || {
            format!(
            "{name} rows {start}:{end} have centred values whose squares sum to {sq:e}, outside \
             [2^-100, 2^120] where float32 products are exact to 1e-7; CKA is scale-invariant: \
             multiply every block of {name} by one constant (e.g. 1 / max |value|) first"
        )
        },
    )
}

/// Rows per block of [`Sums::update_all`] (and of the in-memory feature route).
pub const STREAM_ROWS: usize = BLOCK_ROWS;

/// Shifted running sums for M matrices sharing rows; feeds row blocks in
/// one pass (streaming). Each matrix is shifted by a reference row (its exact
/// mean, or the first block's mean when streaming) before products are
/// formed, so centring afterwards is exact and free of cancellation.
pub struct Sums {
    dims: Vec<usize>,
    pairs: Vec<(usize, usize)>,
    n: usize,
    shift: Vec<Vec<f64>>,
    s: Vec<Vec<f64>>,
    asum: Vec<f64>,
    c: Vec<Array2<f64>>,
    t: Vec<Array2<f64>>,
    r: Array2<f64>,
    prec: Precision,
    /// Whether the shift rows were given (not taken from the first block).
    given_shift: bool,
}

/// Kept pairs and per-matrix shift rows.
type Layout = (Vec<(usize, usize)>, Vec<Vec<f64>>);

/// An F-ordered (p × q) zero matrix in a pooled buffer, so its pages are
/// mapped already: fresh pages fault on the product kernel's first store to
/// each (6,144 faults in each linear CKA at d = 1024), and calloc'd ones map
/// the shared zero page, whose write faults also flush the TLB of every core
/// (~10 % of a linear CKA before the sums were written when allocated).
fn pooled_zeros(p: usize, q: usize) -> Array2<f64> {
    let mut v = Scratch.take::<f64>(p * q);
    v.truncate(p * q);
    v.fill(0.0);
    Array2::from_shape_vec((p, q).f(), v).expect("p·q values")
}

impl Drop for Sums {
    fn drop(&mut self) {
        for c in std::mem::take(&mut self.c) {
            Scratch.give(c.into_raw_vec_and_offset().0);
        }
    }
}

impl Sums {
    /// Sums for matrices of widths `dims`, keeping cross products for `pairs`
    /// (p ≤ q). `shift`: per-matrix reference rows, or empty to take the first
    /// block's means. Products run in `prec`.
    pub fn new(
        dims: &[usize],
        pairs: &[(usize, usize)],
        shift: Vec<Vec<f64>>,
        prec: Precision,
    ) -> Self {
        let m = dims.len();
        Sums {
            given_shift: !shift.is_empty(),
            dims: dims.to_vec(),
            pairs: pairs.to_vec(),
            n: 0,
            shift,
            s: dims.iter().map(|&d| vec![0.0; d]).collect(),
            asum: vec![0.0; m],
            c: pairs
                .iter()
                .map(|&(p, q)| pooled_zeros(dims[p], dims[q]))
                .collect(),
            t: dims.iter().map(|&d| Array2::zeros((d, m).f())).collect(),
            r: Array2::zeros((m, m)),
            prec,
        }
    }

    /// [`Sums::new`] with the layout checked: `pairs` (default all) must be
    /// p ≤ q < m, `shift` rows (default: the first block's means) must match
    /// `dims` (`Shape` errors), and the sums must fit memory (`Config`).
    /// Debiased CKA needs its products in f64 ([`Precision::for_cka`]).
    pub fn checked(
        dims: &[usize],
        pairs: Option<Vec<(usize, usize)>>,
        shift: Option<Vec<Vec<f64>>>,
        debiased: bool,
    ) -> Result<Self> {
        let (pairs, shift) = Self::layout(dims, pairs, shift)?;
        Self::check_sizes(dims, &pairs)?;
        Ok(Self::new(dims, &pairs, shift, Precision::for_cka(debiased)))
    }

    /// [`Sums::from_state`] with the layout checked as in [`Sums::checked`].
    pub fn restored(
        dims: &[usize],
        state: &[f64],
        pairs: Option<Vec<(usize, usize)>>,
        shift: Option<Vec<Vec<f64>>>,
        debiased: bool,
    ) -> Result<Self> {
        let (pairs, shift) = Self::layout(dims, pairs, shift)?;
        Self::from_state(dims, &pairs, shift, Precision::for_cka(debiased), state)
    }

    /// The kept pairs (default all) and shift rows (default none), checked.
    fn layout(
        dims: &[usize],
        pairs: Option<Vec<(usize, usize)>>,
        shift: Option<Vec<Vec<f64>>>,
    ) -> Result<Layout> {
        let pairs = pairs.unwrap_or_else(|| all_pairs(dims.len()));
        if let Some(&(p, q)) = pairs.iter().find(|&&(p, q)| p > q || q >= dims.len()) {
            return Err(Error::Shape(format!(
                "pair ({p}, {q}) is not p <= q < {} (the number of matrices)",
                dims.len()
            )));
        }
        let shift = shift.unwrap_or_default();
        let widths: Vec<usize> = shift.iter().map(|s| s.len()).collect();
        ensure_shape(shift.is_empty() || widths == dims, || {
            format!("shift widths {widths:?} do not match the matrix widths {dims:?}")
        })?;
        Ok((pairs, shift))
    }

    /// Rows seen so far.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Add rows `start..end` of every matrix (`mats[p]` has width `dims[p]`).
    pub fn update(
        &mut self,
        mats: &[Mat],
        start: usize,
        end: usize,
        names: &[String],
    ) -> Result<()> {
        ensure_shape(mats.len() == self.dims.len(), || {
            format!(
                "expected {} matrices per update, got {}",
                self.dims.len(),
                mats.len()
            )
        })?;
        for (p, m) in mats.iter().enumerate() {
            ensure_shape(m.ncols() == self.dims[p], || {
                format!(
                    "{} has {} columns, earlier blocks had {}",
                    names[p],
                    m.ncols(),
                    self.dims[p]
                )
            })?;
        }
        if end <= start {
            return Ok(());
        }
        if self.shift.is_empty() {
            let rows = (end - start) as f64;
            self.shift = mats
                .par_iter()
                .zip(names)
                .map(|(m, nm)| decode_summed(m, start, end, None, nm, vec![], false))
                .map(|r| r.map(|(_, s)| s.sums.into_iter().map(|v| v / rows).collect()))
                .collect::<Result<_>>()?;
        }
        // Row norms² (the Gram diagonals) feed only debiased CKA's terms.
        let kernel_terms = self.prec == Precision::F64;
        let (blocks, per_block): (Vec<Array2<f32>>, Vec<BlockSums>) = mats
            .par_iter()
            .zip(&self.shift)
            .zip(names)
            .map(|((m, sh), nm)| {
                let buf = Scratch.take((end - start) * m.ncols());
                decode_summed(m, start, end, Some(sh), nm, buf, kernel_terms)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let mm = self.dims.len();
        let rows = end - start;
        for (b, nm) in per_block.iter().zip(names) {
            in_f32_range(b.sq, nm, start, end)?;
        }
        let mut a64 = Array2::<f64>::zeros((if kernel_terms { rows } else { 0 }, mm));
        for (p, b) in per_block.into_iter().enumerate() {
            for (acc, v) in self.s[p].iter_mut().zip(b.sums) {
                *acc += v;
            }
            self.asum[p] += b.sq;
            if let Some(norms) = b.norms {
                a64.column_mut(p).assign(&Array1::from(norms));
            }
        }
        if kernel_terms {
            for p in 0..mm {
                for q in 0..mm {
                    self.r[[p, q]] += a64.column(p).dot(&a64.column(q));
                }
            }
            self.products::<f64>(&blocks, Some(&a64.mapv(|v| v as f32)));
        } else {
            self.products::<f32>(&blocks, None);
        }
        for b in blocks {
            Scratch.give(b.into_raw_vec_and_offset().0);
        }
        self.n += rows;
        Ok(())
    }

    /// The block products; `a` (the blocks' row norms²) also gives debiased
    /// CKA's norm–feature products.
    fn products<T: Scalar>(&mut self, blocks: &[Array2<f32>], a: Option<&Array2<f32>>) {
        let scratch = &Scratch;
        let blocks: Vec<_> = blocks.par_iter().map(|b| T::operand(b, scratch)).collect();
        if let Some(a) = a {
            let a = T::operand(a, scratch);
            self.t
                .par_iter_mut()
                .zip(&blocks)
                .for_each(|(t, b)| T::add_tn(t, b, &a, Par::Seq));
        }
        // Independent products run side by side, each sequential: robust to
        // busy machines; only a lone product is parallelised inside.
        let par = if self.pairs.len() > 1 {
            Par::Seq
        } else {
            Par::rayon(0)
        };
        self.c
            .par_iter_mut()
            .zip(&self.pairs)
            .for_each(|(c, &(p, q))| {
                if p == q {
                    T::add_syrk(c, &blocks[p], par);
                } else {
                    T::add_tn(c, &blocks[p], &blocks[q], par);
                }
            });
    }

    /// Add every row of `mats` (equal row counts), in blocks of
    /// [`STREAM_ROWS`] rows counted from row 0, as [`pairwise_stats`] does.
    pub fn update_all(&mut self, mats: &[Mat], names: &[String]) -> Result<()> {
        let n = mats.first().map_or(0, |m| m.nrows());
        for (m, nm) in mats.iter().zip(names) {
            ensure_shape(m.nrows() == n, || {
                format!(
                    "{nm} has {} rows but {} has {n}; rows must be paired samples",
                    m.nrows(),
                    names[0]
                )
            })?;
        }
        for (s, e) in mats
            .first()
            .map(|m| m.blocks(BLOCK_ROWS))
            .into_iter()
            .flatten()
        {
            self.update(mats, s, e, names)?;
        }
        Ok(())
    }

    /// `Config` error unless sums for `dims` and `pairs` (indices into
    /// `dims`) can be held: no overflow, and within physical memory.
    pub fn check_sizes(dims: &[usize], pairs: &[(usize, usize)]) -> Result<()> {
        let m = dims.len();
        let bad = pairs.iter().find(|&&(p, q)| p >= m || q >= m);
        if let Some((p, q)) = bad {
            return Err(Error::Config(format!(
                "pair ({p}, {q}) names a matrix beyond the {m} given"
            )));
        }
        let total: usize = dims
            .iter()
            .try_fold(0usize, |a, &d| a.checked_add(d))
            .unwrap_or(usize::MAX);
        let values = pairs
            .iter()
            .map(|&(p, q)| dims[p].checked_mul(dims[q]))
            .chain([total.checked_mul(m + 1), m.checked_mul(m)])
            .try_fold(1usize, |a, v| v.and_then(|v| a.checked_add(v)));
        crate::limits::table(
            &format!("CKA sums for widths {dims:?}"),
            &[("f64 values", values.unwrap_or(usize::MAX))],
            8,
        )
        .map(drop)
    }

    /// Length of [`Sums::state`] for these widths and pairs.
    pub fn state_len(dims: &[usize], pairs: &[(usize, usize)]) -> usize {
        let m = dims.len();
        let total: usize = dims.iter().sum();
        let cross: usize = pairs.iter().map(|&(p, q)| dims[p] * dims[q]).sum();
        1 + total + m + cross + total * m + m * m
    }

    /// The running sums as one flat vector: n, column sums, row-norm sums,
    /// cross products, norm products, norm cross sums. Partial states of
    /// disjoint rows taken with the same shift add up elementwise to the
    /// state of all their rows (how dask tree-reduces them).
    pub fn state(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(Self::state_len(&self.dims, &self.pairs));
        out.push(self.n as f64);
        self.s.iter().for_each(|s| out.extend_from_slice(s));
        out.extend_from_slice(&self.asum);
        for a in self.c.iter().chain(&self.t) {
            out.extend(a.as_slice_memory_order().expect("contiguous sums"));
        }
        out.extend(self.r.iter());
        out
    }

    /// Sums rebuilt from a (possibly summed) [`Sums::state`] of rows shifted by `shift`.
    pub fn from_state(
        dims: &[usize],
        pairs: &[(usize, usize)],
        shift: Vec<Vec<f64>>,
        prec: Precision,
        state: &[f64],
    ) -> Result<Self> {
        Self::check_sizes(dims, pairs)?;
        let want = Self::state_len(dims, pairs);
        ensure_shape(state.len() == want, || {
            format!(
                "a CKA state for widths {dims:?} and {} pairs has {want} values, got {}",
                pairs.len(),
                state.len()
            )
        })?;
        ensure_data(state[0] >= 0.0 && state[0].fract() == 0.0, || {
            format!("a CKA state starts with its row count, got {}", state[0])
        })?;
        let mut sums = Sums::new(dims, pairs, shift, prec);
        sums.n = state[0] as usize;
        let mut rest = &state[1..];
        let mut take = |dst: &mut [f64]| {
            let (head, tail) = rest.split_at(dst.len());
            dst.copy_from_slice(head);
            rest = tail;
        };
        sums.s.iter_mut().for_each(|s| take(s));
        take(&mut sums.asum);
        for a in sums.c.iter_mut().chain(sums.t.iter_mut()) {
            take(a.as_slice_memory_order_mut().expect("contiguous sums"));
        }
        take(sums.r.as_slice_mut().expect("contiguous sums"));
        Ok(sums)
    }

    /// Column means of every matrix over the rows seen.
    pub fn column_means(&self) -> Vec<Vec<f64>> {
        let n = self.n.max(1) as f64;
        self.s
            .iter()
            .enumerate()
            .map(|(p, s)| {
                let sh = self.shift.get(p);
                s.iter()
                    .enumerate()
                    .map(|(i, v)| v / n + sh.map_or(0.0, |sh| sh[i]))
                    .collect()
            })
            .collect()
    }

    /// `‖X̄_pᵀX̄_q‖²` and `μ_pᵀ X̄_pᵀX̄_q μ_q` for kept pair `k`, read from the
    /// shifted sums (`C̄ = C − s_p s_qᵀ/n`) one column at a time; for `p = q`
    /// only the stored lower triangle, off-diagonal terms counted twice.
    fn centred_terms(&self, k: usize, mu: &[Vec<f64>]) -> (f64, f64) {
        let (p, q) = self.pairs[k];
        let n = self.n as f64;
        let (sp, sq) = (&self.s[p], &self.s[q]);
        let (mut h, mut cross) = (0.0, 0.0);
        for (j, col) in self.c[k].axis_iter(Axis(1)).enumerate() {
            let col = col.to_slice().expect("column-major sums");
            let (from, w) = if p == q { (j + 1, 2.0) } else { (0, 1.0) };
            let (mut hj, mut xj) = (0.0, 0.0);
            for ((c, s), m) in col[from..].iter().zip(&sp[from..]).zip(&mu[p][from..]) {
                let v = c - s * sq[j] / n;
                hj += v * v;
                xj += v * m;
            }
            if p == q {
                let v = col[j] - sp[j] * sq[j] / n;
                (hj, xj) = (w * hj + v * v, w * xj + v * mu[p][j]);
            }
            h += hj;
            cross += xj * mu[q][j];
        }
        (h, cross)
    }

    /// CKA statistics (NaN for pairs not kept).
    pub fn stats(&self) -> CkaStats {
        let mm = self.dims.len();
        let n = self.n as f64;
        let mu: Vec<Vec<f64>> = self
            .s
            .iter()
            .map(|s| s.iter().map(|v| v / n).collect())
            .collect();
        let msq: Vec<f64> = mu.iter().map(|m| m.iter().map(|v| v * v).sum()).collect();
        let tr: Vec<f64> = (0..mm).map(|p| self.asum[p] - n * msq[p]).collect();
        let mut hsic = Array2::from_elem((mm, mm), f64::NAN);
        let mut kl = Array2::from_elem((mm, mm), f64::NAN);
        for (k, &(p, q)) in self.pairs.iter().enumerate() {
            let (h, cbar_mu) = self.centred_terms(k, &mu);
            // Σ k_i l_i expanded in shifted sums (see module docs of `Sums`).
            let t_qp: f64 = self.t[q]
                .column(p)
                .iter()
                .zip(&mu[q])
                .map(|(a, b)| a * b)
                .sum();
            let t_pq: f64 = self.t[p]
                .column(q)
                .iter()
                .zip(&mu[p])
                .map(|(a, b)| a * b)
                .sum();
            // μ_pᵀ C_pq μ_q of the shifted product, via the centred one (C = C̄ + n μ_p μ_qᵀ).
            let cross = cbar_mu + n * msq[p] * msq[q];
            let v = self.r[[p, q]] - 2.0 * t_qp - 2.0 * t_pq
                + 4.0 * cross
                + msq[q] * self.asum[p]
                + msq[p] * self.asum[q]
                - 3.0 * n * msq[p] * msq[q];
            for (i, j) in [(p, q), (q, p)] {
                hsic[[i, j]] = h;
                kl[[i, j]] = if self.prec == Precision::F64 {
                    v
                } else {
                    f64::NAN
                };
            }
        }
        CkaStats {
            n: self.n,
            hsic,
            kl,
            tr,
            names: vec![],
        }
    }
}

impl fmt::Display for Sums {
    /// `dims=[..], pairs=N, shifted=.., debiased=.., n=..`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dims={:?}, pairs={}, shifted={}, debiased={}, n={}",
            self.dims,
            self.pairs.len(),
            self.given_shift,
            self.prec == Precision::F64,
            self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::data;
    use super::super::{pairwise_stats, Route};
    use super::*;

    #[test]
    fn summed_partial_states_equal_one_pass() {
        let (x, y) = (data(5000, 7, 4), data(5000, 5, 5));
        let mats = [Mat::F32(x.view()), Mat::F32(y.view())];
        let names = ["X".to_string(), "Y".to_string()];
        let (dims, pairs) = ([7, 5], all_pairs(2));
        let mut means = Sums::new(&dims, &[], vec![vec![0.0; 7], vec![0.0; 5]], Precision::F64);
        means.update_all(&mats, &names).unwrap();
        let shift = means.column_means();
        for prec in [Precision::F32, Precision::F64] {
            let mut total = vec![0.0; Sums::state_len(&dims, &pairs)];
            for (s, e) in [(0, 2 * STREAM_ROWS), (2 * STREAM_ROWS, 5000)] {
                let part = [
                    Mat::F32(x.slice(ndarray::s![s..e, ..])),
                    Mat::F32(y.slice(ndarray::s![s..e, ..])),
                ];
                let mut sums = Sums::new(&dims, &pairs, shift.clone(), prec);
                sums.update_all(&part, &names).unwrap();
                for (t, v) in total.iter_mut().zip(sums.state()) {
                    *t += v;
                }
            }
            let merged = Sums::from_state(&dims, &pairs, shift.clone(), prec, &total).unwrap();
            let st = CkaStats {
                names: names.to_vec(),
                ..merged.stats()
            };
            let whole = pairwise_stats(&mats, &names, Some(Route::Feature), prec).unwrap();
            assert_eq!(st.n, 5000);
            assert!((st.linear(0, 1).unwrap() / whole.linear(0, 1).unwrap() - 1.0).abs() < 1e-12);
            if prec == Precision::F64 {
                let d = st.debiased(0, 1).unwrap() / whole.debiased(0, 1).unwrap();
                assert!((d - 1.0).abs() < 1e-9);
            } else {
                assert!(matches!(st.debiased(0, 1), Err(Error::Shape(_))));
            }
        }
        let total = vec![0.0; Sums::state_len(&dims, &pairs) - 1];
        let short = Sums::from_state(&dims, &pairs, vec![], Precision::F32, &total);
        assert!(matches!(short, Err(Error::Shape(_))));
    }

    #[test]
    fn bad_layouts_are_shape_errors() {
        let bad = Sums::checked(&[3, 4], Some(vec![(1, 0)]), None, false);
        assert!(matches!(bad, Err(Error::Shape(m)) if m.contains("(1, 0)")));
        let bad = Sums::checked(&[3, 4], None, Some(vec![vec![0.0; 3]; 2]), true);
        assert!(matches!(bad, Err(Error::Shape(m)) if m.contains("[3, 3]")));
        let ok = Sums::checked(&[3, 4], None, Some(vec![vec![0.0; 3], vec![0.0; 4]]), true);
        assert_eq!(
            ok.unwrap().to_string(),
            "dims=[3, 4], pairs=3, shifted=true, debiased=true, n=0"
        );
    }
}
