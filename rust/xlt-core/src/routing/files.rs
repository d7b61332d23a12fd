//! Routing streamed from a dump's chunk files through the dump reader
//! ([`crate::dump`]): blocks of tokens of `routing_idx`, `routing_weight`
//! (and `router_prob`) are read, with each token's group and parallel key
//! looked up from its item row (`token_item`), and counted while the next
//! block is read on another thread. Two blocks are held at a time, so memory
//! is flat in the dump's size.
use std::ops::Range;

use half::f16;

use super::{Chunk, Indices, RoutingAccumulator, Values};
use crate::dump::ArrayFiles;
use crate::error::{ensure_shape, Error, Result};

/// How an array's values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    I16,
    I32,
    F16,
    F32,
    /// bfloat16 bit patterns.
    BF16,
}

impl Stored {
    fn size(self) -> usize {
        match self {
            Stored::I32 | Stored::F32 => 4,
            _ => 2,
        }
    }
}

impl std::str::FromStr for Stored {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "int16" => Stored::I16,
            "int32" => Stored::I32,
            "float16" => Stored::F16,
            "float32" => Stored::F32,
            "bfloat16" => Stored::BF16,
            other => {
                return Err(Error::Config(format!(
                    "dtype {other:?} is not one routing reads; expected int16, int32, float16, float32 or bfloat16"
                )))
            }
        })
    }
}

/// The routing arrays of a dump on disk and how tokens map to groups.
#[derive(Clone, Debug)]
pub struct RoutingFiles {
    /// (token, moe_layer, k) int16 or int32.
    pub idx: (ArrayFiles, Stored),
    /// (token, moe_layer, k) float16, float32 or bfloat16.
    pub weight: (ArrayFiles, Stored),
    /// (token, moe_layer, expert), as `weight`.
    pub prob: Option<(ArrayFiles, Stored)>,
    /// (token) int32 or int64: each token's item row.
    pub token_item: ArrayFiles,
    /// Group id of each item row (negative: its tokens are left out).
    pub item_group: Vec<i32>,
    /// Parallel key of each item row (when the accumulator tracks items).
    pub item_key: Option<Vec<i64>>,
    /// Tokens to read, from the first.
    pub tokens: usize,
    /// Tokens per block.
    pub block: usize,
}

enum Buf {
    I16(Vec<i16>),
    I32(Vec<i32>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    BF16(Vec<u16>),
}

impl Buf {
    fn read(files: &ArrayFiles, s: Stored, rows: Range<usize>) -> Result<Buf> {
        Ok(match s {
            Stored::I16 => Buf::I16(files.read_vec(rows)?),
            Stored::I32 => Buf::I32(files.read_vec(rows)?),
            Stored::F16 => Buf::F16(files.read_vec(rows)?),
            Stored::F32 => Buf::F32(files.read_vec(rows)?),
            Stored::BF16 => Buf::BF16(files.read_vec(rows)?),
        })
    }

    fn indices(&self) -> Indices<'_> {
        match self {
            Buf::I16(v) => Indices::I16(v),
            Buf::I32(v) => Indices::I32(v),
            _ => unreachable!("checked in update_files"),
        }
    }

    fn values(&self) -> Values<'_> {
        match self {
            Buf::F16(v) => Values::F16(v),
            Buf::F32(v) => Values::F32(v),
            Buf::BF16(v) => Values::BF16(v),
            _ => unreachable!("checked in update_files"),
        }
    }
}

/// One block of tokens, read.
struct Block {
    idx: Buf,
    weight: Buf,
    prob: Option<Buf>,
    group: Vec<i32>,
    item: Option<Vec<i64>>,
}

impl RoutingFiles {
    fn check(&self, l: usize, k: usize, e: usize, items: bool) -> Result<()> {
        let ok =
            |(f, s): &(ArrayFiles, Stored), ints: bool, width: usize, name: &str| {
                let kind = matches!(s, Stored::I16 | Stored::I32) == ints;
                ensure_shape(kind && f.row_bytes == width * s.size(), || {
                    format!(
                    "{name} is stored as {s:?} in rows of {} bytes; expected {} of {width} values",
                    f.row_bytes,
                    if ints { "int16 or int32" } else { "float16, float32 or bfloat16" }
                )
                })
            };
        ok(&self.idx, true, l * k, "routing_idx")?;
        ok(&self.weight, false, l * k, "routing_weight")?;
        if let Some(p) = &self.prob {
            ok(p, false, l * e, "router_prob")?;
        }
        ensure_shape(matches!(self.token_item.row_bytes, 4 | 8), || {
            "token_item must be stored as int32 or int64".into()
        })?;
        match (&self.item_key, items) {
            (Some(key), true) => ensure_shape(key.len() == self.item_group.len(), || {
                format!(
                    "{} item keys for {} item rows",
                    key.len(),
                    self.item_group.len()
                )
            }),
            (None, false) => Ok(()),
            _ => Err(Error::Config(
                "item keys are needed exactly when the accumulator tracks items".into(),
            )),
        }
    }

    fn read(&self, rows: Range<usize>) -> Result<Block> {
        let rows_of = |(f, s): &(ArrayFiles, Stored)| Buf::read(f, *s, rows.clone());
        let item_rows: Vec<i64> = match self.token_item.row_bytes {
            4 => (self.token_item.read_vec::<i32>(rows.clone())?.into_iter())
                .map(i64::from)
                .collect(),
            _ => self.token_item.read_vec(rows.clone())?,
        };
        let n = self.item_group.len();
        if let Some(t) = item_rows.iter().position(|&r| r < 0 || r as usize >= n) {
            return Err(Error::Data(format!(
                "token_item holds {} at token {}, not an item row in 0..{}; the dump is damaged",
                item_rows[t],
                rows.start + t,
                n as i64 - 1
            )));
        }
        Ok(Block {
            idx: rows_of(&self.idx)?,
            weight: rows_of(&self.weight)?,
            prob: self.prob.as_ref().map(rows_of).transpose()?,
            group: item_rows
                .iter()
                .map(|&r| self.item_group[r as usize])
                .collect(),
            item: self
                .item_key
                .as_ref()
                .map(|key| item_rows.iter().map(|&r| key[r as usize]).collect()),
        })
    }
}

impl RoutingAccumulator {
    /// Add the first `files.tokens` tokens of a dump's routing arrays, block
    /// by block. Damaged files are `Data` errors naming the chunk file.
    pub fn update_files(&mut self, files: &RoutingFiles) -> Result<()> {
        self.check_usable()?;
        let (_, l, e, k) = self.dims();
        files.check(l, k, e, self.tracks_items())?;
        let (n, block) = (files.tokens, files.block.max(1));
        let mut next = Some(files.read(0..block.min(n)));
        for start in (0..n).step_by(block) {
            let cur = next.take().expect("read ahead")?;
            let after = start + block..(start + 2 * block).min(n);
            next = std::thread::scope(|s| {
                let ahead = (!after.is_empty()).then(|| s.spawn(|| files.read(after)));
                self.update(&Chunk {
                    idx: cur.idx.indices(),
                    weight: cur.weight.values(),
                    prob: cur.prob.as_ref().map(Buf::values),
                    group: &cur.group,
                    item: cur.item.as_deref(),
                })?;
                Ok::<_, Error>(ahead.map(|h| h.join().expect("reader thread")))
            })?;
        }
        Ok(())
    }
}
