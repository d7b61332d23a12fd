//! Induce the table of attested Arabic roots from unlabeled text on stdin
//! (run by `tools/arabic_root_table.py`, which says which text).
//!
//! Every distinct word form gets the roots morphology allows for it (within a
//! cost margin of the cheapest); an EM loop then shares each form among its
//! candidate roots in proportion to root prevalence × exp(-cost), so roots
//! that explain many forms gather weight and readings no other form supports
//! fade. Prints `root<TAB>weight` (expected number of forms), heaviest first.
use std::collections::HashMap;
use std::io::Read;

use xlt_core::roots::arabic;

/// Candidate roots within this cost of the cheapest.
const MARGIN: f32 = 2.0;
/// Sharpness of the morphology's preference (per unit of cost).
const BETA: f32 = 1.0;
const ROUNDS: usize = 20;
/// Roots below this weight are left out.
const MIN_WEIGHT: f32 = 0.5;

fn main() {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .expect("utf-8 text on stdin");
    // distinct forms, diacritics and letter variants folded
    let mut forms: Vec<String> = text
        .split(|c: char| !('\u{621}'..='\u{6ff}').contains(&c))
        .filter_map(arabic::normalise)
        .map(|w| w.into_iter().collect())
        .collect();
    forms.sort_unstable();
    forms.dedup();
    let mut roots: HashMap<String, usize> = HashMap::new();
    let mut cands: Vec<Vec<(usize, f32)>> = Vec::new();
    for w in &forms {
        let c = arabic::candidates(w, MARGIN);
        if c.is_empty() {
            continue;
        }
        let mut row = Vec::with_capacity(c.len());
        for (r, cost) in c {
            let n = roots.len();
            let id = *roots.entry(r).or_insert(n);
            row.push((id, (-BETA * cost).exp()));
        }
        cands.push(row);
    }
    let mut prior = vec![1.0f32; roots.len()];
    let mut weight = vec![0.0f32; roots.len()];
    for _ in 0..ROUNDS {
        weight.iter_mut().for_each(|x| *x = 0.0);
        for row in &cands {
            let total: f32 = row.iter().map(|&(r, l)| prior[r] * l).sum();
            if total <= 0.0 {
                continue;
            }
            for &(r, l) in row {
                weight[r] += prior[r] * l / total;
            }
        }
        prior.copy_from_slice(&weight);
    }
    let mut out: Vec<(&String, f32)> = roots.iter().map(|(r, &i)| (r, weight[i])).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    println!("# {} forms, {} candidate roots", cands.len(), roots.len());
    for (r, w) in out.into_iter().filter(|(_, w)| *w >= MIN_WEIGHT) {
        println!("{r}\t{w:.1}");
    }
}
