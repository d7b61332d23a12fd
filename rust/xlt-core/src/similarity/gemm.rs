//! `C += AᵀB` for f32 row blocks with an f64 sum `C`: the product behind
//! every feature-space statistic. Both operands are packed into panels
//! (`MR` columns of A, `NR` columns of B, `k`-major), multiplied by a
//! register-blocked microkernel that sums `KC` rows in f32 and adds each tile
//! to `C` in f64. The microkernel is chosen at run time: AVX-512, AVX2+FMA,
//! or portable code the compiler vectorises for the baseline target.
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::Mutex;

/// Columns of A per panel (two AVX-512 vectors).
const MR: usize = 32;
/// Columns of B per panel (broadcast one at a time).
const NR: usize = 12;
/// Rows summed in f32 registers before a tile is added to `C` in f64.
const KC: usize = if cfg!(miri) { 8 } else { 1024 };
/// A panels swept per B panel while they stay in L2.
const MC_PANELS: usize = 4;

/// `kc` rows of an A panel (`MR`-wide) times a B panel (`NR`-wide), added to
/// the `rows × cols` corner of the column-major f64 tile at `c` (stride `ldc`).
///
/// # Safety
/// `a` points to `kc·MR` readable floats (an A panel) and `b` to `kc·NR` (a
/// B panel); `c` is the corner of a column-major f64 tile of stride `ldc`
/// whose first `rows ≤ MR` rows of `cols ≤ NR` columns are valid for reads and
/// writes and touched by no other thread during the call; the CPU has the
/// kernel's target features (see [`kernels`]).
type Kernel = unsafe fn(usize, *const f32, *const f32, *mut f64, usize, usize, usize);

/// A C-ordered (r × cols) f32 row block packed once for either side of a
/// product.
pub(crate) struct Operand<'s> {
    a: Packed<'s, MR>,
    b: Packed<'s, NR>,
    r: usize,
    cols: usize,
}

impl<'s> Operand<'s> {
    pub(crate) fn new(block: &Array2<f32>, scratch: &'s Scratch) -> Self {
        let (r, cols) = block.dim();
        let src = block.as_slice().expect("C-ordered block");
        let (a, b) = rayon::join(
            || Packed::new(src, r, cols, scratch),
            || Packed::new(src, r, cols, scratch),
        );
        Operand { a, b, r, cols }
    }
}

/// `dst += aᵀ b` for row blocks `a` (r × p), `b` (r × q) and an F-ordered
/// (p × q) f64 `dst`. With `lower`, only tiles touching the lower triangle
/// are formed (`a` is `b`; the rest is left unspecified). `par`: split the columns of
/// `dst` over the rayon pool.
pub(crate) fn add_tn(dst: &mut Array2<f64>, a: &Operand, b: &Operand, lower: bool, par: bool) {
    add_tn_with(kernels()[0], dst, a, b, lower, par)
}

fn add_tn_with(
    kernel: Kernel,
    dst: &mut Array2<f64>,
    a: &Operand,
    b: &Operand,
    lower: bool,
    par: bool,
) {
    let (r, p, q) = (a.r, a.cols, b.cols);
    debug_assert_eq!((r, p, q), (b.r, dst.nrows(), dst.ncols()));
    if r == 0 || p == 0 || q == 0 {
        return;
    }
    let (pa, pb) = (&a.a, &b.b);
    let out = dst.as_slice_memory_order_mut().expect("contiguous sum");
    // Each task owns a run of B panels and sweeps the L2-resident A panels
    // over all of them; two runs per thread balance a busy machine.
    let panels = q.div_ceil(NR);
    let tasks = if par {
        2 * rayon::current_num_threads()
    } else {
        1
    };
    let run = panels.div_ceil(tasks);
    let task = |(g, cols): (usize, &mut [f64])| {
        let j0 = g * run * NR;
        for k0 in (0..r).step_by(KC) {
            let kc = KC.min(r - k0);
            for i0 in (0..p).step_by(MC_PANELS * MR) {
                for (jl, ccol) in cols.chunks_mut(NR * p).enumerate() {
                    let j = j0 + jl * NR;
                    let ncols = NR.min(q - j);
                    let bp = pb.panel(j / NR, k0);
                    for i in (i0..p.min(i0 + MC_PANELS * MR)).step_by(MR) {
                        if lower && i + MR <= j {
                            continue;
                        }
                        let rows = MR.min(p - i);
                        // SAFETY: panels hold kc·MR / kc·NR floats from k0 on;
                        // the tile lies inside `ccol` (ncols columns of p).
                        unsafe {
                            kernel(
                                kc,
                                pa.panel(i / MR, k0),
                                bp,
                                ccol.as_mut_ptr().add(i),
                                p,
                                rows,
                                ncols,
                            )
                        };
                    }
                }
            }
        }
    };
    if par {
        out.par_chunks_mut(run * NR * p).enumerate().for_each(task);
    } else {
        out.chunks_mut(run * NR * p).enumerate().for_each(task);
    }
}

