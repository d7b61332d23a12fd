//! The Gram route of [`super::pairwise_stats`]: `tr(K_p K_q)` from tiles of
//! the centred Gram matrices, never holding an n × n matrix; cheaper than the
//! feature route when rows are few against the widths.
use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::{all_pairs, CkaStats};
use crate::error::Result;
use crate::matrix::Mat;
use crate::similarity::blocks::{decode, Scalar};

/// Rows per tile side in the Gram route.
const TILE: usize = 512;

pub(super) fn stats<T: Scalar>(
    mats: &[Mat],
    names: &[String],
    means: &[Vec<f64>],
) -> Result<CkaStats> {
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
