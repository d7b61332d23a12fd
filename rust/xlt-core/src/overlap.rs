//! Token statistics of one language under one tokenizer, accumulated in
//! chunks (bounded memory: a dense count vector over the vocabulary plus one
//! token count per sentence), and the overlap of two such accumulators.
//!
//! Input per chunk, all flat: token ids, each token's `[start, end)` span and
//! each word's `[start, end)` span in one coordinate system (characters of the
//! chunk's concatenated text), and per-sentence offsets into the token array.
use rayon::prelude::*;
use unicode_normalization::char::is_combining_mark;

use crate::error::{ensure_data, ensure_shape, Error, Result};

/// Chunks above this many tokens are counted in parallel.
const PAR_MIN: usize = 1 << 18;

/// Token ids must be below this (16.7 M, 64 times the largest vocabulary in
/// use): counts are a dense vector over ids, so a stray huge id would
/// otherwise allocate gigabytes.
pub const MAX_TOKEN_ID: usize = 1 << 24;

/// Running counts of one language.
#[derive(Debug, Clone, Default)]
pub struct TokenCounts {
    counts: Vec<u64>,
    tokens: u64,
    words: u64,
    word_tokens: u64,
    single_token_words: u64,
    sentence_tokens: Vec<u32>,
}

/// Statistics of a target accumulator against a reference one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// |types(t) ∩ types(r)| / |types(t) ∪ types(r)|.
    pub jaccard: f64,
    /// Σ_v min(p_t(v), p_r(v)) of normalised frequencies.
    pub weighted: f64,
    /// Jensen–Shannon divergence of the two token distributions, in bits (0..1).
    pub js_divergence: f64,
    /// Share of the target's tokens whose type occurs in the reference.
    pub coverage: f64,
    /// Mean over aligned sentences of target tokens / reference tokens
    /// (NaN unless both saw the same number of sentences).
    pub parity: f64,
}

impl TokenCounts {
    /// An empty accumulator; `vocab_size` preallocates the count vector
    /// (ids beyond it grow it, up to [`MAX_TOKEN_ID`]).
    pub fn new(vocab_size: usize) -> Result<Self> {
        if vocab_size > MAX_TOKEN_ID {
            return Err(Error::Config(format!(
                "vocab_size {vocab_size} is beyond {MAX_TOKEN_ID}, the largest vocabulary \
                 TokenCounts counts densely; pass the tokenizer's vocabulary size (len(tokenizer))"
            )));
        }
        Ok(TokenCounts {
            counts: vec![0; vocab_size],
            ..Default::default()
        })
    }

    /// Add one chunk. `sentence_offsets` has one more entry than sentences,
    /// starts at 0 and ends at `ids.len()`; token and word spans are sorted
    /// by start within the chunk.
    pub fn update(
        &mut self,
        ids: &[u32],
        token_spans: (&[i64], &[i64]),
        word_spans: (&[i64], &[i64]),
        sentence_offsets: &[i64],
    ) -> Result<()> {
        let (ts, te) = token_spans;
        let (ws, we) = word_spans;
        let n = ids.len();
        ensure_shape(ts.len() == n && te.len() == n, || {
            format!(
                "token starts/ends must have one entry per token id ({n}), got {} and {}",
                ts.len(),
                te.len()
            )
        })?;
        ensure_shape(ws.len() == we.len(), || {
            format!(
                "word starts ({}) and ends ({}) differ in length",
                ws.len(),
                we.len()
            )
        })?;
        check_offsets(sentence_offsets, n)?;
        ensure_data(
            ts.windows(2).all(|w| w[0] <= w[1]) && ws.windows(2).all(|w| w[0] <= w[1]),
            || {
                "token and word spans must be sorted by start (concatenate sentences in order)"
                    .into()
            },
        )?;
        ensure_data(
            ts.iter().zip(te).all(|(s, e)| s <= e) && ws.iter().zip(we).all(|(s, e)| s < e),
            || "every span needs start <= end (words: start < end)".into(),
        )?;
        let max = ids.par_iter().copied().max().map_or(0, |m| m as usize + 1);
        if max > MAX_TOKEN_ID {
            let pos = ids
                .iter()
                .position(|&i| i as usize >= MAX_TOKEN_ID)
                .unwrap_or(0);
            return Err(Error::Data(format!(
                "token id {} at position {pos} is not below {MAX_TOKEN_ID}, the largest \
                 vocabulary TokenCounts counts; pass the ids a tokenizer produced",
                ids[pos]
            )));
        }
        self.count_ids(ids, max);
        self.count_words(token_spans, word_spans);
        self.sentence_tokens
            .extend(sentence_offsets.windows(2).map(|w| (w[1] - w[0]) as u32));
        self.tokens += n as u64;
        Ok(())
    }

