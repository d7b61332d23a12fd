//! Expert-routing profiles: one streaming pass over the top-k routing of an
//! MoE model, accumulated per group (language, script, arm, ...) and MoE layer,
//! then the derived statistics (usage, entropy, imbalance, divergences,
//! specialisation, parallel agreement).
//!
//! Data come in chunks along the token axis, row-major:
//! `idx` (token, layer, k) i16/i32, `weight` (token, layer, k) f16/f32,
//! optional `prob` (token, layer, expert) f16/f32 (the full router
//! distribution), `group` (token) i32 (a negative group leaves the token out),
//! optional `item` (token) i64, the parallel item id (the same id for the
//! translations of one passage). [`RoutingAccumulator`] holds only counts and
//! sums, so memory does not grow with the number of tokens, and two
//! accumulators over disjoint tokens [`merge`](RoutingAccumulator::merge) into
//! the accumulator of their union. Work is parallel over blocks of layers.
//!
//! Indices are counted as given: a token's k indices are assumed distinct
//! (the router's top-k); duplicates would be counted twice.
use std::collections::HashMap;
use std::ops::Range;

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::error::{ensure_data, ensure_shape, Error, Result};

/// Top-k expert indices, row-major (token, layer, k).
#[derive(Clone, Copy)]
pub enum Indices<'a> {
    I16(&'a [i16]),
    I32(&'a [i32]),
}

/// Floating values (weights or probabilities), row-major.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl<'a> Values<'a> {
    fn len(&self) -> usize {
        match self {
            Values::F16(v) => v.len(),
            Values::F32(v) => v.len(),
        }
    }

    /// Elements `r` as f32, written to `out` (of the same length).
    fn decode_into(&self, r: Range<usize>, out: &mut [f32]) {
        match self {
            Values::F32(v) => out.copy_from_slice(&v[r]),
            Values::F16(v) => v[r].convert_to_f32_slice(out),
        }
    }

    /// Elements `r` as f32: borrowed for f32, decoded into `buf` for f16.
    fn decode<'b>(&'b self, r: Range<usize>, buf: &'b mut [f32]) -> &'b [f32] {
        match self {
            Values::F32(v) => &v[r],
            Values::F16(v) => {
                let out = &mut buf[..r.len()];
                v[r].convert_to_f32_slice(out);
                out
            }
        }
    }
}

/// Tokens per tile of the fill loop.
const TILE: usize = 128;

/// One chunk of tokens.
#[derive(Clone, Copy)]
pub struct Chunk<'a> {
    pub idx: Indices<'a>,
    pub weight: Values<'a>,
    pub prob: Option<Values<'a>>,
    pub group: &'a [i32],
    pub item: Option<&'a [i64]>,
}

/// Per group × layer counts and sums of a stream of routed tokens.
///
/// Internal layout is layer-major (`[layer][group][expert]`) so that blocks of
/// layers are filled in parallel; the getters return group-major copies.
#[derive(Clone, Debug)]
pub struct RoutingAccumulator {
    n_groups: usize,
    n_layers: usize,
    n_experts: usize,
    k: usize,
    track_items: bool,
    seen: u64,
    poisoned: bool,
    tokens: Vec<u64>,
    prob_tokens: Vec<u64>,
    counts: Vec<u64>,
    mass: Vec<f64>,
    entropy: Vec<f64>,
    slot_of: HashMap<(u32, i64), u32>,
    item_keys: Vec<(u32, i64)>,
    item_tokens: Vec<u64>,
    /// Per layer: `[slot][expert]` selection counts of each (group, item).
    item_counts: Vec<Vec<u32>>,
}

/// Raw partial sums, group-major, as [`RoutingAccumulator::parts`] returns them.
#[derive(Clone, Debug, PartialEq)]
pub struct Parts {
    /// (group) tokens seen.
    pub tokens: Vec<u64>,
    /// (group) tokens seen with router probabilities.
    pub prob_tokens: Vec<u64>,
    /// (group, layer, expert) top-k selections.
    pub counts: Vec<u64>,
    /// (group, layer, expert) summed routing weight.
    pub mass: Vec<f64>,
    /// (group, layer) summed per-token router entropy (nats).
    pub entropy: Vec<f64>,
    /// (slot) group and item id of each (group, item) pair seen.
    pub item_groups: Vec<u32>,
    pub item_ids: Vec<i64>,
    /// (slot) tokens of each (group, item).
    pub item_tokens: Vec<u64>,
    /// (slot, layer, expert) selections of each (group, item).
    pub item_counts: Vec<u32>,
}

