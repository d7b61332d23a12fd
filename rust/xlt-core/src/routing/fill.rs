//! The fill loop of [`RoutingAccumulator::update`]: one chunk's counts,
//! weight mass, router entropy and per-(group, item) counts, in parallel over
//! blocks of layers, tokens in tiles.
use std::ops::Range;

use rayon::prelude::*;

use super::{Chunk, Indices, RoutingAccumulator};
use crate::error::{Error, Result};

/// Tokens per tile of the fill loop.
const TILE: usize = 128;

impl RoutingAccumulator {
    pub(super) fn fill(&mut self, c: &Chunk<'_>) -> Result<()> {
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

    pub(super) fn slot(&mut self, key: (u32, i64)) -> u32 {
        let next = self.item_keys.len() as u32;
        let s = *self.slot_of.entry(key).or_insert(next);
        if s == next {
            self.item_keys.push(key);
            self.item_tokens.push(0);
        }
        s
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