/// Buffers recycled across row blocks and across calls: fresh pages cost
/// more than packing (the kernel clears each one). Buffers come from and go
/// back to one process-wide pool per element type, each keeping at most
/// [`POOL_BYTES`].
pub(crate) struct Scratch;

/// Bytes of idle buffers a pool keeps (a few blocks of a wide layer).
const POOL_BYTES: usize = 256 << 20;

/// An element type with a pool of idle buffers.
pub(crate) trait Pooled: Copy + Default + 'static {
    fn pool() -> &'static Mutex<Vec<Vec<Self>>>;
}

impl Pooled for f32 {
    fn pool() -> &'static Mutex<Vec<Vec<f32>>> {
        static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
        &POOL
    }
}

impl Pooled for f64 {
    fn pool() -> &'static Mutex<Vec<Vec<f64>>> {
        static POOL: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());
        &POOL
    }
}

impl Scratch {
    /// A buffer of at least `len` values (contents unspecified): the
    /// smallest pooled one that is large enough, else a grown one.
    pub(crate) fn take<T: Pooled>(&self, len: usize) -> Vec<T> {
        let mut buf = T::pool()
            .lock()
            .ok()
            .and_then(|mut pool| {
                let best = (0..pool.len())
                    .filter(|&i| pool[i].len() >= len)
                    .min_by_key(|&i| pool[i].len())
                    .or(pool.len().checked_sub(1))?;
                Some(pool.swap_remove(best))
            })
            .unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, T::default());
        }
        buf
    }

    pub(crate) fn give<T: Pooled>(&self, buf: Vec<T>) {
        let size = std::mem::size_of::<T>();
        if let Ok(mut pool) = T::pool().lock() {
            let held: usize = pool.iter().map(|b| b.capacity() * size).sum();
            if held + buf.capacity() * size <= POOL_BYTES {
                pool.push(buf);
            }
        }
    }
}

/// Panels of `W` columns of a C-ordered (r × cols) block, `k`-major and
/// zero-padded: element (k, panel·W + l) sits at `(panel·r + k)·W + l`.
struct Packed<'s, const W: usize> {
    buf: Vec<f32>,
    off: usize,
    r: usize,
    scratch: &'s Scratch,
}

impl<'s, const W: usize> Packed<'s, W> {
    fn new(src: &[f32], r: usize, cols: usize, scratch: &'s Scratch) -> Self {
        let panels = cols.div_ceil(W);
        let mut buf: Vec<f32> = scratch.take(panels * r * W + 16); // every lane is written below
        let off = buf.as_ptr().align_offset(64).min(16);
        buf[off..off + panels * r * W]
            .par_chunks_mut(r * W)
            .enumerate()
            .for_each(|(pi, dst)| {
                let c0 = pi * W;
                let n = W.min(cols - c0);
                for (k, d) in dst.chunks_exact_mut(W).enumerate() {
                    let row = &src[k * cols + c0..];
                    if n == W {
                        let d: &mut [f32; W] = d.try_into().expect("W-wide");
                        *d = row[..W].try_into().expect("W-wide");
                    } else {
                        d[..n].copy_from_slice(&row[..n]);
                        d[n..].fill(0.0);
                    }
                }
            });
        Packed {
            buf,
            off,
            r,
            scratch,
        }
    }

    /// Pointer to panel `pi` at row `k0`.
    fn panel(&self, pi: usize, k0: usize) -> *const f32 {
        self.buf[self.off + (pi * self.r + k0) * W..].as_ptr()
    }
}

impl<const W: usize> Drop for Packed<'_, W> {
    fn drop(&mut self) {
        self.scratch.give(std::mem::take(&mut self.buf));
    }
}

/// The microkernels this CPU runs, fastest first.
fn kernels() -> Vec<Kernel> {
    let mut ks: Vec<Kernel> = vec![];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            ks.push(x86::avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            ks.push(x86::avx2);
        }
    }
    ks.push(portable);
    ks
}

/// Add an f32 tile (`MR` rows per column) to the f64 tile at `c`.
///
/// # Safety
/// The first `rows` rows of `cols` columns at `c` (stride `ldc`) are valid
/// for reads and writes and touched by no other thread during the call.
#[inline(always)]
unsafe fn store(acc: &[[f32; MR]; NR], c: *mut f64, ldc: usize, rows: usize, cols: usize) {
    for (j, col) in acc.iter().enumerate().take(cols) {
        let cj = c.add(j * ldc);
        for (i, v) in col.iter().enumerate().take(rows) {
            *cj.add(i) += *v as f64;
        }
    }
}