impl RoutingAccumulator {
    /// An empty accumulator. `items`: whether chunks carry parallel item ids
    /// (needed for [`Profile::parallel_overlap`]; costs
    /// `pairs × layers × experts × 4` bytes, pairs = distinct (group, item)).
    pub fn new(
        n_groups: usize,
        n_layers: usize,
        n_experts: usize,
        k: usize,
        items: bool,
    ) -> Result<Self> {
        if n_groups == 0 || n_layers == 0 || n_experts == 0 || k == 0 {
            return Err(Error::Config(format!(
                "routing accumulator needs at least one group, layer, expert and k, got \
                 n_groups={n_groups}, n_layers={n_layers}, n_experts={n_experts}, k={k}"
            )));
        }
        if k > n_experts {
            return Err(Error::Config(format!(
                "k={k} experts per token but only n_experts={n_experts}: top-k picks at most \
                 every expert; check the k and n_experts attributes"
            )));
        }
        // counts and mass here, then the profile's (group, layer, expert) and
        // (group, group, layer) tables: 8 bytes a value
        let gle = crate::limits::table(
            "routing accumulator",
            &[
                ("n_groups", n_groups),
                ("n_layers", n_layers),
                ("n_experts", n_experts),
            ],
            48,
        )?;
        crate::limits::table(
            "routing profile (group, group, layer tables)",
            &[
                ("n_groups", n_groups),
                ("n_groups", n_groups),
                ("n_layers", n_layers),
            ],
            16,
        )?;
        Ok(Self {
            n_groups,
            n_layers,
            n_experts,
            k,
            track_items: items,
            seen: 0,
            poisoned: false,
            tokens: vec![0; n_groups],
            prob_tokens: vec![0; n_groups],
            counts: vec![0; gle],
            mass: vec![0.0; gle],
            entropy: vec![0.0; n_groups * n_layers],
            slot_of: HashMap::new(),
            item_keys: Vec::new(),
            item_tokens: Vec::new(),
            item_counts: vec![Vec::new(); n_layers],
        })
    }

    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.n_groups, self.n_layers, self.n_experts, self.k)
    }

    pub fn tracks_items(&self) -> bool {
        self.track_items
    }

    /// Tokens fed so far, left-out ones (negative group) included.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    fn check_usable(&self) -> Result<()> {
        ensure_data(!self.poisoned, || {
            "this RoutingAccumulator is incomplete: an earlier update failed part-way; \
             fix the input and start a new accumulator"
                .into()
        })
    }

    /// Add one chunk. On a data error the accumulator is left unusable
    /// (every later call says so): nothing is silently half-counted.
    pub fn update(&mut self, c: &Chunk<'_>) -> Result<()> {
        self.check_usable()?;
        self.check_chunk(c)?;
        let r = self.fill(c);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn check_chunk(&self, c: &Chunk<'_>) -> Result<()> {
        let (l, k, e) = (self.n_layers, self.k, self.n_experts);
        let t = c.group.len();
        let n_idx = match c.idx {
            Indices::I16(v) => v.len(),
            Indices::I32(v) => v.len(),
        };
        ensure_shape(n_idx == t * l * k, || {
            format!(
                "routing_idx has {n_idx} values but group has {t} tokens; expected \
                 (tokens={t}, moe_layers={l}, k={k}) = {} values",
                t * l * k
            )
        })?;
        ensure_shape(c.weight.len() == t * l * k, || {
            format!(
                "routing_weight has {} values, routing_idx {n_idx}; they must have the same \
                 (token, moe_layer, k) shape",
                c.weight.len()
            )
        })?;
        if let Some(p) = c.prob {
            ensure_shape(p.len() == t * l * e, || {
                format!(
                    "router_prob has {} values; expected (tokens={t}, moe_layers={l}, \
                     n_experts={e}) = {}",
                    p.len(),
                    t * l * e
                )
            })?;
        }
        match (c.item, self.track_items) {
            (Some(it), true) => ensure_shape(it.len() == t, || {
                format!("item has {} entries but the chunk has {t} tokens", it.len())
            }),
            (None, false) => Ok(()),
            (Some(_), false) => Err(Error::Config(
                "item ids given to an accumulator made without items=True".into(),
            )),
            (None, true) => Err(Error::Config(
                "this accumulator tracks parallel items (items=True): pass the item id of every \
                 token with each chunk"
                    .into(),
            )),
        }?;
        let g = self.n_groups as i32;
        if let Some(pos) = c.group.iter().position(|&x| x >= g) {
            return Err(Error::Data(format!(
                "group id {} at token {} is out of range: there are {g} groups (negative ids \
                 leave a token out)",
                c.group[pos],
                self.seen + pos as u64
            )));
        }
        Ok(())
    }

    fn fill(&mut self, c: &Chunk<'_>) -> Result<()> {
        let t0 = self.seen;
        self.seen += c.group.len() as u64;
        for &g in c.group.iter().filter(|&&g| g >= 0) {
            self.tokens[g as usize] += 1;
            if c.prob.is_some() {
                self.prob_tokens[g as usize] += 1;
            }
        }
        let slots = c.item.map(|it| self.assign_slots(c.group, it));
        let (g, l, e) = (self.n_groups, self.n_layers, self.n_experts);
        let lb = l.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let job = Job {
            c,
            slots: slots.as_deref(),
            t0,
            n_layers: l,
            n_groups: g,
            n_experts: e,
            k: self.k,
        };
        (
            self.counts.par_chunks_mut(lb * g * e),
            self.mass.par_chunks_mut(lb * g * e),
            self.entropy.par_chunks_mut(lb * g),
            self.item_counts.par_chunks_mut(lb),
        )
            .into_par_iter()
            .enumerate()
            .try_for_each(|(b, (counts, mass, ent, items))| {
                let layers = b * lb..(b * lb + lb).min(l);
                match c.idx {
                    Indices::I16(ix) => job.block(ix, layers, counts, mass, ent, items),
                    Indices::I32(ix) => job.block(ix, layers, counts, mass, ent, items),
                }
            })
    }

    /// Slot of every token's (group, item); -1 (u32::MAX) for left-out tokens.
    fn assign_slots(&mut self, group: &[i32], item: &[i64]) -> Vec<u32> {
        let mut out = Vec::with_capacity(group.len());
        let mut last: Option<((u32, i64), u32)> = None;
        for (&g, &it) in group.iter().zip(item) {
            if g < 0 {
                out.push(u32::MAX);
                continue;
            }
            let key = (g as u32, it);
            let slot = match last {
                Some((k, s)) if k == key => s,
                _ => self.slot(key),
            };
            last = Some((key, slot));
            self.item_tokens[slot as usize] += 1;
            out.push(slot);
        }
        let n = self.item_keys.len() * self.n_experts;
        for v in &mut self.item_counts {
            v.resize(n, 0);
        }
        out
    }

    fn slot(&mut self, key: (u32, i64)) -> u32 {
        let next = self.item_keys.len() as u32;
        let s = *self.slot_of.entry(key).or_insert(next);
        if s == next {
            self.item_keys.push(key);
            self.item_tokens.push(0);
        }
        s
    }

    /// Add the counts of `other` (same dimensions and item tracking), as if
    /// its tokens had been fed to `self`.
    pub fn merge(&mut self, other: &RoutingAccumulator) -> Result<()> {
        self.check_usable()?;
        other.check_usable()?;
        ensure_shape(
            self.dims() == other.dims() && self.track_items == other.track_items,
            || {
                format!(
                    "cannot merge accumulators of different shape: (groups, layers, experts, k) \
                 {:?} items={} vs {:?} items={}",
                    self.dims(),
                    self.track_items,
                    other.dims(),
                    other.track_items
                )
            },
        )?;
        self.seen += other.seen;
        add(&mut self.tokens, &other.tokens);
        add(&mut self.prob_tokens, &other.prob_tokens);
        add(&mut self.counts, &other.counts);
        add(&mut self.mass, &other.mass);
        add(&mut self.entropy, &other.entropy);
        let e = self.n_experts;
        let map: Vec<u32> = other.item_keys.iter().map(|&key| self.slot(key)).collect();
        for (s, &dst) in map.iter().enumerate() {
            self.item_tokens[dst as usize] += other.item_tokens[s];
        }
        let n = self.item_keys.len() * e;
        for (mine, theirs) in self.item_counts.iter_mut().zip(&other.item_counts) {
            mine.resize(n, 0);
            for (s, &dst) in map.iter().enumerate() {
                let d = dst as usize * e;
                add(&mut mine[d..d + e], &theirs[s * e..s * e + e]);
            }
        }
        Ok(())
    }

    /// The raw partial sums, group-major.
    pub fn parts(&self) -> Result<Parts> {
        self.check_usable()?;
        let (g, l, e) = (self.n_groups, self.n_layers, self.n_experts);
        let s = self.item_keys.len();
        let mut item_counts = vec![0u32; s * l * e];
        for (li, v) in self.item_counts.iter().enumerate() {
            for si in 0..s {
                item_counts[(si * l + li) * e..][..e].copy_from_slice(&v[si * e..si * e + e]);
            }
        }
        Ok(Parts {
            tokens: self.tokens.clone(),
            prob_tokens: self.prob_tokens.clone(),
            counts: to_group_major(&self.counts, l, g, e),
            mass: to_group_major(&self.mass, l, g, e),
            entropy: to_group_major(&self.entropy, l, g, 1),
            item_groups: self.item_keys.iter().map(|k| k.0).collect(),
            item_ids: self.item_keys.iter().map(|k| k.1).collect(),
            item_tokens: self.item_tokens.clone(),
            item_counts,
        })
    }

    /// Rebuild an accumulator from [`parts`](Self::parts) (e.g. after pickling).
    pub fn from_parts(
        n_layers: usize,
        n_experts: usize,
        k: usize,
        items: bool,
        p: Parts,
    ) -> Result<Self> {
        let g = p.tokens.len();
        let mut acc = Self::new(g, n_layers, n_experts, k, items)?;
        let (l, e) = (n_layers, n_experts);
        let s = p.item_groups.len();
        let ok = p.prob_tokens.len() == g
            && p.counts.len() == g * l * e
            && p.mass.len() == g * l * e
            && p.entropy.len() == g * l
            && p.item_ids.len() == s
            && p.item_tokens.len() == s
            && p.item_counts.len() == s * l * e
            && (items || s == 0)
            && p.item_groups.iter().all(|&x| (x as usize) < g);
        ensure_shape(ok, || {
            "routing accumulator parts do not agree in shape".into()
        })?;
        acc.seen = p.tokens.iter().sum();
        acc.tokens = p.tokens;
        acc.prob_tokens = p.prob_tokens;
        acc.counts = to_group_major(&p.counts, g, l, e);
        acc.mass = to_group_major(&p.mass, g, l, e);
        acc.entropy = to_group_major(&p.entropy, g, l, 1);
        for si in 0..s {
            let key = (p.item_groups[si], p.item_ids[si]);
            let slot = acc.slot(key);
            ensure_data(slot as usize == si, || {
                format!("item {key:?} appears twice in the parts")
            })?;
        }
        acc.item_tokens = p.item_tokens;
        for (li, v) in acc.item_counts.iter_mut().enumerate() {
            *v = (0..s)
                .flat_map(|si| p.item_counts[(si * l + li) * e..][..e].iter().copied())
                .collect();
        }
        Ok(acc)
    }
}

