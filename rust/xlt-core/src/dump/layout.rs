//! The byte layout of one chunk file of a zarr v3 array as xlt's dump writer
//! makes it: the chunk's values (codec `bytes`, little-endian), optionally
//! zstd-compressed, optionally followed by a 4-byte crc32c of what precedes
//! it; either one such chunk per file or many inside a `sharding_indexed`
//! shard whose index (16 bytes per chunk: offset, length) is `bytes` +
//! `crc32c`, at the start or the end of the file.
use std::ops::Range;

/// Where a shard keeps its chunk index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexAt {
    Start,
    End,
}

/// How a chunk's values are stored after the `bytes` codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// As they are: the stored chunk has exactly the chunk's byte size.
    Raw,
    /// One zstd frame that decodes to exactly the chunk's byte size.
    Zstd,
}

impl std::str::FromStr for Codec {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "raw" | "bytes" => Ok(Codec::Raw),
            "zstd" => Ok(Codec::Zstd),
            other => Err(crate::Error::Config(format!(
                "chunk codec {other:?} is not one xlt reads itself; use 'raw' or 'zstd'"
            ))),
        }
    }
}

impl std::str::FromStr for IndexAt {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "end" => Ok(IndexAt::End),
            "start" => Ok(IndexAt::Start),
            other => Err(crate::Error::Config(format!(
                "shard index location {other:?} is neither 'start' nor 'end'"
            ))),
        }
    }
}

/// How a chunk file is laid out: chunks of `chunk_bytes` decoded bytes each,
/// `chunks` of them per shard with the index at `shard` (`None`: the file is
/// one plain chunk), stored by `codec`, each followed by its crc32c when
/// `checksum`.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub chunk_bytes: usize,
    pub chunks: usize,
    pub shard: Option<IndexAt>,
    pub checksum: bool,
    pub codec: Codec,
}

/// Byte ranges of the stored payloads (checksum excluded) of chunks `want`
/// of a chunk file's `bytes`, checked: the file's size (plain chunk), the
/// shard index's checksum, each chunk present, of its exact size (raw) and
/// inside the data part of the file, and each chunk's own crc32c. The
/// message says what is wrong. A plain function over bytes: the reader's
/// entry point for fuzzing.
pub fn chunk_payloads(
    bytes: &[u8],
    layout: &Layout,
    want: Range<usize>,
) -> std::result::Result<Vec<Range<usize>>, String> {
    let crc = 4 * layout.checksum as usize;
    let raw = layout.codec == Codec::Raw;
    let stored = layout.chunk_bytes + crc;
    let chunks = match layout.shard {
        None if (raw && bytes.len() == stored) || (!raw && bytes.len() >= crc) => {
            std::iter::once(0..bytes.len()).collect()
        }
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
        Some(at) => chunk_offsets(bytes, layout, want.clone(), at)?,
    };
    let mut out = Vec::with_capacity(chunks.len());
    for (j, r) in want.zip(chunks) {
        let payload = &bytes[r.start..r.end - crc];
        if layout.checksum && crc32c::crc32c(payload).to_le_bytes() != bytes[r.end - crc..r.end] {
            return Err(match layout.shard {
                Some(_) => format!("inner chunk {j} fails its crc32c checksum"),
                None => "its data fail their crc32c checksum".to_string(),
            });
        }
        out.push(r.start..r.end - crc);
    }
    Ok(out)
}

