//! Hidden states read from a dump's chunk files through the one dump reader
//! ([`crate::dump`]): raw chunks go to the kernel straight from the mapped
//! page-cache pages, zstd chunks from their decoded buffers, one file at a
//! time while the reader prepares the next.
use std::path::PathBuf;

use super::kernel::{Dtype, Row};
use super::NeuronStats;
pub use crate::dump::IndexAt;
use crate::dump::{ArrayFiles, Codec};
use crate::error::{ensure_shape, Result};

/// Raw chunk files of a C-ordered (token, layer, hidden) array chunked along
/// `token` only: file `i` of `paths` holds tokens `first_token + i * file_tokens ..`.
#[derive(Clone, Debug)]
pub struct ChunkFiles {
    pub dtype: Dtype,
    pub paths: Vec<PathBuf>,
    /// The array's number of the first token of the first file (for messages).
    pub first_token: usize,
    /// Tokens per file (the shard, or the chunk when not sharded).
    pub file_tokens: usize,
    /// Sharded files: tokens per inner chunk and where the index is.
    pub shard: Option<(usize, IndexAt)>,
    /// Each chunk's payload is followed by its crc32c (zarr codec `crc32c`).
    pub checksum: bool,
}

impl NeuronStats {
    /// Add the first `group.len()` tokens stored raw in `files`. A missing,
    /// short or inconsistent file is a `Data` error naming the file and its tokens.
    pub fn update_files(&mut self, files: &ChunkFiles, group: &[i32]) -> Result<()> {
        let array = ArrayFiles {
            paths: files.paths.clone(),
            first_row: files.first_token,
            file_rows: files.file_tokens,
            row_bytes: self.layers * self.hidden * files.dtype.size(),
            shard: files.shard,
            codec: Codec::Raw,
            checksum: files.checksum,
            rows_are: "tokens",
        };
        self.update_array(files.dtype, &array, group)
    }