/// What one parallel fill needs to read.
struct Job<'c, 'a> {
    c: &'c Chunk<'a>,
    slots: Option<&'c [u32]>,
    t0: u64,
    n_layers: usize,
    n_groups: usize,
    n_experts: usize,
    k: usize,
}

impl Job<'_, '_> {
    /// Fill the sums of `layers` (counts/mass `[layer][group][expert]`,
    /// entropy `[layer][group]`, items `[layer][slot][expert]`).
    fn block<I: Copy + Into<i64>>(
        &self,
        idx: &[I],
        layers: Range<usize>,
        counts: &mut [u64],
        mass: &mut [f64],
        ent: &mut [f64],
        items: &mut [Vec<u32>],
    ) -> Result<()> {
        let (l, g_n, e_n, k) = (self.n_layers, self.n_groups, self.n_experts, self.k);
        let (l0, nl) = (layers.start, layers.len());
        let mut wbuf = vec![0f32; TILE * nl * k];
        let mut pbuf = vec![0f32; e_n];
        // Tiles of tokens, then one layer at a time: the layer's (group, expert)
        // sums stay in cache while the tile's indices are read from L2.
        for t0 in (0..self.c.group.len()).step_by(TILE) {
            let tile = t0..(t0 + TILE).min(self.c.group.len());
            for t in tile.clone() {
                let off = (t * l + l0) * k;
                let w = &mut wbuf[(t - t0) * nl * k..][..nl * k];
                self.c.weight.decode_into(off..off + nl * k, w);
                // NaN fails `>= 0`, inf fails `<= MAX`; non-short-circuit so it vectorises
                let fine = w
                    .iter()
                    .fold(true, |ok, &v| ok & (0.0..=f32::MAX).contains(&v));
                if !fine && self.c.group[t] >= 0 {
                    let j = w
                        .iter()
                        .position(|v| !(0.0..=f32::MAX).contains(v))
                        .unwrap_or(0);
                    return Err(self.bad_value("routing_weight", w[j], t, l0 + j / k));
                }
            }
            for li in 0..nl {
                let sums = li * g_n * e_n..(li + 1) * g_n * e_n;
                let (counts, mass) = (&mut counts[sums.clone()], &mut mass[sums]);
                for t in tile.clone() {
                    let g = self.c.group[t];
                    if g < 0 {
                        continue;
                    }
                    let row = g as usize * e_n..(g as usize + 1) * e_n;
                    let (c_row, m_row) = (&mut counts[row.clone()], &mut mass[row]);
                    let off = (t * l + l0 + li) * k;
                    let w = &wbuf[((t - t0) * nl + li) * k..][..k];
                    for (&id, &wv) in idx[off..off + k].iter().zip(w) {
                        let e: i64 = id.into();
                        // a negative index wraps to a huge one: one comparison checks both ends
                        let eu = e as u64 as usize;
                        if eu >= e_n {
                            return Err(self.bad_index(e, t, l0 + li));
                        }
                        c_row[eu] += 1;
                        m_row[eu] += wv as f64;
                        if let Some(s) = self.slots {
                            items[li][s[t] as usize * e_n + eu] += 1;
                        }
                    }
                }
            }
        }
        let Some(p) = self.c.prob else { return Ok(()) };
        for (t, &g) in self.c.group.iter().enumerate() {
            if g < 0 {
                continue;
            }
            for li in 0..nl {
                let o = (t * l + l0 + li) * e_n;
                let h = match entropy_of(p.decode(o..o + e_n, &mut pbuf)) {
                    Ok(h) => h,
                    Err(Some(v)) => return Err(self.bad_value("router_prob", v, t, l0 + li)),
                    Err(None) => return Err(self.zero_probs(t, l0 + li)),
                };
                ent[li * g_n + g as usize] += h;
            }
        }
        Ok(())
    }

