//! The accumulation kernel: decode each hidden state (bf16, f16 or f32) to f64
//! and add it into its group's sum, sum of squares and positive count.
//!
//! Blocking. The columns (layer × hidden, flattened) are cut into [`Part`]s,
//! each owned by one rayon task. Tokens go in blocks of [`TOKENS`], sorted by
//! group inside a block, so a run of same-group tokens sums a 32-column tile in
//! registers and touches the group's f64 accumulators once per run; the next
//! token block's rows are prefetched while the current one is summed.
//! AVX-512 where the CPU has it (detected at run time), portable Rust
//! otherwise. Both add in the same order and a square of a bf16/f16/f32 value
//! is exact in f64 (so an FMA rounds like a multiply then add): the two paths
//! give bit-identical sums.
use half::f16;
use rayon::prelude::*;
use std::ops::Range;

/// Columns summed together in registers (one 64-byte line of 16-bit values).
const TILE: usize = 32;
/// Tokens per block, sorted by group inside.
const TOKENS: usize = 128;
/// Tokens (of one group) per pass over a part's columns; the next step's rows
/// are prefetched during a pass.
const STEP: usize = 8;

/// Element type of the stored hidden states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    /// bfloat16 as its raw 16-bit pattern.
    BF16,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }
}

/// Address of one token's row of `layers × hidden` contiguous values.
#[derive(Clone, Copy)]
pub(crate) struct Row(pub *const u8);
// SAFETY: rows are only read, during a call whose caller keeps them alive.
unsafe impl Send for Row {}
// SAFETY: as for Send: shared rows are only read.
unsafe impl Sync for Row {}

/// The accumulators of columns `start..start + width`, group-major
/// (group × width): the share of the work one task owns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Part {
    pub start: usize,
    pub width: usize,
    pub sum: Vec<f64>,
    pub sumsq: Vec<f64>,
    pub positive: Vec<u64>,
}

/// Cut `d` columns into parts 1024–4096 wide: two per thread where `d`
/// allows, each read in long sequential pieces of every row, with a group's
/// accumulators of a part small enough for L1/L2.
pub(crate) fn parts(groups: usize, d: usize) -> Vec<Part> {
    let w = d
        .div_ceil(2 * rayon::current_num_threads())
        .next_multiple_of(TILE)
        .clamp(1024, 4096);
    (0..d)
        .step_by(w)
        .map(|start| {
            let width = w.min(d - start);
            Part {
                start,
                width,
                sum: vec![0.0; groups * width],
                sumsq: vec![0.0; groups * width],
                positive: vec![0; groups * width],
            }
        })
        .collect()
}

/// Up to [`STEP`] tokens of one group, summed together in registers.
struct Step {
    group: usize,
    len: usize,
    tokens: [usize; STEP],
}

/// Token order of the pass: blocks of [`TOKENS`], each sorted by (group,
/// token) and cut into steps of one group; tokens with a negative group are
/// left out.
struct Plan {
    steps: Vec<Step>,
}

impl Plan {
    fn new(group: &[i32]) -> Plan {
        let mut steps = Vec::with_capacity(group.len().div_ceil(STEP));
        let mut order = Vec::with_capacity(TOKENS);
        for b0 in (0..group.len()).step_by(TOKENS) {
            order.clear();
            order.extend((b0..(b0 + TOKENS).min(group.len())).filter(|&t| group[t] >= 0));
            order.sort_unstable_by_key(|&t| (group[t], t));
            for run in order.chunk_by(|&a, &b| group[a] == group[b]) {
                for chunk in run.chunks(STEP) {
                    let mut tokens = [0; STEP];
                    tokens[..chunk.len()].copy_from_slice(chunk);
                    steps.push(Step {
                        group: group[chunk[0]] as usize,
                        len: chunk.len(),
                        tokens,
                    });
                }
            }
        }
        Plan { steps }
    }
}

