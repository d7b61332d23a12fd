//! Hidden states read straight from a zarr array's chunk files, for the
//! layouts xlt's dump writer makes: raw little-endian values (codec `bytes`,
//! optionally followed by `crc32c`: a 4-byte checksum after each chunk's
//! payload), as plain chunk files or inside `sharding_indexed` shards whose
//! index is `bytes` + `crc32c`. Each file is memory-mapped (page-cache pages,
//! no copy) and checked by [`chunk_payloads`] — exact chunk sizes, index and
//! chunk checksums, chunk offsets inside the file — on a helper thread while
//! the kernel sums the previous file; its token rows then go to the kernel.
//! The caller (Python, from zarr's own metadata) lists the files and reads
//! any other codec through zarr instead.
use std::path::PathBuf;

use super::kernel::{Dtype, Row};
use super::NeuronStats;
use crate::error::{ensure_shape, Error, Result};

/// Where a shard keeps its chunk index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexAt {
    Start,
    End,
}

/// Chunk files of a C-ordered (token, layer, hidden) array chunked along
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
    /// Add the first `group.len()` tokens stored in `files`, one file at a
    /// time. A missing, short or inconsistent file is a `Data` error naming
    /// the file and its tokens.
    pub fn update_files(&mut self, files: &ChunkFiles, group: &[i32]) -> Result<()> {
        let row = self.layers * self.hidden * files.dtype.size();
        let (n, per_file) = (group.len(), files.file_tokens);
        let (per_chunk, at) = files.shard.unwrap_or((per_file, IndexAt::End));
        ensure_shape(
            per_file > 0 && per_chunk > 0 && per_file % per_chunk == 0,
            || {
                format!(
                    "{per_file} tokens per file must be a positive multiple of \
                     {per_chunk} tokens per chunk"
                )
            },
        )?;
        ensure_shape(
            per_chunk
                .checked_mul(row)
                .is_some_and(|b| b < isize::MAX as usize),
            || format!("{per_chunk} tokens per chunk of {row} bytes each overflow"),
        )?;
        let needed = n.div_ceil(per_file);
        ensure_shape(files.paths.len() >= needed, || {
            format!(
                "{n} tokens need {needed} chunk files of {per_file} tokens, got {}",
                files.paths.len()
            )
        })?;
        // One thread maps (and faults in) the next file, checks it and unmaps
        // the last while the kernel sums the current one: with 4 kB pages the
        // page-table work is ~30 % of the kernel's time, done serially before.
        let paths = &files.paths[..needed];
        let chunk_bytes = per_chunk * row;
        let (shard, checksum) = (files.shard.map(|_| at), files.checksum);
        std::thread::scope(|s| {
            let (ready, mapped) = std::sync::mpsc::sync_channel(1);
            let (done, used) = std::sync::mpsc::channel::<Mapped>();
            s.spawn(move || {
                for (i, path) in paths.iter().enumerate() {
                    // Two files mapped at most (peak RSS flat in the dump
                    // size): file i waits until file i - 2 comes back.
                    if i >= 2 && used.recv().map(drop).is_err() {
                        break;
                    }
                    let tokens = ((i + 1) * per_file).min(n) - i * per_file;
                    let checked = map(path).map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => "the file is missing".to_string(),
                        _ => format!("cannot read it ({e})"),
                    });
                    let checked = checked.and_then(|bytes| {
                        let layout = Layout {
                            chunk_bytes,
                            chunks: per_file / per_chunk,
                            shard,
                            checksum,
                        };
                        let offsets = chunk_payloads(&bytes, &layout, tokens.div_ceil(per_chunk))?;
                        Ok((bytes, offsets))
                    });
                    if ready.send(checked).is_err() {
                        break;
                    }
                }
                used.iter().for_each(drop); // unmap the rest as they come back
            });
            for (i, (path, checked)) in paths.iter().zip(mapped).enumerate() {
                let (t0, t1) = (i * per_file, ((i + 1) * per_file).min(n));
                let (a, b) = (files.first_token + t0, files.first_token + t1);
                let fail = |what: String| {
                    Error::Data(format!(
                        "chunk {} (tokens {a}:{b}): {what}; the dump chunk is corrupt or truncated — recapture those items",
                        path.display()
                    ))
                };
                let (bytes, offsets) = checked.map_err(fail)?;
                let rows: Vec<Row> = (0..t1 - t0)
                    .map(|t| Row(bytes[offsets[t / per_chunk] + (t % per_chunk) * row..].as_ptr()))
                    .collect();
                // SAFETY: every chunk lies inside the mapping (checked), which lives past the call.
                unsafe { self.update_rows(files.dtype, &rows, &group[t0..t1], a) }
                    .map_err(|e| fail(e.to_string()))?;
                let _ = done.send(bytes);
            }
            Ok(())
        })
    }
}

/// How a chunk file is laid out: chunks of `chunk_bytes` raw bytes each,
/// `chunks` of them per shard with the index at `shard` (`None`: the file is
/// one plain chunk), each followed by its crc32c when `checksum`.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub chunk_bytes: usize,
    pub chunks: usize,
    pub shard: Option<IndexAt>,
    pub checksum: bool,
}

