//! The neuron statistics' chunk-file reader (`NeuronStats::update_files`) on
//! arbitrary file contents: plain chunk files and `sharding_indexed` shards
//! (index at start or end), any sizes, offsets, byte counts, missing files.
//! `fix_crc` rewrites the index checksum so the fuzzer gets past it and
//! reaches the offset checks. A file is read or refused with an error; never
//! a read outside the mapping, a panic or an abort.
#![no_main]
mod common;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use xlt_core::neurons::{ChunkFiles, Dtype, IndexAt, NeuronStats};

#[derive(Arbitrary, Debug)]
struct Input {
    dtype: u8,
    layers: u8,
    hidden: u8,
    file_tokens: u8,
    shard: Option<(u8, bool)>,
    checksum: bool,
    tokens: u8,
    groups: Vec<i8>,
    files: Vec<Option<(Vec<u8>, bool)>>,
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("xlt-fuzz-chunk-files-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|inp: Input| {
    common::one_thread();
    let dtype = [Dtype::BF16, Dtype::F16, Dtype::F32][inp.dtype as usize % 3];
    let (layers, hidden) = (inp.layers as usize % 4 + 1, inp.hidden as usize % 40 + 1);
    let n = inp.tokens as usize % 64;
    let shard = inp.shard.map(|(c, start)| {
        (
            c as usize % 9,
            if start { IndexAt::Start } else { IndexAt::End },
        )
    });
    let paths: Vec<PathBuf> = inp
        .files
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, f)| {
            let p = dir().join(i.to_string());
            let _ = std::fs::remove_file(&p);
            if let Some((bytes, fix_crc)) = f {
                let mut bytes = bytes.clone();
                if let (Some((per_chunk, at)), true) = (shard, *fix_crc) {
                    common::fix_index(&mut bytes, inp.file_tokens as usize / per_chunk.max(1), at);
                }
                std::fs::write(&p, &bytes).unwrap();
            }
            p
        })
        .collect();
    let group: Vec<i32> = (0..n)
        .map(|t| inp.groups.get(t).map_or(0, |&g| g as i32 % 4))
        .collect();
    let files = ChunkFiles {
        dtype,
        paths,
        first_token: 0,
        file_tokens: inp.file_tokens as usize,
        shard,
        checksum: inp.checksum,
    };
    let Ok(mut stats) = NeuronStats::try_new(3, layers, hidden) else {
        return;
    };
    let _ = stats.update_files(&files, &group);
});
