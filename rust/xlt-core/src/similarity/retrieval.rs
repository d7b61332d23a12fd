//! Cross-set retrieval: how often row i of X is closest (cosine) to row i of
//! Y among all rows of Y, and the reverse.
use ndarray::Axis;
use rayon::prelude::*;

use super::blocks::{decode, gram_tile, paired_rows};
use crate::error::{ensure_data, ensure_shape, Result};
use crate::matrix::Mat;

/// Rows of X scored against all of Y per task.
const ROWS: usize = 512;

fn unit_rows(m: &Mat, name: &str) -> Result<ndarray::Array2<f32>> {
    let mut b = decode(m, 0, m.nrows(), None, name)?;
    for (i, mut row) in b.axis_iter_mut(Axis(0)).enumerate() {
        let sq: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        ensure_data(sq > 0.0, || {
            format!("row {i} of {name} is all zeros; cosine retrieval is undefined for it")
        })?;
        let inv = 1.0 / sq.sqrt();
        row.mapv_inplace(|v| (v as f64 * inv) as f32);
    }
    Ok(b)
}

/// Top-1 retrieval accuracy by cosine: `(X→Y, Y→X)`. X and Y need the same
/// width (rows compared directly); the first maximum wins ties.
pub fn retrieval<'a>(x: &Mat<'a>, y: &Mat<'a>) -> Result<(f64, f64)> {
    let n = paired_rows(x, y, 2, "retrieval")?;
    ensure_shape(x.ncols() == y.ncols(), || {
        format!(
            "retrieval compares rows directly, so X and Y need the same width; got {} and {}",
            x.ncols(),
            y.ncols()
        )
    })?;
    let (xu, yu) = (unit_rows(x, "X")?, unit_rows(y, "Y")?);
    let starts: Vec<usize> = (0..n).step_by(ROWS).collect();
    // Per block: hits X→Y, and each Y column's best (score, row) within the block.
    let (hits, best) = starts
        .par_iter()
        .map(|&s| {
            let e = (s + ROWS).min(n);
            let xb = xu.slice(ndarray::s![s..e, ..]).to_owned();
            let g = gram_tile(&xb, &yu);
            let mut hits = 0usize;
            for i in 0..(e - s) {
                let row = g.row(i);
                let mut arg = 0;
                for j in 1..n {
                    if row[j] > row[arg] {
                        arg = j;
                    }
                }
                hits += (arg == s + i) as usize;
            }
            let best: Vec<(f32, usize)> = (0..n)
                .map(|j| {
                    let col = g.col_as_slice(j);
                    let mut arg = 0;
                    for i in 1..col.len() {
                        if col[i] > col[arg] {
                            arg = i;
                        }
                    }
                    (col[arg], s + arg)
                })
                .collect();
            (hits, best)
        })
        .reduce(
            || (0, vec![(f32::NEG_INFINITY, usize::MAX); n]),
            |(h1, b1), (h2, b2)| {
                let merged = b1
                    .into_iter()
                    .zip(b2)
                    .map(|(a, b)| {
                        if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
                            b
                        } else {
                            a
                        }
                    })
                    .collect();
                (h1 + h2, merged)
            },
        );
    let back = best.iter().enumerate().filter(|(j, b)| b.1 == *j).count();
    Ok((hits as f64 / n as f64, back as f64 / n as f64))
}
