//! Linear and debiased CKA (Kornblith et al. 2019; unbiased HSIC of Song et
//! al. 2012), from sufficient statistics computed once per matrix set.
//!
//! For centred matrices X̄, Ȳ with Grams K = X̄X̄ᵀ, L = ȲȲᵀ:
//! `tr(KL) = ‖X̄ᵀȲ‖²`, the Gram diagonals are the centred row norms² k, l,
//! and the unbiased HSIC times n(n-3) is
//! `tr(KL) − n/(n−2)·kᵀl + (Σk)(Σl)/((n−1)(n−2))`.
//! Two routes give `tr(KL)`: feature space (`X̄ᵀȲ`, cost n·dx·dy) or Gram
//! space (tiles of K and L, cost n²·d); [`pairwise_stats`] picks the cheaper.
use ndarray::{Array1, Array2, Axis, ShapeBuilder};
use rayon::prelude::*;

pub use super::blocks::Precision;
use super::blocks::{
    col_means, col_sums_sq, decode, decode_into, row_sq_norms, Scalar, BLOCK_ROWS,
};
use super::gemm::Scratch;
use crate::error::{ensure_data, ensure_shape, Error, Result};
use crate::matrix::Mat;
use faer::Par;

/// Sufficient statistics of CKA for M matrices sharing rows.
#[derive(Clone, Debug)]
pub struct CkaStats {
    /// Number of rows.
    pub n: usize,
    /// `tr(K_p K_q) = ‖X̄_pᵀ X̄_q‖²` (NaN where not computed).
    pub hsic: Array2<f64>,
    /// `k_pᵀ k_q`, k = centred row norms² (NaN where not computed).
    pub kl: Array2<f64>,
    /// `Σ k_p = ‖X̄_p‖²`.
    pub tr: Vec<f64>,
    /// Names of the matrices, for messages.
    pub names: Vec<String>,
}

impl CkaStats {
    fn zero_variance(&self, p: usize) -> Result<()> {
        ensure_data(self.tr[p] > 0.0, || {
            format!(
                "{} has zero variance (all rows identical); CKA is undefined for it",
                self.names[p]
            )
        })
    }

    /// Linear CKA between matrices `p` and `q`.
    pub fn linear(&self, p: usize, q: usize) -> Result<f64> {
        self.zero_variance(p)?;
        self.zero_variance(q)?;
        let v = self.hsic[[p, q]] / (self.hsic[[p, p]] * self.hsic[[q, q]]).sqrt();
        Ok(v.clamp(0.0, 1.0))
    }

    /// n(n−3) times the unbiased HSIC between `p` and `q`.
    fn unbiased(&self, p: usize, q: usize) -> f64 {
        let n = self.n as f64;
        self.hsic[[p, q]] - n / (n - 2.0) * self.kl[[p, q]]
            + self.tr[p] * self.tr[q] / ((n - 1.0) * (n - 2.0))
    }

    /// Debiased CKA between matrices `p` and `q` (needs n ≥ 4).
    pub fn debiased(&self, p: usize, q: usize) -> Result<f64> {
        ensure_shape(self.n >= 4, || {
            format!(
                "debiased CKA needs at least 4 rows, got {}; pass more samples",
                self.n
            )
        })?;
        ensure_shape(!self.kl[[p, q]].is_nan(), || {
            "these statistics hold linear CKA's terms only (f32 sums); compute them in f64 for debiased CKA"
                .to_string()
        })?;
        self.zero_variance(p)?;
        self.zero_variance(q)?;
        let (hp, hq) = (self.unbiased(p, p), self.unbiased(q, q));
        ensure_data(hp > 0.0 && hq > 0.0, || {
            "the unbiased HSIC of an input with itself is not positive (too few rows for its rank); \
             pass more samples or use linear CKA"
                .to_string()
        })?;
        Ok(self.unbiased(p, q) / (hp * hq).sqrt())
    }
}

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
}

