//! Streaming CKA per layer over row blocks (dumps larger than memory).
use super::{all_pairs, CkaStats, Precision, Sums};
use crate::error::{ensure_shape, Result};
use crate::matrix::Mat;
use crate::similarity::blocks::paired_rows;

/// Streaming CKA over several layers: each update brings the same row block
/// of X and Y for every layer; memory is (dx² + dy² + dx·dy)·8 bytes a layer.
/// Products run in f64 so that the debiased estimate stays exact.
pub struct CkaAccumulator {
    layers: Vec<Sums>,
    names: [String; 2],
}

impl Default for CkaAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl CkaAccumulator {
    pub fn new() -> Self {
        CkaAccumulator {
            layers: vec![],
            names: ["X".into(), "Y".into()],
        }
    }

    /// Rows seen so far.
    pub fn n(&self) -> usize {
        self.layers.first().map_or(0, |s| s.n())
    }

    /// Add one row block per layer: `xs[l]` and `ys[l]` pair rows.
    pub fn update<'a>(&mut self, xs: &[Mat<'a>], ys: &[Mat<'a>]) -> Result<()> {
        ensure_shape(xs.len() == ys.len() && !xs.is_empty(), || {
            format!(
                "got {} X blocks and {} Y blocks; pass one of each per layer",
                xs.len(),
                ys.len()
            )
        })?;
        if self.layers.is_empty() {
            self.layers = xs
                .iter()
                .zip(ys)
                .map(|(x, y)| {
                    Sums::new(
                        &[x.ncols(), y.ncols()],
                        &all_pairs(2),
                        vec![],
                        Precision::F64,
                    )
                })
                .collect();
        }
        ensure_shape(xs.len() == self.layers.len(), || {
            format!(
                "earlier updates had {} layers, this one has {}",
                self.layers.len(),
                xs.len()
            )
        })?;
        for ((x, y), sums) in xs.iter().zip(ys).zip(&mut self.layers) {
            paired_rows(x, y, 0, "CKA")?;
            sums.update(&[*x, *y], 0, x.nrows(), &self.names)?;
        }
        Ok(())
    }

    /// Per-layer CKA statistics so far.
    pub fn stats(&self) -> Result<Vec<CkaStats>> {
        ensure_shape(self.n() >= 2, || {
            format!("CKA needs at least 2 rows, got {}", self.n())
        })?;
        Ok(self
            .layers
            .iter()
            .map(|s| CkaStats {
                names: self.names.to_vec(),
                ..s.stats()
            })
            .collect())
    }

    /// Per-layer linear CKA.
    pub fn linear(&self) -> Result<Vec<f64>> {
        self.stats()?.iter().map(|s| s.linear(0, 1)).collect()
    }

    /// Per-layer debiased CKA.
    pub fn debiased(&self) -> Result<Vec<f64>> {
        self.stats()?.iter().map(|s| s.debiased(0, 1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::data;
    use super::super::{pairwise_stats, Route};
    use super::*;

    #[test]
    fn routes_and_streaming_agree() {
        let (x, y) = (data(3000, 7, 2), data(3000, 5, 3));
        let mats = [Mat::F32(x.view()), Mat::F32(y.view())];
        let names = ["X".to_string(), "Y".to_string()];
        let f = pairwise_stats(&mats, &names, Some(Route::Feature), Precision::F64).unwrap();
        let g = pairwise_stats(&mats, &names, Some(Route::Gram), Precision::F64).unwrap();
        let mut acc = CkaAccumulator::new();
        for s in (0..3000).step_by(700) {
            let e = (s + 700).min(3000);
            let xb = x.slice(ndarray::s![s..e, ..]);
            let yb = y.slice(ndarray::s![s..e, ..]);
            acc.update(&[Mat::F32(xb)], &[Mat::F32(yb)]).unwrap();
        }
        let (lin, deb) = (acc.linear().unwrap()[0], acc.debiased().unwrap()[0]);
        for st in [&f, &g] {
            assert!((st.linear(0, 1).unwrap() / lin - 1.0).abs() < 1e-7);
            assert!((st.debiased(0, 1).unwrap() / deb - 1.0).abs() < 1e-7);
        }
    }
}
