//! Statistics derived from a [`RoutingAccumulator`]. Natural logarithms
//! throughout; every formula is written out on the field it fills.
use rayon::prelude::*;

use super::RoutingAccumulator;
use crate::error::{ensure_data, ensure_shape, Error, Result};

/// Thresholds for [`Profile::specialised`].
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Minimum lift P(e|g) / P(e).
    pub min_lift: f64,
    /// Minimum usage share P(e|g).
    pub min_usage: f64,
    /// Minimum specificity of the expert across groups.
    pub min_specificity: f64,
}

/// Per group × layer routing profile. Shapes are in the field comments,
/// row-major; g = group, l = layer, e = expert, h = other group.
/// u = usage, w = weight share; H(p) = -Σ p ln p; E experts, G groups.
#[derive(Clone, Debug)]
pub struct Profile {
    pub n_groups: usize,
    pub n_layers: usize,
    pub n_experts: usize,
    /// (g) tokens.
    pub tokens: Vec<u64>,
    /// (g, l, e) u = share of the group's top-k selections that went to e.
    pub usage: Vec<f64>,
    /// (g, l, e) w = share of the group's summed routing weight that went to e.
    pub weight_mass: Vec<f64>,
    /// (g, l) mean over tokens of H(router distribution) / ln E; NaN when no
    /// router probabilities were captured.
    pub token_entropy: Vec<f64>,
    /// (g, l) H(u) / ln E.
    pub usage_entropy: Vec<f64>,
    /// (g, l) coefficient of variation of u over experts (population sd / mean).
    pub imbalance: Vec<f64>,
    /// (g, l) share of experts with no selection.
    pub never_used: Vec<f64>,
    /// (g, h, l) JS(u_g, u_h) / ln 2, in [0, 1] (1 for disjoint supports).
    pub js: Vec<f64>,
    /// (g, l) JS(w_g, w_ref) / H((w_g + w_ref) / 2) (0 when that entropy is 0),
    /// in [0, 1]; `None` without a reference.
    pub js_to_reference: Option<Vec<f64>>,
    /// (g, l, e) u_g(e) / P(e), P(e) = mean over groups of u_g(e) (groups
    /// weighted equally); NaN where P(e) = 0.
    pub lift: Vec<f64>,
    /// (l, e) 1 - H(q) / ln G with q_g = u_g(e) / Σ_g u_g(e): 0 when all groups
    /// use e alike, 1 when one group alone does; NaN if G < 2 or e is unused.
    pub specificity: Vec<f64>,
    /// (g, l, e) lift ≥ min_lift and u ≥ min_usage and specificity ≥ min_specificity.
    pub specialised: Vec<bool>,
    /// (g, h, l) mean over the items both groups have of the weighted Jaccard
    /// Σ_e min(a_e, b_e) / Σ_e max(a_e, b_e), where a_e (b_e) is the share of the
    /// item's tokens in g (h) that selected e; NaN without shared items.
    /// `None` when the accumulator did not track items.
    pub parallel_overlap: Option<Vec<f64>>,
    /// (g, h) items both groups have.
    pub parallel_items: Option<Vec<u64>>,
}