    fn bad_index(&self, e: i64, t: usize, layer: usize) -> Error {
        Error::Data(format!(
            "routing_idx holds expert {e} at token {}, moe_layer {layer}: indices must lie in \
             [0, n_experts={}); check the n_experts attribute of the dump",
            self.t0 + t as u64,
            self.n_experts
        ))
    }

    fn zero_probs(&self, t: usize, layer: usize) -> Error {
        Error::Data(format!(
            "router_prob is all zero at token {}, moe_layer {layer}: each token needs a router \
             distribution; drop those tokens or capture without router_prob",
            self.t0 + t as u64
        ))
    }

    fn bad_value(&self, what: &str, v: f32, t: usize, layer: usize) -> Error {
        Error::Data(format!(
            "{what} is {v} at token {}, moe_layer {layer}: it must be finite and non-negative; \
             drop or fix those tokens",
            self.t0 + t as u64
        ))
    }
}

/// Entropy (nats) of a non-negative vector renormalised to sum 1; `Err(Some(bad))`
/// for a NaN, inf or negative value, `Err(None)` when all are zero.
fn entropy_of(p: &[f32]) -> std::result::Result<f64, Option<f32>> {
    let mut s = 0f64;
    let mut plogp = 0f64;
    for &v in p {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(Some(v));
        }
        let x = v as f64;
        if x > 0.0 {
            s += x;
            plogp += x * x.ln();
        }
    }
    if s > 0.0 {
        Ok(s.ln() - plogp / s)
    } else {
        Err(None)
    }
}