/// Byte offsets of the payloads of the first `used` chunks in a chunk file's
/// `bytes`, checked: the file's size (plain chunk), the shard index's
/// checksum, each chunk present, of its exact size and inside the data part
/// of the file, and each chunk's own crc32c. The message says what is wrong.
/// A plain function over bytes: the reader's entry point for fuzzing.
pub fn chunk_payloads(
    bytes: &[u8],
    layout: &Layout,
    used: usize,
) -> std::result::Result<Vec<usize>, String> {
    let stored = layout.chunk_bytes + 4 * layout.checksum as usize;
    let offsets = match layout.shard {
        None if bytes.len() == stored => vec![0],
        None => {
            return Err(format!(
                "{} bytes where a chunk of raw values{} has {stored}",
                bytes.len(),
                if layout.checksum {
                    " and its checksum"
                } else {
                    ""
                }
            ))
        }
        Some(at) => chunk_offsets(bytes, layout.chunks, used, stored, at)?,
    };
    if layout.checksum {
        for (j, &off) in offsets.iter().enumerate() {
            let (payload, crc) = bytes[off..off + stored].split_at(layout.chunk_bytes);
            if crc32c::crc32c(payload).to_le_bytes() != crc {
                return Err(match layout.shard {
                    Some(_) => format!("inner chunk {j} fails its crc32c checksum"),
                    None => "its data fail their crc32c checksum".to_string(),
                });
            }
        }
    }
    Ok(offsets)
}

/// Byte offsets of the first `used` of a shard's `chunks` inner chunks,
/// checked: index checksum, each chunk present, `chunk_bytes` long (payload
/// and checksum) and inside the data part of the file.
fn chunk_offsets(
    bytes: &[u8],
    chunks: usize,
    used: usize,
    chunk_bytes: usize,
    at: IndexAt,
) -> std::result::Result<Vec<usize>, String> {
    let len = bytes.len();
    let Some(index_len) = chunks.checked_mul(16).and_then(|b| b.checked_add(4)) else {
        return Err(format!(
            "{chunks} chunks per shard is not a size a shard can have"
        ));
    };
    if len < index_len {
        return Err(format!(
            "{len} bytes, shorter than its {index_len}-byte shard index"
        ));
    }
    let (index, data) = match at {
        IndexAt::End => (&bytes[len - index_len..], 0..len - index_len),
        IndexAt::Start => (&bytes[..index_len], index_len..len),
    };
    let (entries, stored) = index.split_at(16 * chunks);
    if crc32c::crc32c(entries).to_le_bytes() != stored {
        return Err("its shard index fails its crc32c checksum".into());
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    (0..used)
        .map(|j| {
            let (off, nb) = (
                word(&entries[16 * j..16 * j + 8]),
                word(&entries[16 * j + 8..16 * j + 16]),
            );
            if (off, nb) == (u64::MAX, u64::MAX) {
                return Err(format!("inner chunk {j} is missing (reads as fill value)"));
            }
            if nb != chunk_bytes as u64 {
                return Err(format!(
                    "inner chunk {j} has {nb} bytes, its raw values need {chunk_bytes}"
                ));
            }
            match off.checked_add(nb) {
                Some(end) if off >= data.start as u64 && end <= data.end as u64 => Ok(off as usize),
                _ => Err(format!(
                    "inner chunk {j} ({off}+{nb}) lies outside the file's {len} bytes"
                )),
            }
        })
        .collect()
}

/// Map a whole file read-only, its pages faulted in at once (empty files
/// cannot be mapped: they read as no bytes). On Linux the mapping asks for
/// transparent huge pages: a file not yet cached is read into 2 MB folios
/// that later mappings take with one entry per 2 MB instead of 512 (page
/// tables cost ~30 % of the kernel's time with 4 kB entries).
fn map(path: &std::path::Path) -> std::io::Result<Mapped> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Mapped::Empty);
    }
    // SAFETY: a read-only mapping; the dump must not be truncated while it is
    // read (as with any reader).
    #[cfg(target_os = "linux")]
    let map = {
        use memmap2::Advice;
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        // Advisory: without them (older kernels) pages fault in as read.
        let _ = map.advise(Advice::HugePage);
        let _ = map.advise(Advice::PopulateRead);
        map
    };
    #[cfg(not(target_os = "linux"))]
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }?;
    Ok(Mapped::Map(map))
}

enum Mapped {
    Empty,
    Map(memmap2::Mmap),
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Empty => &[],
            Mapped::Map(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array3};

    use crate::neurons::Block3;

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

    #[test]
    fn plain_chunks_check_size_and_checksum() {
        let payload: Vec<u8> = (0..64u8).collect();
        let mut file = payload.clone();
        file.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        let layout = Layout {
            chunk_bytes: 64,
            chunks: 1,
            shard: None,
            checksum: true,
        };
        assert_eq!(chunk_payloads(&file, &layout, 1), Ok(vec![0]));
        file[3] ^= 0x40;
        assert_eq!(
            chunk_payloads(&file, &layout, 1),
            Err("its data fail their crc32c checksum".to_string())
        );
        let short = chunk_payloads(&file[..66], &layout, 1).unwrap_err();
        assert!(
            short.contains("66 bytes") && short.contains("68"),
            "{short}"
        );
        let huge = Layout {
            chunk_bytes: 1,
            chunks: usize::MAX / 8,
            shard: Some(IndexAt::End),
            checksum: false,
        };
        assert!(chunk_payloads(&file, &huge, 1)
            .unwrap_err()
            .contains("chunks per shard"));
    }
}