impl RoutingAccumulator {
    /// Derive every statistic. `reference`: the group `js_to_reference` is
    /// measured against. Fails on a group without tokens.
    pub fn profile(&self, reference: Option<usize>, th: &Thresholds) -> Result<Profile> {
        self.check_usable()?;
        let (g_n, l_n, e_n) = (self.n_groups, self.n_layers, self.n_experts);
        if e_n < 2 {
            return Err(Error::Config(format!(
                "routing statistics need at least 2 experts, got n_experts={e_n}"
            )));
        }
        if let Some(r) = reference {
            ensure_data(r < g_n, || {
                format!("reference group {r} is out of range ({g_n} groups)")
            })?;
        }
        if let Some(g) = self.tokens.iter().position(|&n| n == 0) {
            return Err(Error::Data(format!(
                "group {g} has no tokens: drop it from the groups or add its text to the dump"
            )));
        }
        let with_probs = self.prob_tokens.iter().any(|&n| n > 0);
        ensure_data(!with_probs || self.prob_tokens == self.tokens, || {
            "router_prob was given for some chunks only: pass it with every chunk or with none"
                .into()
        })?;
        let p = self.parts()?;
        let gle = |g: usize, l: usize| (g * l_n + l) * e_n..(g * l_n + l + 1) * e_n;
        let ln_e = (e_n as f64).ln();
        let mut usage = vec![0.0; g_n * l_n * e_n];
        let mut weight_mass = vec![0.0; g_n * l_n * e_n];
        let mut token_entropy = vec![f64::NAN; g_n * l_n];
        let mut usage_entropy = vec![0.0; g_n * l_n];
        let mut imbalance = vec![0.0; g_n * l_n];
        let mut never_used = vec![0.0; g_n * l_n];
        for g in 0..g_n {
            for l in 0..l_n {
                let r = gle(g, l);
                let n: u64 = p.counts[r.clone()].iter().sum();
                let m: f64 = p.mass[r.clone()].iter().sum();
                ensure_data(m > 0.0, || {
                    format!(
                        "routing weights of group {g} at moe_layer {l} sum to 0; check the dump"
                    )
                })?;
                for (u, &c) in usage[r.clone()].iter_mut().zip(&p.counts[r.clone()]) {
                    *u = c as f64 / n as f64;
                }
                for (w, &x) in weight_mass[r.clone()].iter_mut().zip(&p.mass[r.clone()]) {
                    *w = x / m;
                }
                let u = &usage[r.clone()];
                let gl = g * l_n + l;
                if with_probs {
                    token_entropy[gl] = p.entropy[gl] / (self.tokens[g] as f64 * ln_e);
                }
                usage_entropy[gl] = entropy(u) / ln_e;
                let mean = 1.0 / e_n as f64;
                let var = u.iter().map(|&x| (x - mean) * (x - mean)).sum::<f64>() / e_n as f64;
                imbalance[gl] = var.sqrt() / mean;
                never_used[gl] =
                    p.counts[r].iter().filter(|&&c| c == 0).count() as f64 / e_n as f64;
            }
        }
        let mut js = vec![0.0; g_n * g_n * l_n];
        for g in 0..g_n {
            for h in 0..g_n {
                for l in 0..l_n {
                    js[(g * g_n + h) * l_n + l] =
                        js_divergence(&usage[gle(g, l)], &usage[gle(h, l)])
                            / std::f64::consts::LN_2;
                }
            }
        }
        let js_to_reference = reference.map(|r| {
            let mut out = vec![0.0; g_n * l_n];
            for g in 0..g_n {
                for l in 0..l_n {
                    let (a, b) = (&weight_mass[gle(g, l)], &weight_mass[gle(r, l)]);
                    let mix: Vec<f64> = a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect();
                    let hm = entropy(&mix);
                    out[g * l_n + l] = if hm > 0.0 {
                        js_divergence(a, b) / hm
                    } else {
                        0.0
                    };
                }
            }
            out
        });
        let (lift, specificity, specialised) = specialisation(&usage, g_n, l_n, e_n, th);
        let (parallel_overlap, parallel_items) = if self.track_items {
            let (o, n) = self.parallel_overlap();
            (Some(o), Some(n))
        } else {
            (None, None)
        };
        Ok(Profile {
            n_groups: g_n,
            n_layers: l_n,
            n_experts: e_n,
            tokens: self.tokens.clone(),
            usage,
            weight_mass,
            token_entropy,
            usage_entropy,
            imbalance,
            never_used,
            js,
            js_to_reference,
            lift,
            specificity,
            specialised,
            parallel_overlap,
            parallel_items,
        })
    }