    /// Add the first `group.len()` rows (tokens) of the (token, layer,
    /// hidden) array in `files`, stored as `dtype`, in any layout the dump
    /// reader reads.
    pub fn update_array(&mut self, dtype: Dtype, files: &ArrayFiles, group: &[i32]) -> Result<()> {
        let row = self.layers * self.hidden * dtype.size();
        ensure_shape(files.row_bytes == row, || {
            format!(
                "chunk rows of {} bytes, but {} layers × {} units of {dtype:?} take {row}",
                files.row_bytes, self.layers, self.hidden
            )
        })?;
        let per_chunk = files.shard.map_or(files.file_rows, |s| s.0);
        let n = group.len();
        files.for_each_file(0..n, |file| {
            let (t0, t1) = (file.first, (file.first + file.len() * per_chunk).min(n));
            let rows: Vec<Row> = (t0..t1)
                .map(|t| {
                    let (j, r) = ((t - t0) / per_chunk, (t - t0) % per_chunk);
                    Row(file.chunk(j)[r * row..].as_ptr())
                })
                .collect();
            // SAFETY: every row lies inside a whole chunk (checked by the
            // reader) of `file`, which outlives the call.
            unsafe { self.update_rows(dtype, &rows, &group[t0..t1], files.first_row + t0) }
                .map_err(|e| files.fail(file.index, t0..t1, &e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array3};

    use crate::neurons::Block3;
    use crate::Error;

    /// A shard of `chunks` inner chunks (in reverse order on disk, each
    /// followed by its crc32c when `checksum`) with its index at the end.
    fn shard(x: &[u16], chunks: usize, chunk_bytes: usize, checksum: bool) -> Vec<u8> {
        let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        let mut index = vec![0u8; 16 * chunks];
        for j in (0..chunks).rev() {
            let part = raw.get(j * chunk_bytes..(j + 1) * chunk_bytes);
            let (off, nb) = match part {
                Some(p) => {
                    let off = out.len() as u64;
                    out.extend_from_slice(p);
                    if checksum {
                        out.extend_from_slice(&crc32c::crc32c(p).to_le_bytes());
                    }
                    (off, out.len() as u64 - off)
                }
                None => (u64::MAX, u64::MAX),
            };
            index[16 * j..16 * j + 8].copy_from_slice(&off.to_le_bytes());
            index[16 * j + 8..16 * j + 16].copy_from_slice(&nb.to_le_bytes());
        }
        let crc = crc32c::crc32c(&index);
        out.extend_from_slice(&index);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn shards_read_like_memory_and_damage_is_named(checksum: bool) {
        let (n, l, h, per_chunk, chunks) = (40, 2, 48, 4, 8);
        let x = Array3::from_shape_fn((n, l, h), |(t, li, hi)| {
            ((((t * 31 + li * 7 + hi) % 23) as f32 - 11.0).to_bits() >> 16) as u16
        });
        let group = Array1::from_shape_fn(n, |t| (t / 5 % 3) as i32 - (t == 7) as i32);
        let dir = std::env::temp_dir().join(format!(
            "xlt-neurons-files-{}-{checksum}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let flat = x.as_slice().unwrap();
        let per_file = per_chunk * chunks;
        let chunk_bytes = per_chunk * l * h * 2;
        let paths: Vec<PathBuf> = (0..n.div_ceil(per_file))
            .map(|i| {
                let p = dir.join(format!("{i}"));
                let end = ((i + 1) * per_file).min(n);
                std::fs::write(
                    &p,
                    shard(
                        &flat[i * per_file * l * h..end * l * h],
                        chunks,
                        chunk_bytes,
                        checksum,
                    ),
                )
                .unwrap();
                p
            })
            .collect();
        let files = ChunkFiles {
            dtype: Dtype::BF16,
            paths: paths.clone(),
            first_token: 0,
            file_tokens: per_file,
            shard: Some((per_chunk, IndexAt::End)),
            checksum,
        };
        let mut got = NeuronStats::new(3, l, h);
        got.update_files(&files, group.as_slice().unwrap()).unwrap();
        let mut want = NeuronStats::new(3, l, h);
        want.update(Block3::BF16(x.view()), group.view()).unwrap();
        assert_eq!(got, want);

        let bytes = std::fs::read(&paths[1]).unwrap();
        if checksum {
            // one flipped value bit in inner chunk 1 (stored first: chunks are reversed)
            let mut flipped = bytes.clone();
            flipped[5] ^= 1;
            std::fs::write(&paths[1], &flipped).unwrap();
            let err = NeuronStats::new(3, l, h).update_files(&files, group.as_slice().unwrap());
            assert!(
                matches!(&err, Err(Error::Data(m)) if m.contains("tokens 32:40") && m.contains("inner chunk 1 fails its crc32c")),
                "{err:?}"
            );
        }
        std::fs::write(&paths[1], &bytes[..bytes.len() - 3]).unwrap();
        let err = NeuronStats::new(3, l, h).update_files(&files, group.as_slice().unwrap());
        assert!(
            matches!(&err, Err(Error::Data(m)) if m.contains("tokens 32:40") && m.contains("checksum")),
            "{err:?}"
        );
        std::fs::remove_file(&paths[1]).unwrap();
        let err = NeuronStats::new(3, l, h).update_files(&files, group.as_slice().unwrap());
        assert!(
            matches!(&err, Err(Error::Data(m)) if m.contains("/1 (tokens 32:40)")),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn raw_shards_read_like_memory_and_damage_is_named() {
        shards_read_like_memory_and_damage_is_named(false);
    }

    #[test]
    fn checksummed_shards_read_like_memory_and_damage_is_named() {
        shards_read_like_memory_and_damage_is_named(true);
    }

    #[test]
    fn zero_tokens_per_file_is_a_shape_error() {
        // found by the chunk_files fuzz target: a divide by zero before the fix
        for shard in [None, Some((4, IndexAt::End))] {
            let files = ChunkFiles {
                dtype: Dtype::BF16,
                paths: vec![PathBuf::from("/nonexistent")],
                first_token: 0,
                file_tokens: 0,
                shard,
                checksum: false,
            };
            let err = NeuronStats::new(1, 1, 4).update_files(&files, &[0, 0]);
            assert!(
                matches!(&err, Err(Error::Shape(m)) if m.contains("positive")),
                "{err:?}"
            );
        }
    }
}
