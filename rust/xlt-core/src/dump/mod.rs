//! The one reader of xlt dump arrays on disk: rows of a C-ordered array
//! chunked along its first dimension only, read straight from its zarr chunk
//! files (see [`layout`] for the byte layouts: raw or zstd chunks, plain or
//! sharded, with crc32c checksums). Each file is memory-mapped (page-cache
//! pages, no copy), checked and, for zstd, decoded (chunks in parallel) on a
//! helper thread while the caller works on the previous file; at most two
//! files are held at a time, so memory is flat in the dump's size. Python's
//! `xlt.dumps` lists the files from zarr's metadata and says which layout
//! they have; neurons, routing and similarity read dumps through here.
mod layout;

use std::ops::Range;
use std::path::PathBuf;

use crate::error::{ensure_shape, Error, Result};
pub use layout::{chunk_payloads, Codec, IndexAt, Layout};
use layout::{decode_into, map, Mapped};

/// Chunk files of one array: file `i` of `paths` holds rows
/// `first_row + i * file_rows ..` (the last file may hold fewer).
#[derive(Clone, Debug)]
pub struct ArrayFiles {
    pub paths: Vec<PathBuf>,
    /// The array's number of the first row of the first file (for messages).
    pub first_row: usize,
    /// Rows per file (the shard, or the chunk when not sharded).
    pub file_rows: usize,
    /// Bytes per row (the product of the other dimensions × item size).
    pub row_bytes: usize,
    /// Sharded files: rows per inner chunk and where the index is.
    pub shard: Option<(usize, IndexAt)>,
    pub codec: Codec,
    /// Each stored chunk is followed by its crc32c.
    pub checksum: bool,
    /// What a row is, for messages ("tokens", "items").
    pub rows_are: &'static str,
}

/// One file's chunks, decoded: `chunk(j)` holds rows `first + j * chunk_rows ..`.
pub struct FileChunks {
    bytes: Mapped,
    /// Raw chunks: their ranges in `bytes`.
    ranges: Vec<Range<usize>>,
    /// zstd chunks: their decoded values.
    decoded: Vec<Vec<u8>>,
    /// Row (relative to `first_row`) of the first chunk held.
    pub first: usize,
    /// The file's number in `paths`.
    pub index: usize,
}

impl FileChunks {
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of the `j`-th chunk held (a whole chunk, fill rows included).
    pub fn chunk(&self, j: usize) -> &[u8] {
        match self.decoded.get(j) {
            Some(d) => d,
            None => &self.bytes[self.ranges[j].clone()],
        }
    }
}

impl ArrayFiles {
    /// Rows per inner chunk, checked against the file size and `row_bytes`.
    fn chunk_rows(&self) -> Result<usize> {
        let (per_file, row) = (self.file_rows, self.row_bytes);
        let per_chunk = self.shard.map_or(per_file, |s| s.0);
        ensure_shape(
            per_file > 0 && per_chunk > 0 && per_file % per_chunk == 0,
            || {
                format!(
                    "{per_file} rows per file must be a positive multiple of {per_chunk} rows per chunk"
                )
            },
        )?;
        ensure_shape(
            per_chunk
                .checked_mul(row)
                .is_some_and(|b| b < isize::MAX as usize),
            || format!("{per_chunk} rows per chunk of {row} bytes each overflow"),
        )?;
        Ok(per_chunk)
    }

    /// A `Data` error about rows `rows` (relative to `first_row`) of file `i`.
    pub fn fail(&self, i: usize, rows: Range<usize>, what: &str) -> Error {
        let (a, b) = (self.first_row + rows.start, self.first_row + rows.end);
        Error::Data(format!(
            "chunk {} ({} {a}:{b}): {what}; the dump chunk is corrupt or truncated — recapture those items",
            self.paths[i].display(),
            self.rows_are
        ))
    }

    /// Call `f` with the chunks of every file that holds rows `rows`
    /// (relative to `first_row`), in order: the chunks overlapping `rows`,
    /// each checked and decoded. A missing, short, damaged or undecodable
    /// file is a `Data` error naming it and its rows; `f`'s errors stop the
    /// pass and are returned as they are.
    pub fn for_each_file(
        &self,
        rows: Range<usize>,
        mut f: impl FnMut(&FileChunks) -> Result<()>,
    ) -> Result<()> {
        let per_chunk = self.chunk_rows()?;
        if rows.is_empty() {
            return Ok(());
        }
        let per_file = self.file_rows;
        let files = rows.start / per_file..rows.end.div_ceil(per_file);
        ensure_shape(self.paths.len() >= files.end, || {
            format!(
                "rows up to {} need {} chunk files of {per_file} rows, got {}",
                rows.end,
                files.end,
                self.paths.len()
            )
        })?;
        let layout = Layout {
            chunk_bytes: per_chunk * self.row_bytes,
            chunks: per_file / per_chunk,
            shard: self.shard.map(|s| s.1),
            checksum: self.checksum,
            codec: self.codec,
        };
        // rows of file i that are asked for, and the chunks holding them
        let span = |i: usize| {
            let r = rows.start.max(i * per_file)..rows.end.min((i + 1) * per_file);
            let c =
                (r.start - i * per_file) / per_chunk..(r.end - i * per_file).div_ceil(per_chunk);
            (r, c)
        };
        std::thread::scope(|s| {
            let (ready, loaded) = std::sync::mpsc::sync_channel(1);
            let (done, used) = std::sync::mpsc::channel::<FileChunks>();
            let files2 = files.clone();
            s.spawn(move || {
                for (n, i) in files2.enumerate() {
                    // Two files held at most (peak RSS flat in the dump
                    // size): file n waits until file n - 2 comes back.
                    if n >= 2 && used.recv().map(drop).is_err() {
                        break;
                    }
                    let (r, c) = span(i);
                    let loaded =
                        self.load(i, &layout, c.clone(), i * per_file + c.start * per_chunk);
                    let loaded = loaded.map_err(|what| self.fail(i, r, &what));
                    if ready.send(loaded).is_err() {
                        break;
                    }
                }
                drop(ready); // the reader's loop ends with the files
                used.iter().for_each(drop); // unmap the rest as they come back
            });
            for file in loaded {
                let file = file?;
                f(&file)?;
                let _ = done.send(file);
            }
            Ok(())
        })
    }

