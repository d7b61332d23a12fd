//! The dump reader's chunk decoding on arbitrary chunk files: the byte-level
//! parser `dump::chunk_payloads` (plain chunks and `sharding_indexed` shards,
//! index at start or end, per-chunk crc32c on or off, raw or zstd) and the
//! whole read `ArrayFiles::read_vec` (mapping, checks, zstd decoding) of the
//! same file. The file is either arbitrary bytes (`fix_crc` rewrites a shard
//! index's checksum so the fuzzer reaches the offset checks) or built well
//! formed from arbitrary chunk values, zstd frames included, then damaged by
//! `flips`. A file is read or refused with an error; never a panic, an abort
//! or a read outside the file; an undamaged built file reads back its values.
#![no_main]
mod common;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use xlt_core::dump::{chunk_payloads, ArrayFiles, Codec, IndexAt, Layout};

#[derive(Arbitrary, Debug)]
struct Input {
    row_bytes: u8,
    chunk_rows: u8,
    /// Sharded: inner chunks per file and whether the index is at the start.
    shard: Option<(u8, bool)>,
    checksum: bool,
    zstd: bool,
    /// Chunks asked of `chunk_payloads` (clamped to the layout's).
    want: (u8, u8),
    /// Rows read back (a prefix of the file's).
    rows: u8,
    /// The file: `Built` values encoded as the layout says, or `Bytes` as they are.
    file: File,
    flips: Vec<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
enum File {
    Built(Vec<Vec<u8>>),
    Bytes(Vec<u8>, bool),
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("xlt-fuzz-dump-chunks-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|inp: Input| {
    common::one_worker();
    let row_bytes = inp.row_bytes as usize % 16 + 1;
    let chunk_rows = inp.chunk_rows as usize % 4 + 1;
    let chunk_bytes = row_bytes * chunk_rows;
    let shard = inp.shard.map(|(n, start)| {
        let at = if start { IndexAt::Start } else { IndexAt::End };
        (n as usize % 5 + 1, at)
    });
    let layout = Layout {
        chunk_bytes,
        chunks: shard.map_or(1, |s| s.0),
        shard: shard.map(|s| s.1),
        checksum: inp.checksum,
        codec: if inp.zstd { Codec::Zstd } else { Codec::Raw },
    };
    let (mut bytes, values) = match &inp.file {
        File::Built(chunks) => {
            let values: Vec<Vec<u8>> = (0..layout.chunks)
                .map(|j| fit(chunks.get(j).map_or(&[][..], |c| c), chunk_bytes))
                .collect();
            (build(&values, &layout), Some(values.concat()))
        }
        File::Bytes(b, fix) => {
            let mut b = b.clone();
            if let (Some(at), true) = (layout.shard, *fix) {
                common::fix_index(&mut b, layout.chunks, at);
            }
            (b, None)
        }
    };
    let damaged = !bytes.is_empty() && !inp.flips.is_empty();
    for &(at, x) in &inp.flips {
        let n = bytes.len();
        if n > 0 {
            bytes[at as usize % n] ^= x;
        }
    }

    let a = inp.want.0 as usize % (layout.chunks + 1);
    let want = a..(a + inp.want.1 as usize % (layout.chunks + 1)).min(layout.chunks);
    let parsed = chunk_payloads(&bytes, &layout, want.clone());
    if let Ok(ranges) = &parsed {
        assert_eq!(ranges.len(), want.len());
        for r in ranges {
            assert!(
                r.start <= r.end && r.end <= bytes.len(),
                "{r:?} of {}",
                bytes.len()
            );
            if !inp.zstd {
                assert_eq!(r.len(), chunk_bytes);
            }
        }
    }
    let intact = values.is_some() && !damaged;
    if intact {
        assert!(parsed.is_ok(), "a well-formed file refused: {parsed:?}");
    }

    let path = dir().join("0");
    std::fs::write(&path, &bytes).unwrap();
    let files = ArrayFiles {
        paths: vec![path],
        first_row: 0,
        file_rows: chunk_rows * layout.chunks,
        row_bytes,
        shard: shard.map(|(_, at)| (chunk_rows, at)),
        codec: layout.codec,
        checksum: inp.checksum,
        rows_are: "tokens",
    };
    let rows = inp.rows as usize % (files.file_rows + 1);
    let read = files.read_vec::<u8>(0..rows);
    if let Ok(v) = &read {
        assert_eq!(v.len(), rows * row_bytes);
    }
    if let (true, Some(values)) = (intact, values) {
        let v = read.expect("a well-formed file reads");
        assert_eq!(v, values[..rows * row_bytes], "values read back differ");
    }
});

/// `v` cycled (or zero-filled when empty) to length `n`.
fn fit(v: &[u8], n: usize) -> Vec<u8> {
    if v.is_empty() {
        return vec![0; n];
    }
    v.iter().copied().cycle().take(n).collect()
}

/// A chunk file holding `values` (one entry per chunk) as `layout` says.
fn build(values: &[Vec<u8>], layout: &Layout) -> Vec<u8> {
    let stored: Vec<Vec<u8>> = values
        .iter()
        .map(|v| {
            let mut s = match layout.codec {
                Codec::Raw => v.clone(),
                Codec::Zstd => zstd::bulk::compress(v, 1).expect("zstd compresses"),
            };
            if layout.checksum {
                s.extend_from_slice(&common::crc32c(&s).to_le_bytes());
            }
            s
        })
        .collect();
    let Some(at) = layout.shard else {
        return stored.concat();
    };
    let index_len = 16 * stored.len() + 4;
    let data_start = if at == IndexAt::Start { index_len } else { 0 };
    let mut entries = Vec::with_capacity(index_len);
    let mut off = data_start;
    for s in &stored {
        entries.extend_from_slice(&(off as u64).to_le_bytes());
        entries.extend_from_slice(&(s.len() as u64).to_le_bytes());
        off += s.len();
    }
    entries.extend_from_slice(&common::crc32c(&entries).to_le_bytes());
    let data = stored.concat();
    match at {
        IndexAt::Start => [entries, data].concat(),
        IndexAt::End => [data, entries].concat(),
    }
}