/// An F-ordered (p × q) zero matrix whose pages are written now: a calloc'd
/// one maps the shared zero page, and the product kernel's first store to
/// each page then faults and flushes the TLB of every core (~10 % of a
/// linear CKA before this).
fn touched_zeros(p: usize, q: usize) -> Array2<f64> {
    let mut v = Vec::with_capacity(p * q);
    v.resize(p * q, 0.0);
    Array2::from_shape_vec((p, q).f(), v).expect("p·q values")
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
            dims: dims.to_vec(),
            pairs: pairs.to_vec(),
            n: 0,
            shift,
            s: dims.iter().map(|&d| vec![0.0; d]).collect(),
            asum: vec![0.0; m],
            c: pairs
                .iter()
                .map(|&(p, q)| touched_zeros(dims[p], dims[q]))
                .collect(),
            t: dims.iter().map(|&d| Array2::zeros((d, m).f())).collect(),
            r: Array2::zeros((m, m)),
            prec,
        }
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
            let raw: Vec<Array2<f32>> = mats
                .par_iter()
                .zip(names)
                .map(|(m, nm)| decode(m, start, end, None, nm))
                .collect::<Result<_>>()?;
            let rows = (end - start) as f64;
            self.shift = raw
                .iter()
                .map(|b| col_sums_sq(b).0.into_iter().map(|v| v / rows).collect())
                .collect();
        }
        let blocks: Vec<Array2<f32>> = mats
            .par_iter()
            .zip(&self.shift)
            .zip(names)
            .map(|((m, sh), nm)| {
                decode_into(
                    m,
                    start,
                    end,
                    Some(sh),
                    nm,
                    Scratch.take((end - start) * m.ncols()),
                )
            })
            .collect::<Result<_>>()?;
        let mm = self.dims.len();
        let rows = end - start;
        // Row norms² (the Gram diagonals) feed only debiased CKA's terms.
        let kernel_terms = self.prec == Precision::F64;
        let per_block: Vec<_> = blocks
            .par_iter()
            .map(|b| (col_sums_sq(b), kernel_terms.then(|| row_sq_norms(b))))
            .collect();
        for (((_, sq), _), nm) in per_block.iter().zip(names) {
            in_f32_range(*sq, nm, start, end)?;
        }
        let mut a64 = Array2::<f64>::zeros((if kernel_terms { rows } else { 0 }, mm));
        for (p, ((sums, sq), norms)) in per_block.into_iter().enumerate() {
            for (acc, v) in self.s[p].iter_mut().zip(sums) {
                *acc += v;
            }
            self.asum[p] += sq;
            if let Some(norms) = norms {
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

/// Every pair `p ≤ q` of `m` matrices.
pub fn all_pairs(m: usize) -> Vec<(usize, usize)> {
    (0..m).flat_map(|p| (p..m).map(move |q| (p, q))).collect()
}

/// Which way to compute `tr(K_p K_q)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Feature,
    Gram,
}

/// The cheaper route for all pairs of matrices with `n` rows and widths `dims`:
/// multiply-adds, weighed by what each costs here (measured on 24 layers at
/// n = 2000–10000, d = 256–1024: a Gram tile's multiply-add 1.3× one of
/// xlt's own feature-space kernel, a Gram-space inner product, memory-bound, 19×).
pub fn choose_route(n: usize, dims: &[usize]) -> Route {
    let n = n as f64;
    let d: Vec<f64> = dims.iter().map(|&v| v as f64).collect();
    let total: f64 = d.iter().sum();
    let feature = n * (total * total + d.iter().map(|v| v * v).sum::<f64>()) / 2.0;
    let m = d.len() as f64;
    let gram = 1.3 * n * n / 2.0 * total + 19.0 * m * (m + 1.0) / 2.0 * n * n / 2.0;
    if gram < feature {
        Route::Gram
    } else {
        Route::Feature
    }
}

/// Memory the feature route may hold in cross-product sums at once.
const FEATURE_BYTES: usize = 512 << 20;

/// CKA statistics for all pairs of `mats` (same rows), each matrix read with
/// its exact column means; the route is chosen by shape unless given.
pub fn pairwise_stats(
    mats: &[Mat],
    names: &[String],
    route: Option<Route>,
    prec: Precision,
) -> Result<CkaStats> {
    ensure_shape(!mats.is_empty(), || "no matrices to compare".to_string())?;
    let n = mats[0].nrows();
    for (m, nm) in mats.iter().zip(names) {
        ensure_shape(m.nrows() == n, || {
            format!(
                "{nm} has {} rows but {} has {n}; rows must be paired samples (the same items, in the same order)",
                m.nrows(),
                names[0]
            )
        })?;
        ensure_shape(m.ncols() > 0, || format!("{nm} has no columns"))?;
    }
    ensure_shape(n >= 2, || {
        format!("CKA needs at least 2 paired rows, got {n}")
    })?;
    super::scale::at_unit_scale(mats, names, |mats| unit_stats(mats, names, n, route, prec))
}

/// [`pairwise_stats`] of checked matrices whose values cannot over- or
/// underflow f32 products.
fn unit_stats(
    mats: &[Mat],
    names: &[String],
    n: usize,
    route: Option<Route>,
    prec: Precision,
) -> Result<CkaStats> {
    let means: Vec<Vec<f64>> = mats
        .iter()
        .zip(names)
        .map(|(m, nm)| col_means(m, nm))
        .collect::<Result<_>>()?;
    let dims: Vec<usize> = mats.iter().map(|m| m.ncols()).collect();
    match route.unwrap_or_else(|| choose_route(n, &dims)) {
        Route::Feature => feature_stats(mats, names, &dims, means, prec),
        Route::Gram => match prec {
            Precision::F32 => gram_stats::<f32>(mats, names, &means),
            Precision::F64 => gram_stats::<f64>(mats, names, &means),
        },
    }
}

fn feature_stats(
    mats: &[Mat],
    names: &[String],
    dims: &[usize],
    means: Vec<Vec<f64>>,
    prec: Precision,
) -> Result<CkaStats> {
    let mut batches: Vec<Vec<(usize, usize)>> = vec![vec![]];
    let mut bytes = 0;
    for pair in all_pairs(dims.len()) {
        let b = dims[pair.0] * dims[pair.1] * 8;
        if bytes + b > FEATURE_BYTES && !batches.last().unwrap().is_empty() {
            batches.push(vec![]);
            bytes = 0;
        }
        bytes += b;
        batches.last_mut().unwrap().push(pair);
    }
    let mut out: Option<CkaStats> = None;
    for pairs in batches {
        let mut sums = Sums::new(dims, &pairs, means.clone(), prec);
        for (s, e) in mats[0].blocks(BLOCK_ROWS) {
            sums.update(mats, s, e, names)?;
        }
        let mut st = sums.stats();
        st.names = names.to_vec();
        match out.as_mut() {
            None => out = Some(st),
            Some(o) => {
                for &(p, q) in &pairs {
                    for (i, j) in [(p, q), (q, p)] {
                        o.hsic[[i, j]] = st.hsic[[i, j]];
                        o.kl[[i, j]] = st.kl[[i, j]];
                    }
                }
            }
        }
    }
    out.ok_or_else(|| Error::Shape("no matrices to compare".into()))
}

/// Rows per tile side in the Gram route.
const TILE: usize = 512;

fn gram_stats<T: Scalar>(mats: &[Mat], names: &[String], means: &[Vec<f64>]) -> Result<CkaStats> {
    let mm = mats.len();
    let pairs = all_pairs(mm);
    let blocks: Vec<(usize, usize)> = mats[0].blocks(TILE).collect();
    let load = |s: usize, e: usize| -> Result<Vec<Array2<T>>> {
        mats.par_iter()
            .zip(means)
            .zip(names)
            .map(|((m, mu), nm)| decode(m, s, e, Some(mu), nm).map(|b| T::from_block(&b)))
            .collect()
    };
    let mut hsic_flat = vec![0.0f64; pairs.len()];
    let mut k = vec![vec![0.0f64; mats[0].nrows()]; mm];
    for (bi, &(s0, e0)) in blocks.iter().enumerate() {
        let xi = load(s0, e0)?;
        for (p, b) in xi.iter().enumerate() {
            for (i, row) in b.axis_iter(Axis(0)).enumerate() {
                k[p][s0 + i] = T::dot(row.as_slice().unwrap(), row.as_slice().unwrap());
            }
        }
        for &(s1, e1) in &blocks[bi..] {
            let xj_owned;
            let xj = if s1 == s0 {
                &xi
            } else {
                xj_owned = load(s1, e1)?;
                &xj_owned
            };
            let tiles: Vec<faer::Mat<T>> = xi
                .par_iter()
                .zip(xj)
                .map(|(a, b)| T::gram_tile(a, b))
                .collect();
            let w = if s1 == s0 { 1.0 } else { 2.0 };
            let dots: Vec<f64> = pairs
                .par_iter()
                .map(|&(p, q)| {
                    let (tp, tq) = (&tiles[p], &tiles[q]);
                    (0..tp.ncols())
                        .map(|j| T::dot(tp.col_as_slice(j), tq.col_as_slice(j)))
                        .sum::<f64>()
                })
                .collect();
            for (h, v) in hsic_flat.iter_mut().zip(dots) {
                *h += w * v;
            }
        }
    }
    let mut hsic = Array2::zeros((mm, mm));
    let mut kl = Array2::zeros((mm, mm));
    for (&(p, q), h) in pairs.iter().zip(hsic_flat) {
        let v: f64 = k[p].iter().zip(&k[q]).map(|(a, b)| a * b).sum();
        for (i, j) in [(p, q), (q, p)] {
            hsic[[i, j]] = h;
            kl[[i, j]] = v;
        }
    }
    let tr = k.iter().map(|v| v.iter().sum()).collect();
    Ok(CkaStats {
        n: mats[0].nrows(),
        hsic,
        kl,
        tr,
        names: names.to_vec(),
    })
}

/// CKA statistics of the pair (X, Y): index 0 is X, 1 is Y.
pub fn pair_stats<'a>(x: &Mat<'a>, y: &Mat<'a>, prec: Precision) -> Result<CkaStats> {
    pairwise_stats(&[*x, *y], &["X".into(), "Y".into()], None, prec)
}