/// The tile in four 16 × 6 quarters, each summed over all `kc` rows: twelve
/// 8-lane accumulators fit the sixteen AVX2 registers without spilling.
/// `FMA`: fused multiply-adds (a library call on targets without them).
///
/// # Safety
/// As for [`Kernel`] (no target features needed).
#[inline(always)]
unsafe fn generic<const FMA: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f64,
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    const QM: usize = MR / 2;
    const QN: usize = NR / 2;
    let mut tile = [[0.0f32; MR]; NR];
    for (i0, j0) in [(0, 0), (QM, 0), (0, QN), (QM, QN)] {
        let mut acc = [[0.0f32; QM]; QN];
        for k in 0..kc {
            let ak = &*(a.add(k * MR + i0) as *const [f32; QM]);
            let bk = &*(b.add(k * NR + j0) as *const [f32; QN]);
            for (col, &bv) in acc.iter_mut().zip(bk) {
                for (x, &av) in col.iter_mut().zip(ak) {
                    *x = if FMA {
                        av.mul_add(bv, *x)
                    } else {
                        *x + av * bv
                    };
                }
            }
        }
        for (t, q) in tile[j0..j0 + QN].iter_mut().zip(&acc) {
            t[i0..i0 + QM].copy_from_slice(q);
        }
    }
    store(&tile, c, ldc, rows, cols);
}

/// [`generic`] without FMA, for any CPU.
///
/// # Safety
/// As for [`Kernel`].
unsafe fn portable(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f64,
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    generic::<false>(kc, a, b, c, ldc, rows, cols)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{generic, store, MR, NR};
    use std::arch::x86_64::*;

    /// [`generic`] with FMA, compiled for AVX2.
    ///
    /// # Safety
    /// As for [`Kernel`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f64,
        ldc: usize,
        rows: usize,
        cols: usize,
    ) {
        generic::<true>(kc, a, b, c, ldc, rows, cols)
    }

    /// Two AVX-512 vectors of A times `NR` broadcasts of B per row, with the
    /// tile's f64 columns prefetched while the sums run.
    ///
    /// # Safety
    /// As for [`Kernel`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f64,
        ldc: usize,
        rows: usize,
        cols: usize,
    ) {
        for j in 0..cols {
            for line in (0..rows).step_by(8) {
                _mm_prefetch::<_MM_HINT_T0>(c.add(j * ldc + line) as *const i8);
            }
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; NR];
        for k in 0..kc {
            let a0 = _mm512_loadu_ps(a.add(k * MR));
            let a1 = _mm512_loadu_ps(a.add(k * MR + 16));
            let bk = b.add(k * NR);
            for (j, col) in acc.iter_mut().enumerate() {
                let bj = _mm512_set1_ps(*bk.add(j));
                col[0] = _mm512_fmadd_ps(a0, bj, col[0]);
                col[1] = _mm512_fmadd_ps(a1, bj, col[1]);
            }
        }
        if rows == MR {
            for (j, col) in acc.iter().enumerate().take(cols) {
                let cj = c.add(j * ldc);
                for (h, v) in col.iter().enumerate() {
                    let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(*v));
                    let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(
                        _mm512_castps_pd(*v),
                        1,
                    )));
                    let p = cj.add(16 * h);
                    _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), lo));
                    _mm512_storeu_pd(p.add(8), _mm512_add_pd(_mm512_loadu_pd(p.add(8)), hi));
                }
            }
        } else {
            let mut tile = [[0.0f32; MR]; NR];
            for (t, col) in tile.iter_mut().zip(&acc) {
                _mm512_storeu_ps(t.as_mut_ptr(), col[0]);
                _mm512_storeu_ps(t.as_mut_ptr().add(16), col[1]);
            }
            store(&tile, c, ldc, rows, cols);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    fn block(r: usize, c: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            ((i * 131 + j * 71 + seed) % 97) as f32 / 97.0 - 0.5
        })
    }

    #[test]
    fn miri_every_kernel_matches_f64_products_at_ragged_sizes() {
        // Miri (`cargo +nightly miri test -p xlt-core --lib miri_`): small sizes, KC = 8
        let sizes: &[_] = if cfg!(miri) {
            &[(1, 1, 1), (5, 33, 13), (19, 40, 14)]
        } else {
            &[(1, 1, 1), (5, 33, 13), (700, 70, 25), (1030, 31, 64)]
        };
        for &(r, p, q) in sizes {
            let (a, b) = (block(r, p, 1), block(r, q, 2));
            let want = a.mapv(f64::from).t().dot(&b.mapv(f64::from));
            let want_aa = a.mapv(f64::from).t().dot(&a.mapv(f64::from));
            let sc = Scratch;
            for k in kernels() {
                for par in [false, true] {
                    let mut c = Array2::<f64>::from_elem((p, q).f(), 1.0);
                    add_tn_with(
                        k,
                        &mut c,
                        &Operand::new(&a, &sc),
                        &Operand::new(&b, &sc),
                        false,
                        par,
                    );
                    let err = (&c - &want - 1.0)
                        .mapv(f64::abs)
                        .fold(0.0f64, |m, &v| m.max(v));
                    assert!(
                        err < 1e-4 * (r as f64).sqrt(),
                        "r={r} p={p} q={q} err={err}"
                    );
                    let mut s = Array2::<f64>::zeros((p, p).f());
                    let oa = Operand::new(&a, &sc);
                    add_tn_with(k, &mut s, &oa, &oa, true, par);
                    for ((i, j), v) in s.indexed_iter().filter(|((i, j), _)| i >= j) {
                        assert!((v - want_aa[[i, j]]).abs() < 1e-4 * (r as f64).sqrt());
                    }
                }
            }
        }
    }
}