    /// (g, h, l) mean weighted Jaccard over shared items, and (g, h) counts.
    fn parallel_overlap(&self) -> (Vec<f64>, Vec<u64>) {
        let (g_n, l_n, e_n) = (self.n_groups, self.n_layers, self.n_experts);
        // pairs[g * G + h]: (slot in g, slot in h) of every shared item.
        let mut pairs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); g_n * g_n];
        for (s, &(g, item)) in self.item_keys.iter().enumerate() {
            for h in 0..g_n as u32 {
                if let Some(&t) = self.slot_of.get(&(h, item)) {
                    pairs[g as usize * g_n + h as usize].push((s, t as usize));
                }
            }
        }
        let n_items: Vec<u64> = pairs.iter().map(|v| v.len() as u64).collect();
        let per_layer: Vec<Vec<f64>> = self
            .item_counts
            .par_iter()
            .map(|counts| {
                pairs
                    .iter()
                    .enumerate()
                    .map(|(gh, shared)| {
                        if gh / g_n > gh % g_n {
                            return 0.0; // the mirror of (h, g), filled below
                        }
                        let total: f64 = shared
                            .iter()
                            .map(|&(a, b)| {
                                weighted_jaccard(
                                    &counts[a * e_n..(a + 1) * e_n],
                                    self.item_tokens[a] as f64,
                                    &counts[b * e_n..(b + 1) * e_n],
                                    self.item_tokens[b] as f64,
                                )
                            })
                            .sum();
                        total / shared.len() as f64
                    })
                    .collect()
            })
            .collect();
        let mut out = vec![0.0; g_n * g_n * l_n];
        for (l, v) in per_layer.iter().enumerate() {
            for g in 0..g_n {
                for h in 0..g_n {
                    out[(g * g_n + h) * l_n + l] = v[g.min(h) * g_n + g.max(h)];
                }
            }
        }
        (out, n_items)
    }
}

/// Σ min / Σ max of the count vectors `a / na` and `b / nb`.
fn weighted_jaccard(a: &[u32], na: f64, b: &[u32], nb: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 / na, y as f64 / nb);
        lo += x.min(y);
        hi += x.max(y);
    }
    lo / hi
}

/// (lift, specificity, specialised) from usage (g, l, e).
fn specialisation(
    u: &[f64],
    g_n: usize,
    l_n: usize,
    e_n: usize,
    th: &Thresholds,
) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let at = |g: usize, l: usize, e: usize| (g * l_n + l) * e_n + e;
    let mut lift = vec![0.0; u.len()];
    let mut spec = vec![f64::NAN; l_n * e_n];
    let ln_g = (g_n as f64).ln();
    for l in 0..l_n {
        for e in 0..e_n {
            let col: Vec<f64> = (0..g_n).map(|g| u[at(g, l, e)]).collect();
            let total: f64 = col.iter().sum();
            let pe = total / g_n as f64;
            for (g, &x) in col.iter().enumerate() {
                lift[at(g, l, e)] = if pe > 0.0 { x / pe } else { f64::NAN };
            }
            if g_n >= 2 && total > 0.0 {
                let q: Vec<f64> = col.iter().map(|x| x / total).collect();
                spec[l * e_n + e] = 1.0 - entropy(&q) / ln_g;
            }
        }
    }
    let specialised = (0..u.len())
        .map(|i| {
            let (l, e) = ((i / e_n) % l_n, i % e_n);
            lift[i] >= th.min_lift
                && u[i] >= th.min_usage
                && spec[l * e_n + e] >= th.min_specificity
        })
        .collect();
    (lift, spec, specialised)
}

/// H(p) = -Σ p ln p (0 ln 0 = 0), nats.
fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x * x.ln())
        .sum::<f64>()
}

/// Jensen–Shannon divergence in nats, ½ KL(p‖m) + ½ KL(q‖m) with m = (p + q)/2,
/// of two distributions over the same support (each summing to 1); in [0, ln 2].
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    let mut s = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let m = 0.5 * (a + b);
        if a > 0.0 {
            s += a * (a / m).ln();
        }
        if b > 0.0 {
            s += b * (b / m).ln();
        }
    }
    (0.5 * s).max(0.0)
}

/// Pearson correlations of x, y, z and the partial correlation of x and y
/// given z, plus the residual of x after least-squares regression on z.
#[derive(Clone, Debug)]
pub struct Partial {
    pub r_xy: f64,
    pub r_xz: f64,
    pub r_yz: f64,
    /// (r_xy − r_xz r_yz) / sqrt((1 − r_xz²)(1 − r_yz²)).
    pub r_xy_z: f64,
    /// x − x̄ − β (z − z̄), β = cov(x, z) / var(z).
    pub x_resid: Vec<f64>,
}