    /// Add a chunk of sentences: sentence `i` is `texts[i]`, its tokens are
    /// `ids[offsets[i]..offsets[i + 1]]` with character spans relative to that
    /// text; its words ([`word_spans`]) are found here.
    pub fn update_texts<S: AsRef<str>>(
        &mut self,
        texts: &[S],
        ids: &[u32],
        token_spans: (&[i64], &[i64]),
        offsets: &[i64],
    ) -> Result<()> {
        let (ts, te) = token_spans;
        let n = ids.len();
        ensure_shape(ts.len() == n && te.len() == n, || {
            format!("token starts/ends must have one entry per token id ({n})")
        })?;
        check_offsets(offsets, n)?;
        ensure_shape(offsets.len() == texts.len() + 1, || {
            format!(
                "{} sentence offsets for {} texts: pass one more offset than texts",
                offsets.len(),
                texts.len()
            )
        })?;
        let (mut rs, mut re) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut ws, mut we) = (Vec::new(), Vec::new());
        let mut base = 0i64;
        for (i, text) in texts.iter().enumerate() {
            let len = word_spans(text.as_ref(), base, &mut ws, &mut we);
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            ensure_data(
                ts[a..b]
                    .iter()
                    .zip(&te[a..b])
                    .all(|(&s, &e)| 0 <= s && e <= len),
                || {
                    format!(
                        "sentence {i}: a token span lies outside its text (0..{len} characters)"
                    )
                },
            )?;
            rs.extend(ts[a..b].iter().map(|s| s + base));
            re.extend(te[a..b].iter().map(|e| e + base));
            base += len + 1;
        }
        self.update(ids, (&rs, &re), (&ws, &we), offsets)
    }

    /// Count `ids`, all below `max`.
    fn count_ids(&mut self, ids: &[u32], max: usize) {
        if max > self.counts.len() {
            self.counts.resize(max, 0);
        }
        if ids.len() < PAR_MIN {
            for &i in ids {
                self.counts[i as usize] += 1;
            }
            return;
        }
        let v = self.counts.len();
        let local = ids
            .par_chunks(PAR_MIN)
            .fold(
                || vec![0u64; v],
                |mut acc, c| {
                    for &i in c {
                        acc[i as usize] += 1;
                    }
                    acc
                },
            )
            .reduce(
                || vec![0u64; v],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        self.counts
            .iter_mut()
            .zip(&local)
            .for_each(|(x, y)| *x += y);
    }

    /// Assign each token to the last word it overlaps (two sorted sweeps).
    fn count_words(&mut self, (ts, te): (&[i64], &[i64]), (ws, we): (&[i64], &[i64])) {
        let mut per_word = vec![0u32; ws.len()];
        let mut w = 0usize; // number of words starting before the token's end
        for (&s, &e) in ts.iter().zip(te) {
            while w < ws.len() && ws[w] < e.max(s.saturating_add(1)) {
                w += 1;
            }
            if w > 0 && we[w - 1] > s {
                per_word[w - 1] += 1;
            }
        }
        self.words += ws.len() as u64;
        self.word_tokens += per_word.iter().map(|&c| c as u64).sum::<u64>();
        self.single_token_words += per_word.iter().filter(|&&c| c == 1).count() as u64;
    }

    /// Merge another accumulator of the same language (e.g. from another worker).
    pub fn merge(&mut self, other: &TokenCounts) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.tokens += other.tokens;
        self.words += other.words;
        self.word_tokens += other.word_tokens;
        self.single_token_words += other.single_token_words;
        self.sentence_tokens
            .extend_from_slice(&other.sentence_tokens);
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
    pub fn words(&self) -> u64 {
        self.words
    }
    pub fn sentences(&self) -> usize {
        self.sentence_tokens.len()
    }
    pub fn sentence_tokens(&self) -> &[u32] {
        &self.sentence_tokens
    }
    /// Distinct token types seen.
    pub fn types(&self) -> usize {
        self.counts.par_iter().filter(|&&c| c > 0).count()
    }
    /// Tokens (inside words) per word.
    pub fn fertility(&self) -> f64 {
        self.word_tokens as f64 / self.words as f64
    }
    /// Share of words that are exactly one token.
    pub fn single_token_rate(&self) -> f64 {
        self.single_token_words as f64 / self.words as f64
    }

    /// The overlap statistics of `self` (target) against `reference`.
    pub fn overlap(&self, reference: &TokenCounts) -> Result<Overlap> {
        ensure_data(self.tokens > 0 && reference.tokens > 0, || {
            "no tokens counted for the target or the reference: pass non-empty texts".into()
        })?;
        let (nt, nr) = (self.tokens as f64, reference.tokens as f64);
        let v = self.counts.len().max(reference.counts.len());
        let get = |c: &[u64], i: usize| c.get(i).copied().unwrap_or(0);
        #[derive(Default, Clone, Copy)]
        struct Acc {
            inter: u64,
            union: u64,
            weighted: f64,
            js: f64,
            covered: u64,
        }
        let acc = (0..v)
            .into_par_iter()
            .with_min_len(4096)
            .fold(Acc::default, |mut a, i| {
                let (t, r) = (get(&self.counts, i), get(&reference.counts, i));
                if t == 0 && r == 0 {
                    return a;
                }
                a.union += 1;
                let (p, q) = (t as f64 / nt, r as f64 / nr);
                let m = 0.5 * (p + q);
                if t > 0 {
                    a.js += 0.5 * p * (p / m).log2();
                }
                if r > 0 {
                    a.js += 0.5 * q * (q / m).log2();
                    a.covered += t;
                }
                if t > 0 && r > 0 {
                    a.inter += 1;
                    a.weighted += p.min(q);
                }
                a
            })
            .reduce(Acc::default, |a, b| Acc {
                inter: a.inter + b.inter,
                union: a.union + b.union,
                weighted: a.weighted + b.weighted,
                js: a.js + b.js,
                covered: a.covered + b.covered,
            });
        Ok(Overlap {
            jaccard: acc.inter as f64 / acc.union as f64,
            weighted: acc.weighted,
            js_divergence: acc.js.clamp(0.0, 1.0),
            coverage: acc.covered as f64 / nt,
            parity: parity(&self.sentence_tokens, &reference.sentence_tokens),
        })
    }
}

