//! Expert-routing profiles: one streaming pass over the top-k routing of an
//! MoE model, accumulated per group (language, script, arm, ...) and MoE layer,
//! then the derived statistics (usage, entropy, imbalance, divergences,
//! specialisation, parallel agreement).
//!
//! Data come in chunks along the token axis, row-major:
//! `idx` (token, layer, k) i16/i32, `weight` (token, layer, k) f16/f32/bf16,
//! optional `prob` (token, layer, expert) f16/f32/bf16 (the full router
//! distribution), `group` (token) i32 (a negative group leaves the token out),
//! optional `item` (token) i64, the parallel item id (the same id for the
//! translations of one passage). [`RoutingAccumulator`] holds only counts and
//! sums, so memory does not grow with the number of tokens, and two
//! accumulators over disjoint tokens [`merge`](RoutingAccumulator::merge) into
//! the accumulator of their union. Work is parallel over blocks of layers.
//! [`RoutingFiles`] streams the same chunks from a dump's chunk files.
//!
//! Indices are counted as given: a token's k indices are assumed distinct
//! (the router's top-k); duplicates would be counted twice.
use std::collections::HashMap;
use std::ops::Range;

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};

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
    /// bfloat16 as its raw 16-bit pattern.
    BF16(&'a [u16]),
}

impl<'a> Values<'a> {
    fn len(&self) -> usize {
        match self {
            Values::F16(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::BF16(v) => v.len(),
        }
    }

    /// Elements `r` as f32, written to `out` (of the same length).
    fn decode_into(&self, r: Range<usize>, out: &mut [f32]) {
        match self {
            Values::F32(v) => out.copy_from_slice(&v[r]),
            Values::F16(v) => v[r].convert_to_f32_slice(out),
            Values::BF16(v) => v[r].reinterpret_cast::<bf16>().convert_to_f32_slice(out),
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
            Values::BF16(v) => {
                let out = &mut buf[..r.len()];
                v[r].reinterpret_cast::<bf16>().convert_to_f32_slice(out);
                out
            }
        }
    }
}

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

mod files;
mod fill;
mod stats;
pub use files::{RoutingFiles, Stored};
pub use stats::{
    js_divergence, js_rows, partial_correlation, partial_rows, Partial, PartialRows, Profile,
    Thresholds,
};

#[cfg(test)]
mod tests;