fn add<T: Copy + std::ops::AddAssign>(a: &mut [T], b: &[T]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// `[a][b][e]` → `[b][a][e]`.
fn to_group_major<T: Copy + Default>(v: &[T], a: usize, b: usize, e: usize) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * e..][..e].copy_from_slice(&v[(i * b + j) * e..][..e]);
        }
    }
    out
}

mod stats;
pub use stats::{js_divergence, partial_correlation, Partial, Profile, Thresholds};

#[cfg(test)]
mod tests {
    use super::*;

    const TH: Thresholds = Thresholds {
        min_lift: 2.0,
        min_usage: 0.0,
        min_specificity: 0.0,
    };

    /// Two groups, one layer, k = 1, 4 experts: group 0 always expert 0,
    /// group 1 always expert 3.
    fn disjoint() -> RoutingAccumulator {
        let idx: Vec<i16> = vec![0, 3, 0, 3];
        let w = vec![1.0f32; 4];
        let group = vec![0, 1, 0, 1];
        let item = vec![7i64, 7, 8, 8];
        let mut acc = RoutingAccumulator::new(2, 1, 4, 1, true).unwrap();
        let c = Chunk {
            idx: Indices::I16(&idx),
            weight: Values::F32(&w),
            prob: None,
            group: &group,
            item: Some(&item),
        };
        acc.update(&c).unwrap();
        acc
    }