/// How much of the target's items (roots, n-grams; one list per sentence)
/// the reference has: the pooled share of target items found anywhere in the
/// reference, and — when both have the same number of sentences (parallel
/// text) — the mean over sentence pairs of the share found in the paired
/// sentence (NaN otherwise, or when no sentence has items). Pooled share is
/// NaN when the target has no items.
pub fn containment<S: AsRef<str> + Sync>(target: &[Vec<S>], reference: &[Vec<S>]) -> (f64, f64) {
    use std::collections::HashSet;
    let all: HashSet<&str> = reference.iter().flatten().map(|s| s.as_ref()).collect();
    let (hit, n) = target
        .par_iter()
        .map(|sent| {
            (
                sent.iter().filter(|s| all.contains(s.as_ref())).count(),
                sent.len(),
            )
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let pooled = if n == 0 {
        f64::NAN
    } else {
        hit as f64 / n as f64
    };
    if target.len() != reference.len() {
        return (pooled, f64::NAN);
    }
    let (sum, pairs) = target
        .par_iter()
        .zip(reference)
        .filter(|(t, _)| !t.is_empty())
        .map(|(t, r)| {
            let r: HashSet<&str> = r.iter().map(|s| s.as_ref()).collect();
            (
                t.iter().filter(|s| r.contains(s.as_ref())).count() as f64 / t.len() as f64,
                1usize,
            )
        })
        .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    (
        pooled,
        if pairs == 0 {
            f64::NAN
        } else {
            sum / pairs as f64
        },
    )
}

/// Mean per-sentence token ratio over aligned sentences where both have tokens.
fn parity(target: &[u32], reference: &[u32]) -> f64 {
    if target.len() != reference.len() {
        return f64::NAN;
    }
    let (sum, n) = target
        .iter()
        .zip(reference)
        .filter(|(&t, &r)| t > 0 && r > 0)
        .fold((0.0, 0usize), |(s, n), (&t, &r)| {
            (s + t as f64 / r as f64, n + 1)
        });
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

fn check_offsets(offsets: &[i64], n: usize) -> Result<()> {
    ensure_shape(
        !offsets.is_empty()
            && offsets[0] == 0
            && *offsets.last().unwrap() == n as i64
            && offsets.windows(2).all(|w| w[0] <= w[1]),
        || format!("sentence offsets must rise from 0 to the number of tokens ({n})"),
    )
}

/// A word character: a letter, combining mark or number (Unicode general
/// categories L, M, N; the regex `[\p{L}\p{M}\p{N}]`).
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    // Alphabetic is L, Nl and Other_Alphabetic; the latter's only members outside
    // M are the enclosed letters (category So)
    let enclosed = matches!(c as u32, 0x24B6..=0x24E9 | 0x1F130..=0x1F149 | 0x1F150..=0x1F169 | 0x1F170..=0x1F189);
    (c.is_alphabetic() && !enclosed) || c.is_numeric() || is_combining_mark(c)
}

/// Push the `[start, end)` character spans (offset by `base`) of the words of
/// `text`, maximal runs of [`is_word_char`]; returns its length in characters.
pub fn word_spans(text: &str, base: i64, starts: &mut Vec<i64>, ends: &mut Vec<i64>) -> i64 {
    let mut open = None;
    let mut i = base;
    for c in text.chars() {
        match (is_word_char(c), open) {
            (true, None) => open = Some(i),
            (false, Some(s)) => {
                starts.push(s);
                ends.push(i);
                open = None;
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(s) = open {
        starts.push(s);
        ends.push(i);
    }
    i - base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ids: &[u32], sents: &[i64]) -> TokenCounts {
        let mut c = TokenCounts::new(4).unwrap();
        let s: Vec<i64> = (0..ids.len() as i64).collect();
        let e: Vec<i64> = s.iter().map(|x| x + 1).collect();
        c.update(ids, (&s, &e), (&s, &e), sents).unwrap();
        c
    }

    #[test]
    fn identical_distributions() {
        let a = feed(&[0, 1, 1, 2], &[0, 2, 4]);
        let o = a.overlap(&a).unwrap();
        assert_eq!(o.jaccard, 1.0);
        assert!((o.weighted - 1.0).abs() < 1e-12);
        assert!(o.js_divergence.abs() < 1e-12);
        assert_eq!(o.coverage, 1.0);
        assert_eq!(o.parity, 1.0);
        assert_eq!(a.fertility(), 1.0);
    }

    #[test]
    fn disjoint_and_growth() {
        let a = feed(&[0, 1], &[0, 2]);
        let b = feed(&[7, 9, 9], &[0, 1, 3]);
        let o = b.overlap(&a).unwrap();
        assert_eq!((o.jaccard, o.weighted, o.coverage), (0.0, 0.0, 0.0));
        assert!((o.js_divergence - 1.0).abs() < 1e-12);
        assert!(o.parity.is_nan());
    }

    #[test]
    fn containment_pooled_and_aligned() {
        let t = vec![vec!["a", "b"], vec!["c"]];
        let r = vec![vec!["a"], vec!["b"]];
        let (pooled, aligned) = containment(&t, &r);
        assert!((pooled - 2.0 / 3.0).abs() < 1e-12);
        assert!((aligned - 0.25).abs() < 1e-12);
        assert!(containment(&t, &r[..1]).1.is_nan());
    }

    #[test]
    fn words_and_tokens() {
        // text "ab cd": tokens "a","b"," c","d" → word0 has 2, word1 has 2
        let mut c = TokenCounts::new(0).unwrap();
        c.update(
            &[1, 2, 3, 4],
            (&[0, 1, 2, 4], &[1, 2, 4, 5]),
            (&[0, 3], &[2, 5]),
            &[0, 4],
        )
        .unwrap();
        assert_eq!(c.fertility(), 2.0);
        assert_eq!(c.single_token_rate(), 0.0);
        assert!(c.update(&[1], (&[0], &[1]), (&[], &[]), &[0, 2]).is_err());
    }

    #[test]
    fn texts_find_words_and_rebase_spans() {
        // "ab cd" and "é!": tokens "a","b"," c","d" | "é","!" → words ab, cd, é
        let mut c = TokenCounts::new(0).unwrap();
        let texts = ["ab cd", "e\u{301}!"];
        let (s, e) = ([0, 1, 2, 4, 0, 2], [1, 2, 4, 5, 2, 3]);
        c.update_texts(&texts, &[1, 2, 3, 4, 5, 6], (&s, &e), &[0, 4, 6])
            .unwrap();
        assert_eq!((c.words(), c.sentences(), c.tokens()), (3, 2, 6));
        assert!((c.fertility() - 5.0 / 3.0).abs() < 1e-12);
        assert!((c.single_token_rate() - 1.0 / 3.0).abs() < 1e-12);
        let bad = c.update_texts(&["ab"], &[1], (&[0], &[3]), &[0, 1]);
        assert!(matches!(bad, Err(Error::Data(_))));
        assert!(c
            .update_texts(&["ab"], &[1], (&[0], &[1]), &[0, 1, 1])
            .is_err());
    }
}
