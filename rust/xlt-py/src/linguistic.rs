//! Bindings of `xlt_core::overlap` (token statistics) and `xlt_core::roots`.
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyDict;
use xlt_core::overlap::TokenCounts as Core;
use xlt_core::roots;

use crate::errors::{ConfigError, IntoPyResult};

/// Streaming token statistics of one language (see `xlt.linguistic.token_overlap`).
#[pyclass(module = "xlt._core")]
pub struct TokenCounts(Core);

#[pymethods]
impl TokenCounts {
    #[new]
    #[pyo3(signature = (vocab_size=0))]
    fn new(vocab_size: usize) -> PyResult<Self> {
        Core::new(vocab_size).map(TokenCounts).py()
    }

    /// Add a chunk: token ids (uint32), token and word spans (int64 starts/ends
    /// in one coordinate system), sentence offsets into the token array.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, u32>,
        token_starts: PyReadonlyArray1<'_, i64>,
        token_ends: PyReadonlyArray1<'_, i64>,
        word_starts: PyReadonlyArray1<'_, i64>,
        word_ends: PyReadonlyArray1<'_, i64>,
        sentence_offsets: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let a = ids.as_slice()?;
        let (ts, te) = (token_starts.as_slice()?, token_ends.as_slice()?);
        let (ws, we) = (word_starts.as_slice()?, word_ends.as_slice()?);
        let so = sentence_offsets.as_slice()?;
        let inner = &mut self.0;
        py.detach(|| inner.update(a, (ts, te), (ws, we), so)).py()
    }

    /// Add a chunk of sentences: `texts`, token ids (uint32) with character
    /// spans relative to each sentence's text (int64), sentence offsets into the
    /// token array; words are found in the texts.
    fn update_texts(
        &mut self,
        py: Python<'_>,
        texts: Vec<PyBackedStr>,
        ids: PyReadonlyArray1<'_, u32>,
        token_starts: PyReadonlyArray1<'_, i64>,
        token_ends: PyReadonlyArray1<'_, i64>,
        sentence_offsets: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let a = ids.as_slice()?;
        let (ts, te) = (token_starts.as_slice()?, token_ends.as_slice()?);
        let so = sentence_offsets.as_slice()?;
        let inner = &mut self.0;
        py.detach(|| inner.update_texts(&texts, a, (ts, te), so))
            .py()
    }

    /// Add another accumulator's counts.
    fn merge(&mut self, other: PyRef<'_, TokenCounts>) {
        self.0.merge(&other.0)
    }

    #[getter]
    fn tokens(&self) -> u64 {
        self.0.tokens()
    }
    #[getter]
    fn words(&self) -> u64 {
        self.0.words()
    }
    #[getter]
    fn sentences(&self) -> usize {
        self.0.sentences()
    }
    #[getter]
    fn types(&self) -> usize {
        self.0.types()
    }
    #[getter]
    fn fertility(&self) -> f64 {
        self.0.fertility()
    }
    #[getter]
    fn single_token_rate(&self) -> f64 {
        self.0.single_token_rate()
    }
    /// Count per token id (a copy).
    fn counts<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<u64>> {
        numpy::PyArray1::from_slice(py, self.0.counts())
    }
    /// Tokens per sentence, in feeding order (a copy).
    fn sentence_tokens<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<u32>> {
        numpy::PyArray1::from_slice(py, self.0.sentence_tokens())
    }

    /// Overlap statistics of this (target) against `reference`, as a dict.
    fn overlap<'py>(
        &self,
        py: Python<'py>,
        reference: PyRef<'_, TokenCounts>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let r = &reference.0;
        let o = py.detach(|| self.0.overlap(r)).py()?;
        let d = PyDict::new(py);
        d.set_item("jaccard", o.jaccard)?;
        d.set_item("weighted_overlap", o.weighted)?;
        d.set_item("js_divergence", o.js_divergence)?;
        d.set_item("coverage", o.coverage)?;
        d.set_item("parity", o.parity)?;
        Ok(d)
    }
}

fn family(language: &str) -> PyResult<roots::Family> {
    roots::Family::parse(language).ok_or_else(|| {
        ConfigError::new_err(format!(
            "no root analyser for family {language:?}; use one of {:?}",
            roots::Family::NAMES
        ))
    })
}

/// Consonantal roots of `words` for a family ("arabic", "hebrew", "geez",
/// "maltese"); None where no root is found.
#[pyfunction]
fn roots_of(
    py: Python<'_>,
    words: Vec<PyBackedStr>,
    family_name: &str,
) -> PyResult<Vec<Option<String>>> {
    let f = family(family_name)?;
    Ok(py.detach(|| roots::extract_all(&words, f)))
}

/// Texts in the shared consonant inventory; `consonants_only` keeps only the
/// inventory consonants (for roots).
#[pyfunction]
#[pyo3(signature = (texts, consonants_only=false))]
fn transliterate(py: Python<'_>, texts: Vec<String>, consonants_only: bool) -> Vec<String> {
    let f = if consonants_only {
        roots::inventory::transliterate_root
    } else {
        roots::inventory::transliterate
    };
    py.detach(|| texts.iter().map(|t| f(t)).collect())
}

/// Character spans (starts, ends) of the words of `text`: maximal runs of
/// letters, combining marks and numbers (Unicode L, M, N).
#[pyfunction]
fn word_spans(text: &str) -> (Vec<i64>, Vec<i64>) {
    let (mut s, mut e) = (Vec::new(), Vec::new());
    xlt_core::overlap::word_spans(text, 0, &mut s, &mut e);
    (s, e)
}

/// Pooled and per-aligned-sentence containment of target items in the reference.
#[pyfunction]
fn containment(
    py: Python<'_>,
    target: Vec<Vec<String>>,
    reference: Vec<Vec<String>>,
) -> (f64, f64) {
    py.detach(|| xlt_core::overlap::containment(&target, &reference))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TokenCounts>()?;
    m.add_function(wrap_pyfunction!(roots_of, m)?)?;
    m.add_function(wrap_pyfunction!(transliterate, m)?)?;
    m.add_function(wrap_pyfunction!(containment, m)?)?;
    m.add_function(wrap_pyfunction!(word_spans, m)?)?;
    Ok(())
}
