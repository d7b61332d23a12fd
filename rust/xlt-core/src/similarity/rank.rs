//! Tie-averaged ranks of many f32 values (an RDM's pairs) in cache-local
//! passes: values are scattered into buckets by value range, each bucket is
//! sorted in cache and its ranks written to the values' scatter slots, and
//! the ranks are read back in the original order by replaying the scatter.
use rayon::prelude::*;

/// Values per chunk of the parallel scatter and replay passes.
const CHUNK: usize = if cfg!(miri) { 64 } else { 1 << 20 };
/// Target values per bucket (sorted within L2).
const BUCKET: usize = if cfg!(miri) { 16 } else { 32768 };

/// f32 → u32 whose unsigned order is the float order.
fn order_bits(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | (1 << 31)
    }
}

/// A monotone map of values onto buckets, linear over the values' range.
#[derive(Clone, Copy)]
struct Buckets {
    lo: f32,
    scale: f32,
    last: f32,
}

impl Buckets {
    /// Linear over the range of a strided sample: values outside it clamp
    /// to the end buckets, which changes only the buckets' balance.
    fn new(values: &[f32], count: usize) -> Self {
        let step = (values.len() / (count * 64)).max(1);
        let (lo, hi) = values
            .iter()
            .step_by(step)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let scale = count as f32 / (hi - lo);
        // Infinite or zero span: one bucket (`of` maps NaN products to 0).
        let scale = if scale.is_finite() { scale } else { 0.0 };
        Self {
            lo,
            scale,
            last: (count - 1) as f32,
        }
    }

    /// Rounding is monotone, so v ≤ w gives of(v) ≤ of(w); equal values share a bucket.
    #[inline]
    fn of(&self, v: f32) -> usize {
        let b = ((v - self.lo) * self.scale).max(0.0).min(self.last);
        // SAFETY: `b` is finite and in 0..=last (max/min drop NaN).
        unsafe { b.to_int_unchecked::<u32>() as usize }
    }
}

/// A pointer for disjoint parallel writes.
struct Shared(*mut u32);
// SAFETY: `Shared` only hands out element pointers through `at`, whose
// callers write disjoint elements, each from one task; the buffer outlives them.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`: no two tasks touch the same element.
unsafe impl Sync for Shared {}
impl Shared {
    /// Pointer to element `i`.
    ///
    /// # Safety
    /// `i` is within the buffer, and element `i` is accessed by one task only
    /// while the pointer is in use.
    unsafe fn at(&self, i: usize) -> *mut u32 {
        // SAFETY: in bounds (the caller's promise), so the offset stays in the allocation.
        unsafe { self.0.add(i) }
    }
}

/// Lets the kernel back a large fresh allocation with huge pages (fewer faults).
pub(super) fn advise_huge<T>(v: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        let (addr, len) = (v.as_mut_ptr() as usize, std::mem::size_of_val(v));
        let start = addr.next_multiple_of(4096);
        if len > 1 << 22 {
            // SAFETY: the range lies inside `v`'s allocation; the advice does not change contents.
            unsafe { libc::madvise(start as *mut _, addr + len - start, libc::MADV_HUGEPAGE) };
        }
    }
}

/// Scratch for one bucket: two entry buffers and the digit counts.
struct Scratch(Vec<u64>, Vec<u64>, Box<[u32; 2048]>);

