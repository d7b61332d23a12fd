//! Representation similarity between paired rows of two matrices (the same
//! items in two languages, or the same tokens at two layers): linear and
//! debiased CKA, RSA, SVCCA, PWCCA, Procrustes distance and retrieval.
//!
//! Inputs are borrowed f32/f16/bf16 matrices read in f32 row blocks; sums
//! are kept in f64 and products formed on centred (or shifted) rows, so the
//! results match an f64 reference to about 1e-7 relative.
mod blocks;
pub mod cca;
pub mod cka;
mod gemm;
mod rank;
pub mod retrieval;
pub mod rsa;
mod scale;

pub use cca::{procrustes, pwcca, svcca};
pub use cka::{
    cka_matrix, debiased_cka, linear_cka, pairwise_stats, CkaAccumulator, CkaStats, Precision,
    Route,
};
pub use retrieval::retrieval;
pub use rsa::{rsa, rsa_pairwise, RdmMetric, RsaMethod};