/// Linear CKA (Kornblith et al. 2019) between paired rows of `x` and `y`.
pub fn linear_cka<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<f64> {
    super::blocks::paired_rows(x, y, 2, "linear CKA")?;
    pair_stats(x, y, Precision::F32)?.linear(0, 1)
}

/// Debiased CKA (unbiased HSIC, Song et al. 2012) between paired rows.
pub fn debiased_cka<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<f64> {
    super::blocks::paired_rows(x, y, 4, "debiased CKA")?;
    pair_stats(x, y, Precision::F64)?.debiased(0, 1)
}

/// Streaming CKA over several layers: each update brings the same row block
/// of X and Y for every layer; memory is (dx² + dy² + dx·dy)·8 bytes a layer.
/// Products run in f64 so that the debiased estimate stays exact.
pub struct CkaAccumulator {
    layers: Vec<Sums>,
    names: [String; 2],
}

impl Default for CkaAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl CkaAccumulator {
    pub fn new() -> Self {
        CkaAccumulator {
            layers: vec![],
            names: ["X".into(), "Y".into()],
        }
    }

    /// Rows seen so far.
    pub fn n(&self) -> usize {
        self.layers.first().map_or(0, |s| s.n())
    }

    /// Add one row block per layer: `xs[l]` and `ys[l]` pair rows.
    pub fn update<'a>(&mut self, xs: &[Mat<'a>], ys: &[Mat<'a>]) -> Result<()> {
        ensure_shape(xs.len() == ys.len() && !xs.is_empty(), || {
            format!(
                "got {} X blocks and {} Y blocks; pass one of each per layer",
                xs.len(),
                ys.len()
            )
        })?;
        if self.layers.is_empty() {
            self.layers = xs
                .iter()
                .zip(ys)
                .map(|(x, y)| {
                    Sums::new(
                        &[x.ncols(), y.ncols()],
                        &all_pairs(2),
                        vec![],
                        Precision::F64,
                    )
                })
                .collect();
        }
        ensure_shape(xs.len() == self.layers.len(), || {
            format!(
                "earlier updates had {} layers, this one has {}",
                self.layers.len(),
                xs.len()
            )
        })?;
        for ((x, y), sums) in xs.iter().zip(ys).zip(&mut self.layers) {
            super::blocks::paired_rows(x, y, 0, "CKA")?;
            sums.update(&[*x, *y], 0, x.nrows(), &self.names)?;
        }
        Ok(())
    }

    /// Per-layer CKA statistics so far.
    pub fn stats(&self) -> Result<Vec<CkaStats>> {
        ensure_shape(self.n() >= 2, || {
            format!("CKA needs at least 2 rows, got {}", self.n())
        })?;
        Ok(self
            .layers
            .iter()
            .map(|s| CkaStats {
                names: self.names.to_vec(),
                ..s.stats()
            })
            .collect())
    }

    /// Per-layer linear CKA.
    pub fn linear(&self) -> Result<Vec<f64>> {
        self.stats()?.iter().map(|s| s.linear(0, 1)).collect()
    }

    /// Per-layer debiased CKA.
    pub fn debiased(&self) -> Result<Vec<f64>> {
        self.stats()?.iter().map(|s| s.debiased(0, 1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut s = seed;
        Array2::from_shape_fn((n, d), |(i, j)| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                + 0.1 * (i % 7) as f32 * (j % 3) as f32
                + 40.0
        })
    }

    #[test]
    fn cka_of_a_matrix_with_itself_is_one() {
        let x = data(50, 6, 1);
        let m = Mat::F32(x.view());
        assert!((linear_cka(&m, &m).unwrap() - 1.0).abs() < 1e-9);
        assert!((debiased_cka(&m, &m).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn routes_and_streaming_agree() {
        let (x, y) = (data(3000, 7, 2), data(3000, 5, 3));
        let mats = [Mat::F32(x.view()), Mat::F32(y.view())];
        let names = ["X".to_string(), "Y".to_string()];
        let f = pairwise_stats(&mats, &names, Some(Route::Feature), Precision::F64).unwrap();
        let g = pairwise_stats(&mats, &names, Some(Route::Gram), Precision::F64).unwrap();
        let mut acc = CkaAccumulator::new();
        for s in (0..3000).step_by(700) {
            let e = (s + 700).min(3000);
            let xb = x.slice(ndarray::s![s..e, ..]);
            let yb = y.slice(ndarray::s![s..e, ..]);
            acc.update(&[Mat::F32(xb)], &[Mat::F32(yb)]).unwrap();
        }
        let (lin, deb) = (acc.linear().unwrap()[0], acc.debiased().unwrap()[0]);
        for st in [&f, &g] {
            assert!((st.linear(0, 1).unwrap() / lin - 1.0).abs() < 1e-7);
            assert!((st.debiased(0, 1).unwrap() / deb - 1.0).abs() < 1e-7);
        }
    }

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
    fn mismatched_rows_and_tiny_inputs_are_shape_errors() {
        let (x, y) = (data(5, 3, 1), data(6, 3, 2));
        let e = linear_cka(&Mat::F32(x.view()), &Mat::F32(y.view())).unwrap_err();
        assert!(matches!(e, Error::Shape(_)));
        let e = debiased_cka(
            &Mat::F32(x.slice(ndarray::s![..3, ..])),
            &Mat::F32(x.slice(ndarray::s![..3, ..])),
        );
        assert!(matches!(e, Err(Error::Shape(_))));
    }
}