    #[test]
    fn disjoint_groups_diverge_fully_and_identical_not_at_all() {
        let p = disjoint().profile(Some(0), &TH).unwrap();
        // js is (g, h, l) with one layer.
        assert_eq!(p.js, vec![0.0, 1.0, 1.0, 0.0]);
        assert_eq!(p.js_to_reference.unwrap(), vec![0.0, 1.0]);
        assert_eq!(p.usage_entropy, vec![0.0, 0.0]);
        assert_eq!(p.never_used, vec![0.75, 0.75]);
        assert_eq!(p.parallel_overlap.unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(p.parallel_items.unwrap(), vec![2, 2, 2, 2]);
        assert_eq!(p.specificity[0], 1.0);
        assert!(p.specialised[0] && p.specialised[7] && !p.specialised[3]);
    }

    #[test]
    fn merge_equals_one_pass_and_parts_round_trip() {
        let whole = disjoint();
        let idx: Vec<i16> = vec![0, 3];
        let w = vec![1.0f32; 2];
        let (mut a, mut b) = (
            RoutingAccumulator::new(2, 1, 4, 1, true).unwrap(),
            RoutingAccumulator::new(2, 1, 4, 1, true).unwrap(),
        );
        for (acc, item) in [(&mut a, 7i64), (&mut b, 8)] {
            let items = [item, item];
            let c = Chunk {
                idx: Indices::I16(&idx),
                weight: Values::F32(&w),
                prob: None,
                group: &[0, 1],
                item: Some(&items),
            };
            acc.update(&c).unwrap();
        }
        a.merge(&b).unwrap();
        assert_eq!(a.parts().unwrap(), whole.parts().unwrap());
        let back = RoutingAccumulator::from_parts(1, 4, 1, true, whole.parts().unwrap()).unwrap();
        assert_eq!(back.parts().unwrap(), whole.parts().unwrap());
    }

    #[test]
    fn bad_index_is_an_error_and_poisons() {
        let mut acc = RoutingAccumulator::new(1, 2, 4, 1, false).unwrap();
        let idx: Vec<i32> = vec![1, 4];
        let w = vec![0.5f32; 2];
        let c = Chunk {
            idx: Indices::I32(&idx),
            weight: Values::F32(&w),
            prob: None,
            group: &[0],
            item: None,
        };
        let e = acc.update(&c).unwrap_err();
        assert!(
            matches!(e, Error::Data(ref m) if m.contains("expert 4")),
            "{e}"
        );
        assert!(acc.parts().is_err());
    }

    #[test]
    fn router_entropy_of_uniform_is_one() {
        let mut acc = RoutingAccumulator::new(1, 1, 4, 1, false).unwrap();
        let prob = vec![f16::from_f32(0.25); 4];
        let w = [f16::from_f32(0.25)];
        let c = Chunk {
            idx: Indices::I16(&[2]),
            weight: Values::F16(&w),
            prob: Some(Values::F16(&prob)),
            group: &[0],
            item: None,
        };
        acc.update(&c).unwrap();
        let p = acc.profile(None, &TH).unwrap();
        assert!((p.token_entropy[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn partial_correlation_removes_a_shared_cause() {
        let z = [1.0, 2.0, 3.0, 4.0, 5.0];
        let x = [2.0, 4.1, 5.9, 8.0, 10.0];
        let y = [1.0, 2.0, 3.1, 3.9, 5.0];
        let p = partial_correlation(&x, &y, &z).unwrap();
        assert!(p.r_xy > 0.99 && p.r_xy_z.abs() < p.r_xy);
        assert!(partial_correlation(&x[..3], &y[..3], &z[..3]).is_err());
    }
}