/// `(key << 32) | position` for the bucket's keys, sorted: an LSD radix over
/// the bits in which keys differ (at most 3 passes of ≤ 11 bits), the first
/// pass reading the keys themselves. Equal keys keep their positions' order.
fn sorted_entries<'s>(keys: &[u32], s: &'s mut Scratch) -> &'s [u64] {
    let (a, tmp, count) = (&mut s.0, &mut s.1, &mut s.2);
    let entry = |(i, &k): (usize, &u32)| ((k as u64) << 32) | i as u64;
    a.clear();
    if keys.len() < 64 {
        a.extend(keys.iter().enumerate().map(entry));
        a.sort_unstable();
        return a;
    }
    let (lo, hi) = keys
        .iter()
        .fold((u32::MAX, 0), |(l, h), &k| (l.min(k), h.max(k)));
    let bits = 32 - (hi - lo).leading_zeros();
    let passes = bits.div_ceil(11);
    let width = bits.div_ceil(passes.max(1));
    let digit = |k: u32, p: u32| (((k - lo) >> (p * width)) & ((1 << width) - 1)) as usize;
    a.resize(keys.len(), 0);
    tmp.resize(keys.len(), 0);
    let count = &mut count[..1 << width];
    for p in 0..passes {
        count.fill(0);
        let place = |e: u64, count: &mut [u32], out: &mut [u64]| {
            let d = digit((e >> 32) as u32, p);
            out[count[d] as usize] = e;
            count[d] += 1;
        };
        if p == 0 {
            keys.iter().for_each(|&k| count[digit(k, 0)] += 1);
            prefix(count);
            keys.iter()
                .enumerate()
                .for_each(|e| place(entry(e), count, tmp));
        } else {
            a.iter()
                .for_each(|&e| count[digit((e >> 32) as u32, p)] += 1);
            prefix(count);
            a.iter().for_each(|&e| place(e, count, tmp));
        }
        std::mem::swap(a, tmp);
    }
    if passes == 0 {
        a.iter_mut()
            .zip(keys.iter().enumerate())
            .for_each(|(o, e)| *o = entry(e));
    }
    a
}

/// Counts → exclusive prefix sums.
fn prefix(count: &mut [u32]) {
    let mut sum = 0;
    for c in count.iter_mut() {
        (*c, sum) = (sum, sum + *c);
    }
}

/// Sorts one bucket of keys, then overwrites each key with the bits of its
/// centred tie-averaged rank (positions from `start`, ties averaged).
/// Returns Σ (t³ − t) over tie groups of size t.
fn rank_bucket(start: usize, bucket: &mut [u32], mean: f64, s: &mut Scratch) -> u128 {
    let sorted = sorted_entries(bucket, s);
    let mut ties = 0u128;
    let mut g = 0;
    while g < sorted.len() {
        let key = sorted[g] >> 32;
        let mut h = g + 1;
        while h < sorted.len() && sorted[h] >> 32 == key {
            h += 1;
        }
        // Positions start+g .. start+h (0-based) share the 1-based rank start + (g + h + 1) / 2;
        // centred, it is a multiple of 1/2 below len/2: exact in f32 up to 2^24 values.
        let r = ((2 * start + g + h + 1) as f64 / 2.0 - mean) as f32;
        for &e in &sorted[g..h] {
            bucket[e as u32 as usize] = r.to_bits();
        }
        if h - g > 1 {
            let t = (h - g) as u128;
            ties += t * t * t - t;
        }
        g = h;
    }
    ties
}