    /// Map file `i`, check chunks `c` and decode them (zstd, in parallel).
    fn load(
        &self,
        i: usize,
        layout: &Layout,
        c: Range<usize>,
        first: usize,
    ) -> std::result::Result<FileChunks, String> {
        let bytes = map(&self.paths[i]).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "the file is missing".to_string(),
            _ => format!("cannot read it ({e})"),
        })?;
        let c0 = c.start;
        let ranges = chunk_payloads(&bytes, layout, c)?;
        let decoded = match self.codec {
            Codec::Raw => Vec::new(),
            Codec::Zstd => {
                let decode = |j: usize, r: &Range<usize>| {
                    let mut out = vec![0u8; layout.chunk_bytes];
                    decode_into(Codec::Zstd, &bytes[r.clone()], &mut out).map_err(
                        |e| match layout.shard {
                            Some(_) => format!("inner chunk {}: {e}", c0 + j),
                            None => e,
                        },
                    )?;
                    Ok::<_, String>(out)
                };
                // Threads of our own, not rayon's pool: the caller may be a
                // rayon worker blocked on this very file (a pool of one
                // thread would never run the decoding).
                let per = ranges.len().div_ceil(rayon::current_num_threads()).max(1);
                let decode = &decode;
                let parts = std::thread::scope(|s| {
                    let handles: Vec<_> = (ranges.chunks(per).enumerate())
                        .map(|(p, part)| {
                            s.spawn(move || {
                                (part.iter().enumerate())
                                    .map(|(q, r)| decode(p * per + q, r))
                                    .collect::<std::result::Result<Vec<_>, String>>()
                            })
                        })
                        .collect();
                    (handles.into_iter())
                        .map(|h| h.join().expect("zstd decoding thread"))
                        .collect::<std::result::Result<Vec<_>, String>>()
                })?;
                parts.into_iter().flatten().collect()
            }
        };
        Ok(FileChunks {
            bytes,
            ranges,
            decoded,
            first,
            index: i,
        })
    }

    /// Rows `rows` (relative to `first_row`) into `out`, `row_bytes` each.
    pub fn read_into(&self, rows: Range<usize>, out: &mut [u8]) -> Result<()> {
        let rb = self.row_bytes;
        ensure_shape(out.len() == rows.len() * rb, || {
            format!(
                "{} bytes to read {} rows of {rb} bytes into",
                out.len(),
                rows.len()
            )
        })?;
        let per_chunk = self.chunk_rows()?;
        self.for_each_file(rows.clone(), |file| {
            for j in 0..file.len() {
                let c0 = file.first + j * per_chunk;
                let (a, b) = (c0.max(rows.start), (c0 + per_chunk).min(rows.end));
                if a < b {
                    out[(a - rows.start) * rb..(b - rows.start) * rb]
                        .copy_from_slice(&file.chunk(j)[(a - c0) * rb..(b - c0) * rb]);
                }
            }
            Ok(())
        })
    }
}

/// Element types that rows are read as: every bit pattern is a value.
///
/// # Safety
/// Implementors must be plain data (no padding, no invalid bit patterns).
pub unsafe trait Plain: Copy + Default + Send {}
// SAFETY: integers and IEEE floats are plain data.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for i16 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for i32 {}
// SAFETY: as above.
unsafe impl Plain for i64 {}
// SAFETY: as above.
unsafe impl Plain for f32 {}
// SAFETY: as above.
unsafe impl Plain for half::f16 {}

impl ArrayFiles {
    /// Rows `rows` as values of `T` (little-endian on disk: callers check the
    /// host is little-endian before choosing this reader).
    pub fn read_vec<T: Plain>(&self, rows: Range<usize>) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        ensure_shape(self.row_bytes.is_multiple_of(size), || {
            format!(
                "rows of {} bytes do not hold whole {size}-byte values",
                self.row_bytes
            )
        })?;
        let mut v = vec![T::default(); rows.len() * (self.row_bytes / size)];
        // SAFETY: `T: Plain`, so any bytes written are a valid `T`; the byte
        // view covers exactly `v`'s initialised values.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * size) };
        self.read_into(rows, bytes)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