/// Byte ranges of chunks `want` of a shard of `layout.chunks` inner chunks,
/// checked: index checksum, each chunk present, of its raw size (payload and
/// checksum) or at least its checksum's, and inside the data part of the file.
fn chunk_offsets(
    bytes: &[u8],
    layout: &Layout,
    want: Range<usize>,
    at: IndexAt,
) -> std::result::Result<Vec<Range<usize>>, String> {
    let (len, chunks) = (bytes.len(), layout.chunks);
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
    if want.end > chunks {
        return Err(format!(
            "chunk {} asked of a shard of {chunks} chunks",
            want.end - 1
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
    let crc = 4 * layout.checksum as u64;
    let raw = (layout.codec == Codec::Raw).then_some(layout.chunk_bytes as u64 + crc);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    want.map(|j| {
        let (off, nb) = (
            word(&entries[16 * j..16 * j + 8]),
            word(&entries[16 * j + 8..16 * j + 16]),
        );
        if (off, nb) == (u64::MAX, u64::MAX) {
            return Err(format!("inner chunk {j} is missing (reads as fill value)"));
        }
        match raw {
            Some(size) if nb != size => {
                return Err(format!(
                    "inner chunk {j} has {nb} bytes, its raw values need {size}"
                ))
            }
            None if nb < crc => {
                return Err(format!(
                    "inner chunk {j} has {nb} bytes, fewer than its checksum"
                ))
            }
            _ => {}
        }
        match off.checked_add(nb) {
            Some(end) if off >= data.start as u64 && end <= data.end as u64 => {
                Ok(off as usize..end as usize)
            }
            _ => Err(format!(
                "inner chunk {j} ({off}+{nb}) lies outside the file's {len} bytes"
            )),
        }
    })
    .collect()
}

/// Decode one stored chunk `payload` into `out` (exactly one chunk long).
pub(crate) fn decode_into(
    codec: Codec,
    payload: &[u8],
    out: &mut [u8],
) -> std::result::Result<(), String> {
    match codec {
        Codec::Raw => {
            out.copy_from_slice(payload);
            Ok(())
        }
        Codec::Zstd => {
            // the frame's declared size is checked first: a damaged header
            // cannot make it allocate or write past `out`
            match zstd::zstd_safe::get_frame_content_size(payload) {
                Ok(Some(n)) if n == out.len() as u64 => {}
                Ok(Some(n)) => {
                    return Err(format!(
                        "its zstd frame holds {n} bytes, the chunk has {}",
                        out.len()
                    ))
                }
                Ok(None) => {}
                Err(_) => return Err("it is not a zstd frame".into()),
            }
            match zstd::bulk::decompress_to_buffer(payload, out) {
                Ok(n) if n == out.len() => Ok(()),
                Ok(n) => Err(format!(
                    "it decompresses to {n} bytes, the chunk has {}",
                    out.len()
                )),
                Err(e) => Err(format!("it cannot be decompressed (zstd: {e})")),
            }
        }
    }
}

/// Map a whole file read-only, its pages faulted in at once (empty files
/// cannot be mapped: they read as no bytes). On Linux the mapping asks for
/// transparent huge pages: a file not yet cached is read into 2 MB folios
/// that later mappings take with one entry per 2 MB instead of 512 (page
/// tables cost ~30 % of the kernel's time with 4 kB entries).
pub(crate) fn map(path: &std::path::Path) -> std::io::Result<Mapped> {
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
    // SAFETY: as above.
    #[cfg(not(target_os = "linux"))]
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }?;
    Ok(Mapped::Map(map))
}

/// A mapped file, or the bytes of an empty one.
pub(crate) enum Mapped {
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

    fn plain(codec: Codec) -> Layout {
        Layout {
            chunk_bytes: 64,
            chunks: 1,
            shard: None,
            checksum: true,
            codec,
        }
    }

    #[test]
    fn plain_chunks_check_size_and_checksum() {
        let payload: Vec<u8> = (0..64u8).collect();
        let mut file = payload.clone();
        file.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        let layout = plain(Codec::Raw);
        assert_eq!(
            chunk_payloads(&file, &layout, 0..1),
            Ok(std::iter::once(0..64).collect())
        );
        file[3] ^= 0x40;
        assert_eq!(
            chunk_payloads(&file, &layout, 0..1),
            Err("its data fail their crc32c checksum".to_string())
        );
        let short = chunk_payloads(&file[..66], &layout, 0..1).unwrap_err();
        assert!(
            short.contains("66 bytes") && short.contains("68"),
            "{short}"
        );
        let huge = Layout {
            chunk_bytes: 1,
            chunks: usize::MAX / 8,
            shard: Some(IndexAt::End),
            checksum: false,
            codec: Codec::Raw,
        };
        assert!(chunk_payloads(&file, &huge, 0..1)
            .unwrap_err()
            .contains("chunks per shard"));
    }

    #[test]
    fn zstd_chunks_decode_exactly_or_say_why() {
        let values: Vec<u8> = (0..64u8).map(|v| v % 5).collect();
        let mut file = zstd::bulk::compress(&values, 3).unwrap();
        file.extend_from_slice(&crc32c::crc32c(&file).to_le_bytes());
        let layout = plain(Codec::Zstd);
        let r = chunk_payloads(&file, &layout, 0..1).unwrap();
        let mut out = vec![0u8; 64];
        decode_into(Codec::Zstd, &file[r[0].clone()], &mut out).unwrap();
        assert_eq!(out, values);
        // a frame of another size, and bytes that are no frame at all
        let err = decode_into(Codec::Zstd, &file[r[0].clone()], &mut [0u8; 32]).unwrap_err();
        assert!(err.contains("64 bytes"), "{err}");
        let err = decode_into(Codec::Zstd, &[1, 2, 3, 4, 5, 6], &mut out).unwrap_err();
        assert!(err.contains("zstd"), "{err}");
        // a truncated frame (its checksum fixed so the codec sees it)
        let n = r[0].end - 3;
        let mut cut = file[..n].to_vec();
        cut.extend_from_slice(&crc32c::crc32c(&file[..n]).to_le_bytes());
        let r = chunk_payloads(&cut, &layout, 0..1).unwrap();
        assert!(decode_into(Codec::Zstd, &cut[r[0].clone()], &mut out).is_err());
    }
}