/// Replaces NaN-free `values` by their tie-averaged ranks (1-based), centred
/// and scaled to unit norm; values whose bits differ rank apart (−0 below +0).
/// Returns false, leaving `values` as they were, when all values tie.
pub(super) fn unit_ranks(values: &mut [f32]) -> bool {
    let len = values.len();
    assert!(len < 1 << 32, "at most 2^32 values");
    let nb = (len / BUCKET).next_power_of_two().min(1 << 16); // ids fit u16
    let bk = Buckets::new(values, nb);
    // Per-chunk histograms → each chunk's first slot in every bucket.
    let mut ids = vec![0u16; len];
    advise_huge(&mut ids);
    let counts: Vec<Vec<u32>> = values
        .par_chunks(CHUNK)
        .zip(ids.par_chunks_mut(CHUNK))
        .map(|(c, id)| {
            let mut h = vec![0u32; nb];
            for (&v, i) in c.iter().zip(id) {
                let b = bk.of(v);
                *i = b as u16;
                h[b] += 1;
            }
            h
        })
        .collect();
    let mut cursors = vec![vec![0usize; nb]; counts.len()];
    let mut starts = Vec::with_capacity(nb + 1);
    let mut pos = 0;
    for b in 0..nb {
        starts.push(pos);
        for (cur, h) in cursors.iter_mut().zip(&counts) {
            cur[b] = pos;
            pos += h[b] as usize;
        }
    }
    starts.push(len);
    let mut entries = vec![0u32; len];
    advise_huge(&mut entries);
    let out = Shared(entries.as_mut_ptr());
    let chunks = values.par_chunks(CHUNK).zip(ids.par_chunks(CHUNK));
    chunks.zip(cursors.clone()).for_each(|((c, id), mut cur)| {
        for (&v, &b) in c.iter().zip(id) {
            let b = b as usize;
            // SAFETY: the chunks' cursors cover disjoint slots below `len`.
            unsafe { *out.at(cur[b]) = order_bits(v) };
            cur[b] += 1;
        }
    });
    let mean = (len as f64 + 1.0) / 2.0;
    let mut buckets = Vec::with_capacity(nb);
    let mut rest = entries.as_mut_slice();
    for w in starts.windows(2) {
        let (head, tail) = rest.split_at_mut(w[1] - w[0]);
        buckets.push((w[0], head));
        rest = tail;
    }
    let scratch = || Scratch(vec![], vec![], Box::new([0; 2048]));
    let ties: u128 = buckets
        .into_par_iter()
        .map_init(scratch, |s, (start, b)| rank_bucket(start, b, mean, s))
        .sum();
    let n = len as u128;
    if ties == n * n * n - n {
        return false;
    }
    // Σ (rank − mean)² = (n³ − n − Σ (t³ − t)) / 12.
    let inv = 1.0 / ((n * n * n - n - ties) as f64 / 12.0).sqrt();
    let chunks = values.par_chunks_mut(CHUNK).zip(ids.par_chunks(CHUNK));
    chunks.zip(cursors).for_each(|((c, id), mut cur)| {
        for (v, &b) in c.iter_mut().zip(id) {
            let b = b as usize;
            *v = (f32::from_bits(entries[cur[b]]) as f64 * inv) as f32;
            cur[b] += 1;
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sort-based reference: ranks by (bits order, index), ties averaged.
    fn reference(v: &[f32]) -> Option<Vec<f64>> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by_key(|&i| order_bits(v[i]));
        let mut r = vec![0.0; v.len()];
        let mut g = 0;
        while g < idx.len() {
            let h = g + idx[g..]
                .iter()
                .take_while(|&&i| v[i].to_bits() == v[idx[g]].to_bits())
                .count();
            for &i in &idx[g..h] {
                r[i] = (g + h + 1) as f64 / 2.0;
            }
            g = h;
        }
        let m = (v.len() as f64 + 1.0) / 2.0;
        let ss: f64 = r.iter().map(|x| (x - m) * (x - m)).sum();
        (ss > 0.0).then(|| r.iter().map(|x| (x - m) / ss.sqrt()).collect())
    }

    fn check(v: &[f32]) {
        let mut got = v.to_vec();
        let ok = unit_ranks(&mut got);
        match reference(v) {
            None => assert!(!ok && got == v, "all tied must be refused, unchanged"),
            Some(want) => {
                assert!(ok);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((*g as f64 - w).abs() < 1e-7, "value {i}: {g} vs {w}");
                }
            }
        }
    }

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn miri_small_cases_match_the_sort_reference() {
        check(&[3.0, -1.0, 3.0, 0.0, -0.0, 7.5, -2.0]);
        check(&[1.0, 2.0]);
        check(&[2.0, 2.0]);
        check(&[5.0; 9]);
        check(&[0.0, -0.0]);
        check(&[1.0, f32::INFINITY, -f32::INFINITY, 1.0]);
        check(&[f32::MAX, -f32::MAX, 0.0, f32::MIN_POSITIVE, 1e-45]);
    }

    #[test]
    fn miri_many_buckets_with_ties_skew_and_outliers_match_the_reference() {
        let mut u = lcg(7);
        let n = CHUNK + CHUNK / 8;
        // Coarse grid: ties everywhere, some across what would be bucket edges.
        check(
            &(0..n)
                .map(|_| (u() * 300.0).floor() as f32 * 0.01)
                .collect::<Vec<_>>(),
        );
        // Normal-ish bulk near zero of both signs, plus rare huge outliers.
        let v: Vec<f32> = (0..n)
            .map(|i| {
                let x = (u() + u() + u() - 1.5) as f32 * 0.1;
                if i % 100_000 == 3 {
                    x * 1e6
                } else {
                    x
                }
            })
            .collect();
        check(&v);
        // Mostly one value, a few others (one huge bucket).
        check(
            &(0..n)
                .map(|i| if i % 1000 == 0 { u() as f32 } else { 0.5 })
                .collect::<Vec<_>>(),
        );
        // Two values: buckets whose keys all tie.
        check(&(0..n).map(|i| (i % 2) as f32).collect::<Vec<_>>());
        check(&vec![-3.0f32; n]);
    }
}