/// Add the rows (one per entry of `group`, whose values are group ids or < 0
/// to skip) into `parts`. Returns the first (token, column) holding NaN or
/// inf, if any; the sums are then unusable.
///
/// # Safety
/// Every row must point at `d` readable values of `dtype` (any alignment),
/// where `d` is the end of the last part.
pub(crate) unsafe fn accumulate(
    dtype: Dtype,
    rows: &[Row],
    group: &[i32],
    parts: &mut [Part],
) -> Option<(usize, usize)> {
    let plan = Plan::new(group);
    let simd = Simd::detect();
    parts
        .par_iter_mut()
        // SAFETY: the caller's guarantee on rows; `simd` runs on this CPU.
        .filter_map(|p| unsafe { run(simd, dtype, rows, &plan, p) })
        .min()
}

/// Which kernel runs: chosen once per call from the CPU's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Explicit AVX-512 (F, BW, DQ, VL) intrinsics.
    Avx512,
    /// The portable code compiled for AVX2 + FMA (vectorised by the compiler).
    Avx2,
    Portable,
}

impl Simd {
    /// The best kernel this CPU runs.
    pub fn detect() -> Simd {
        Simd::available()[0]
    }

    /// Every kernel this CPU runs, best first.
    pub fn available() -> Vec<Simd> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
            {
                out.push(Simd::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Simd::Avx2);
            }
        }
        out.push(Simd::Portable);
        out
    }
}

/// Sum one part with the kernel `simd`.
///
/// # Safety
/// As [`accumulate`]; `simd` must be one of [`Simd::available`].
unsafe fn run(
    simd: Simd,
    dtype: Dtype,
    rows: &[Row],
    plan: &Plan,
    p: &mut Part,
) -> Option<(usize, usize)> {
    match (simd, dtype) {
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx512, Dtype::BF16) => x86::part::<{ x86::BF16 }>(rows, plan, p),
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx512, Dtype::F16) => x86::part::<{ x86::F16 }>(rows, plan, p),
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx512, Dtype::F32) => x86::part::<{ x86::F32 }>(rows, plan, p),
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx2, Dtype::BF16) => x86::part_avx2::<Bf16Bits>(rows, plan, p),
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx2, Dtype::F16) => x86::part_avx2::<f16>(rows, plan, p),
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx2, Dtype::F32) => x86::part_avx2::<f32>(rows, plan, p),
        (_, Dtype::BF16) => portable::<Bf16Bits>(rows, plan, p),
        (_, Dtype::F16) => portable::<f16>(rows, plan, p),
        (_, Dtype::F32) => portable::<f32>(rows, plan, p),
    }
}

/// A stored value type, decoded to f32.
trait Elem: Copy {
    const DTYPE: Dtype;
    /// # Safety
    /// `p` points at a readable value of this type (any alignment).
    unsafe fn load(p: *const u8) -> f32;
}

/// bfloat16 bits.
#[derive(Clone, Copy)]
struct Bf16Bits;

impl Elem for Bf16Bits {
    const DTYPE: Dtype = Dtype::BF16;
    /// # Safety
    /// `p` points at a readable value of this type (any alignment).
    unsafe fn load(p: *const u8) -> f32 {
        f32::from_bits((p.cast::<u16>().read_unaligned() as u32) << 16)
    }
}

impl Elem for f16 {
    const DTYPE: Dtype = Dtype::F16;
    /// # Safety
    /// `p` points at a readable value of this type (any alignment).
    unsafe fn load(p: *const u8) -> f32 {
        p.cast::<f16>().read_unaligned().to_f32()
    }
}

impl Elem for f32 {
    const DTYPE: Dtype = Dtype::F32;
    /// # Safety
    /// `p` points at a readable value of this type (any alignment).
    unsafe fn load(p: *const u8) -> f32 {
        p.cast::<f32>().read_unaligned()
    }
}

/// The columns `col..col + width` of a run of tokens, summed in registers
/// (here: stack arrays) and added once into the group's accumulators. Returns
/// false when a sum is not finite.
///
/// # Safety
/// Every row of `rows` named by `tokens` must point at readable values of `E` up to column `col + width`, and `sum`/`sumsq`/`positive` hold at least `width` values from `col`'s offset.
#[inline(always)]
unsafe fn tile_portable<E: Elem>(
    rows: &[Row],
    tokens: &[usize],
    col: usize,
    width: usize,
    acc: (&mut [f64], &mut [f64], &mut [u64]),
) -> bool {
    let size = E::DTYPE.size();
    let (mut s, mut q, mut n) = ([0f64; TILE], [0f64; TILE], [0u32; TILE]);
    for &t in tokens {
        let x = rows[t].0.add(col * size);
        for i in 0..width {
            let v = E::load(x.add(i * size));
            let v64 = v as f64;
            s[i] += v64;
            q[i] += v64 * v64;
            n[i] += (v > 0.0) as u32;
        }
    }
    for i in 0..width {
        acc.0[i] += s[i];
        acc.1[i] += q[i];
        acc.2[i] += n[i] as u64;
    }
    s[..width].iter().all(|v| v.is_finite())
}