/// Partial correlation of `x` and `y` controlling for `z` (same length ≥ 4,
/// finite, none constant).
pub fn partial_correlation(x: &[f64], y: &[f64], z: &[f64]) -> Result<Partial> {
    let n = x.len();
    if y.len() != n || z.len() != n {
        return Err(Error::Shape(format!(
            "partial correlation needs equal lengths, got {n}, {}, {}",
            y.len(),
            z.len()
        )));
    }
    ensure_data(n >= 4, || {
        format!("partial correlation needs at least 4 observations (groups), got {n}")
    })?;
    ensure_data(x.iter().chain(y).chain(z).all(|v| v.is_finite()), || {
        "partial correlation inputs contain NaN or inf; drop those groups first".into()
    })?;
    let centred = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / n as f64;
        v.iter().map(|a| a - m).collect::<Vec<f64>>()
    };
    let (cx, cy, cz) = (centred(x), centred(y), centred(z));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let (sxx, syy, szz) = (dot(&cx, &cx), dot(&cy, &cy), dot(&cz, &cz));
    ensure_data(sxx > 0.0 && syy > 0.0 && szz > 0.0, || {
        "partial correlation needs variables that vary across groups; one is constant".into()
    })?;
    let r_xy = dot(&cx, &cy) / (sxx * syy).sqrt();
    let r_xz = dot(&cx, &cz) / (sxx * szz).sqrt();
    let r_yz = dot(&cy, &cz) / (syy * szz).sqrt();
    let den = ((1.0 - r_xz * r_xz) * (1.0 - r_yz * r_yz)).sqrt();
    let r_xy_z = if den > 0.0 {
        (r_xy - r_xz * r_yz) / den
    } else {
        f64::NAN
    };
    let beta = dot(&cx, &cz) / szz;
    let x_resid = cx.iter().zip(&cz).map(|(a, b)| a - beta * b).collect();
    Ok(Partial {
        r_xy,
        r_xz,
        r_yz,
        r_xy_z,
        x_resid,
    })
}

/// Row-wise Jensen–Shannon divergence / ln 2 of `p` and `q`, each `n` rows of
/// `e` values that must be distributions (finite, non-negative, summing to 1
/// within 1e-6): what `xlt.routing.shift` compares.
pub fn js_rows(p: &[f64], q: &[f64], e: usize) -> Result<Vec<f64>> {
    ensure_shape(
        e > 0 && p.len() == q.len() && p.len().is_multiple_of(e),
        || {
            format!(
                "distributions to compare have {} and {} values in rows of {e}; they must match",
                p.len(),
                q.len()
            )
        },
    )?;
    for (name, a) in [("first", p), ("second", q)] {
        for (i, row) in a.chunks(e).enumerate() {
            let s: f64 = row.iter().sum();
            ensure_data(
                row.iter().all(|v| v.is_finite() && *v >= 0.0) && (s - 1.0).abs() < 1e-6,
                || {
                    format!(
                        "row {i} of the {name} distributions is not a distribution (sum {s}); \
                         pass non-negative rows summing to 1"
                    )
                },
            )?;
        }
    }
    Ok(p.chunks(e)
        .zip(q.chunks(e))
        .map(|(a, b)| js_divergence(a, b) / std::f64::consts::LN_2)
        .collect())
}

/// [`partial_correlation`] of every row (layer) of row-major (rows, groups)
/// `x`, `y`, `z`: each statistic per row, and the residuals (rows, groups).
#[derive(Clone, Debug, Default)]
pub struct PartialRows {
    pub r_xy: Vec<f64>,
    pub r_xz: Vec<f64>,
    pub r_yz: Vec<f64>,
    pub r_xy_z: Vec<f64>,
    pub x_resid: Vec<f64>,
}

pub fn partial_rows(x: &[f64], y: &[f64], z: &[f64], groups: usize) -> Result<PartialRows> {
    ensure_shape(
        groups > 0 && x.len().is_multiple_of(groups) && y.len() == x.len() && z.len() == x.len(),
        || {
            format!(
                "x, y, z must share their (layer, group) shape, got {}, {}, {} values in rows of {groups}",
                x.len(),
                y.len(),
                z.len()
            )
        },
    )?;
    let mut out = PartialRows::default();
    for ((a, b), c) in x.chunks(groups).zip(y.chunks(groups)).zip(z.chunks(groups)) {
        let p = partial_correlation(a, b, c)?;
        out.r_xy.push(p.r_xy);
        out.r_xz.push(p.r_xz);
        out.r_yz.push(p.r_yz);
        out.r_xy_z.push(p.r_xy_z);
        out.x_resid.extend(p.x_resid);
    }
    Ok(out)
}
