//! The feature route of [`super::pairwise_stats`]: `X̄_pᵀX̄_q` for every pair
//! summed over row blocks by [`Sums`], in batches of pairs whose sums fit
//! [`feature_bytes`].
use super::{all_pairs, CkaStats, Precision, Sums};
use crate::error::{Error, Result};
use crate::matrix::Mat;
use crate::similarity::blocks::BLOCK_ROWS;

/// Memory the feature route may hold in cross-product sums at once: a
/// sixteenth of physical memory, at least 512 MiB (24 layers of width 512
/// then run in one pass over the rows, with every matrix packed once).
fn feature_bytes() -> usize {
    let sixteenth = crate::limits::physical_memory() / 16;
    usize::try_from(sixteenth)
        .unwrap_or(usize::MAX)
        .max(512 << 20)
}

pub(super) fn stats(
    mats: &[Mat],
    names: &[String],
    dims: &[usize],
    means: Vec<Vec<f64>>,
    prec: Precision,
) -> Result<CkaStats> {
    let mut batches: Vec<Vec<(usize, usize)>> = vec![vec![]];
    let (mut bytes, limit) = (0, feature_bytes());
    for pair in all_pairs(dims.len()) {
        let b = dims[pair.0] * dims[pair.1] * 8;
        if bytes + b > limit && !batches.last().unwrap().is_empty() {
            batches.push(vec![]);
            bytes = 0;
        }
        bytes += b;
        batches.last_mut().unwrap().push(pair);
    }
    let mut out: Option<CkaStats> = None;
    for pairs in batches {
        let mut sums = Sums::new(dims, &pairs, means.clone(), prec);
        for (s, e) in mats[0].blocks(BLOCK_ROWS) {
            sums.update(mats, s, e, names)?;
        }
        let mut st = sums.stats();
        st.names = names.to_vec();
        match out.as_mut() {
            None => out = Some(st),
            Some(o) => {
                for &(p, q) in &pairs {
                    for (i, j) in [(p, q), (q, p)] {
                        o.hsic[[i, j]] = st.hsic[[i, j]];
                        o.kl[[i, j]] = st.kl[[i, j]];
                    }
                }
            }
        }
    }
    out.ok_or_else(|| Error::Shape("no matrices to compare".into()))
}