/// The group's accumulator slices for `cols` (relative to the part).
fn slices(p: &mut Part, group: usize, cols: Range<usize>) -> (&mut [f64], &mut [f64], &mut [u64]) {
    let r = group * p.width + cols.start..group * p.width + cols.end;
    (
        &mut p.sum[r.clone()],
        &mut p.sumsq[r.clone()],
        &mut p.positive[r],
    )
}

/// The first (token, column) of a run's tile that is NaN or inf.
///
/// # Safety
/// Every row named by `tokens` must point at readable values of `dtype` up to column `col + width`.
unsafe fn find_bad(
    dtype: Dtype,
    rows: &[Row],
    tokens: &[usize],
    cols: Range<usize>,
) -> Option<(usize, usize)> {
    let load = |p: *const u8| match dtype {
        Dtype::BF16 => Bf16Bits::load(p),
        Dtype::F16 => f16::load(p),
        Dtype::F32 => f32::load(p),
    };
    let mut bad = tokens
        .iter()
        .flat_map(|&t| cols.clone().map(move |c| (t, c)));
    bad.find(|&(t, c)| !load(rows[t].0.add(c * dtype.size())).is_finite())
}

/// # Safety
/// Every row must point at readable values of `E` up to the end of part `p`'s columns (as [`accumulate`]).
#[inline(always)]
unsafe fn portable<E: Elem>(rows: &[Row], plan: &Plan, p: &mut Part) -> Option<(usize, usize)> {
    for step in &plan.steps {
        let tokens = &step.tokens[..step.len];
        for c in (0..p.width).step_by(TILE) {
            let (w, col) = (TILE.min(p.width - c), p.start + c);
            if !tile_portable::<E>(rows, tokens, col, w, slices(p, step.group, c..c + w)) {
                return find_bad(E::DTYPE, rows, tokens, col..col + w);
            }
        }
    }
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    pub const BF16: u8 = 0;
    pub const F16: u8 = 1;
    pub const F32: u8 = 2;

    const fn dtype(k: u8) -> Dtype {
        match k {
            BF16 => Dtype::BF16,
            F16 => Dtype::F16,
            _ => Dtype::F32,
        }
    }

    /// 32 values from `x` as two vectors of 16 f32, and (16-bit types) their raw bits.
    ///
    /// # Safety
    /// `x` points at 32 readable values of the type `K` names (any alignment), and the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn load32<const K: u8>(x: *const u8) -> (__m512i, __m512, __m512) {
        match K {
            BF16 => {
                let r = _mm512_loadu_si512(x.cast());
                let lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(r));
                let hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(r));
                (
                    r,
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(lo)),
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(hi)),
                )
            }
            F16 => {
                let r = _mm512_loadu_si512(x.cast());
                (
                    r,
                    _mm512_cvtph_ps(_mm512_castsi512_si256(r)),
                    _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(r)),
                )
            }
            _ => (
                _mm512_setzero_si512(),
                _mm512_loadu_ps(x.cast()),
                _mm512_loadu_ps(x.add(64).cast()),
            ),
        }
    }

    /// f32 lanes 0–7 and 8–15 as two vectors of 8 f64.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn widen(v: __m512) -> (__m512d, __m512d) {
        (
            _mm512_cvtps_pd(_mm512_castps512_ps256(v)),
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(v),
            ))),
        )
    }

    /// # Safety
    /// `p` points at 8 writable f64 (any alignment); the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn add_pd(p: *mut f64, v: __m512d) {
        _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), v));
    }

    /// Add 16 i32 counts into 16 u64.
    ///
    /// # Safety
    /// `p` points at 16 writable u64 (any alignment); the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn add_counts(p: *mut u64, n: __m512i) {
        add_u64(p, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(n)));
        add_u64(
            p.add(8),
            _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(n)),
        );
    }

    /// Add 32 i16 counts into 32 u64.
    ///
    /// # Safety
    /// `p` points at 32 writable u64 (any alignment); the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn add_counts16(p: *mut u64, n: __m512i) {
        add_u64(p, _mm512_cvtepu16_epi64(_mm512_extracti32x4_epi32::<0>(n)));
        add_u64(
            p.add(8),
            _mm512_cvtepu16_epi64(_mm512_extracti32x4_epi32::<1>(n)),
        );
        add_u64(
            p.add(16),
            _mm512_cvtepu16_epi64(_mm512_extracti32x4_epi32::<2>(n)),
        );
        add_u64(
            p.add(24),
            _mm512_cvtepu16_epi64(_mm512_extracti32x4_epi32::<3>(n)),
        );
    }

    /// # Safety
    /// `p` points at 8 writable u64 (any alignment); the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn add_u64(p: *mut u64, v: __m512i) {
        let p = p.cast::<__m512i>();
        _mm512_storeu_si512(p, _mm512_add_epi64(_mm512_loadu_si512(p), v));
    }

    /// [`tile_portable`] for a full tile: 4 + 4 f64 vectors of sums and sums
    /// of squares and 2 × 16 positive counts stay in registers over the run.
    ///
    /// # Safety
    /// As [`tile_portable`] for a full tile of 32 columns of the type `K` names; the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[inline]
    unsafe fn tile<const K: u8>(
        rows: &[Row],
        tokens: &[usize],
        col: usize,
        acc: (*mut f64, *mut f64, *mut u64),
    ) -> bool {
        let z = _mm512_setzero_pd();
        let (mut s, mut q) = ([z; 4], [z; 4]);
        // positive counts: f32, i32 lanes for columns 0–15 and 16–31; 16-bit types, i16
        // lanes for all 32 from one compare of the raw bits (as signed integers, > 0 is a
        // positive value: the sign bit clear and not zero; a NaN fails the run anyway)
        let mut n = [_mm512_setzero_si512(); 2];
        let (zero, one, one16) = (
            _mm512_setzero_ps(),
            _mm512_set1_epi32(1),
            _mm512_set1_epi16(1),
        );
        let offset = col * dtype(K).size();
        for &t in tokens {
            let (raw, a, b) = load32::<K>(rows.get_unchecked(t).0.add(offset));
            if K != F32 {
                let pos = _mm512_cmpgt_epi16_mask(raw, _mm512_setzero_si512());
                n[0] = _mm512_mask_add_epi16(n[0], pos, n[0], one16);
            }
            for (h, v) in [a, b].into_iter().enumerate() {
                let (lo, hi) = widen(v);
                s[2 * h] = _mm512_add_pd(s[2 * h], lo);
                s[2 * h + 1] = _mm512_add_pd(s[2 * h + 1], hi);
                q[2 * h] = _mm512_fmadd_pd(lo, lo, q[2 * h]);
                q[2 * h + 1] = _mm512_fmadd_pd(hi, hi, q[2 * h + 1]);
                if K == F32 {
                    let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero);
                    n[h] = _mm512_mask_add_epi32(n[h], pos, n[h], one);
                }
            }
        }
        let mut bad = 0;
        for i in 0..4 {
            add_pd(acc.0.add(8 * i), s[i]);
            add_pd(acc.1.add(8 * i), q[i]);
            // quiet/signalling NaN, ±inf
            bad |= _mm512_fpclass_pd_mask::<0x99>(s[i]);
        }
        if K == F32 {
            add_counts(acc.2, n[0]);
            add_counts(acc.2.add(16), n[1]);
        } else {
            add_counts16(acc.2, n[0]);
        }
        bad == 0
    }

    /// The portable kernel, vectorised by the compiler for AVX2 + FMA.
    ///
    /// # Safety
    /// As [`portable`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn part_avx2<E: Elem>(
        rows: &[Row],
        plan: &Plan,
        p: &mut Part,
    ) -> Option<(usize, usize)> {
        portable::<E>(rows, plan, p)
    }

    /// # Safety
    /// As [`portable`] for the type `K` names; the CPU has AVX-512 F/BW/DQ/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    pub unsafe fn part<const K: u8>(
        rows: &[Row],
        plan: &Plan,
        p: &mut Part,
    ) -> Option<(usize, usize)> {
        let size = dtype(K).size();
        for (i, step) in plan.steps.iter().enumerate() {
            let tokens = &step.tokens[..step.len];
            let next = plan
                .steps
                .get(i + 1)
                .map_or(&[][..], |s| &s.tokens[..s.len]);
            for c in (0..p.width).step_by(TILE) {
                let (w, col) = (TILE.min(p.width - c), p.start + c);
                for &t in next {
                    let x = rows.get_unchecked(t).0.add(col * size);
                    _mm_prefetch::<_MM_HINT_T0>(x.cast());
                    if size == 4 {
                        _mm_prefetch::<_MM_HINT_T0>(x.add(64).cast());
                    }
                }
                let acc = slices(p, step.group, c..c + w);
                let ok = if w == TILE {
                    let acc = (acc.0.as_mut_ptr(), acc.1.as_mut_ptr(), acc.2.as_mut_ptr());
                    tile::<K>(rows, tokens, col, acc)
                } else {
                    match K {
                        BF16 => tile_portable::<Bf16Bits>(rows, tokens, col, w, acc),
                        F16 => tile_portable::<f16>(rows, tokens, col, w, acc),
                        _ => tile_portable::<f32>(rows, tokens, col, w, acc),
                    }
                };
                if !ok {
                    return find_bad(dtype(K), rows, tokens, col..col + w);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(
        dtype: Dtype,
        data: &[u8],
        d: usize,
        group: &[i32],
        simd: Simd,
    ) -> (Vec<Part>, Option<(usize, usize)>) {
        let rows: Vec<Row> = (0..group.len())
            .map(|t| Row(data[t * d * dtype.size()..].as_ptr()))
            .collect();
        let mut p = parts(3, d);
        let plan = Plan::new(group);
        let bad = p
            .iter_mut()
            .filter_map(|p| unsafe { run(simd, dtype, &rows, &plan, p) })
            .min();
        (p, bad)
    }

    fn data(dtype: Dtype, n: usize, d: usize) -> Vec<u8> {
        (0..n * d)
            .flat_map(|i| {
                let v = ((i * 7919) % 1013) as f32 / 101.0 - 5.0;
                match dtype {
                    Dtype::F32 => v.to_le_bytes().to_vec(),
                    Dtype::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
                    Dtype::BF16 => ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec(),
                }
            })
            .collect()
    }

    #[test]
    fn miri_every_kernel_agrees_bit_for_bit() {
        // 300 tokens (blocks and a partial one), 1100 columns (parts and a partial tile)
        let (n, d) = if cfg!(miri) { (140, 70) } else { (300, 1100) };
        let group: Vec<i32> = (0..n)
            .map(|t| [0, 0, 1, 2, -1][(t / 3 + t % 2) % 5])
            .collect();
        for dtype in [Dtype::BF16, Dtype::F16, Dtype::F32] {
            let x = data(dtype, n, d);
            let (want, _) = sums(dtype, &x, d, &group, Simd::Portable);
            for simd in Simd::available() {
                assert_eq!(
                    sums(dtype, &x, d, &group, simd).0,
                    want,
                    "{dtype:?} {simd:?}"
                );
            }
        }
    }

    #[test]
    fn miri_a_nan_is_found_where_it_is() {
        let (n, d) = (if cfg!(miri) { 152 } else { 200 }, 70);
        let group: Vec<i32> = (0..n as i32).map(|t| t % 3).collect();
        let mut x = data(Dtype::BF16, n, d);
        let at = 2 * (150 * d + 40);
        x[at..at + 2].copy_from_slice(&0x7FC0u16.to_le_bytes());
        for simd in Simd::available() {
            assert_eq!(
                sums(Dtype::BF16, &x, d, &group, simd).1,
                Some((150, 40)),
                "{simd:?}"
            );
        }
    }
}
