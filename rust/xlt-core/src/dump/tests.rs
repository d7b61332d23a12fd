use super::*;

/// A shard of `chunks` inner chunks of `chunk_bytes` (stored in reverse order,
/// each compressed when `zstd` and followed by its crc32c) with its index at the end.
fn shard(raw: &[u8], chunks: usize, chunk_bytes: usize, zstd: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = vec![0u8; 16 * chunks];
    for j in (0..chunks).rev() {
        let (off, nb) = match raw.get(j * chunk_bytes..) {
            Some(p) if !p.is_empty() => {
                let mut full = p[..p.len().min(chunk_bytes)].to_vec();
                full.resize(chunk_bytes, 0xff); // the edge chunk: fill values
                let stored = if zstd {
                    zstd::bulk::compress(&full, 1).unwrap()
                } else {
                    full
                };
                let off = out.len() as u64;
                out.extend_from_slice(&stored);
                out.extend_from_slice(&crc32c::crc32c(&stored).to_le_bytes());
                (off, out.len() as u64 - off)
            }
            _ => (u64::MAX, u64::MAX),
        };
        index[16 * j..16 * j + 8].copy_from_slice(&off.to_le_bytes());
        index[16 * j + 8..16 * j + 16].copy_from_slice(&nb.to_le_bytes());
    }
    let crc = crc32c::crc32c(&index);
    out.extend_from_slice(&index);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn array(zstd: bool, name: &str) -> (ArrayFiles, Vec<u8>, PathBuf) {
    let (n, row, per_chunk, chunks): (usize, usize, usize, usize) = (45, 6, 4, 3);
    let raw: Vec<u8> = (0..n * row).map(|i| (i * 7 % 251) as u8).collect();
    let dir = std::env::temp_dir().join(format!("xlt-dump-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let per_file = per_chunk * chunks;
    let paths = (0..n.div_ceil(per_file))
        .map(|i| {
            let p = dir.join(i.to_string());
            let end = ((i + 1) * per_file).min(n);
            let bytes = shard(
                &raw[i * per_file * row..end * row],
                chunks,
                per_chunk * row,
                zstd,
            );
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    let files = ArrayFiles {
        paths,
        first_row: 0,
        file_rows: per_file,
        row_bytes: row,
        shard: Some((per_chunk, IndexAt::End)),
        codec: if zstd { Codec::Zstd } else { Codec::Raw },
        checksum: true,
        rows_are: "tokens",
    };
    (files, raw, dir)
}

#[test]
fn any_row_range_reads_as_written_raw_and_zstd() {
    for zstd in [false, true] {
        let (files, raw, dir) = array(zstd, &format!("ranges-{zstd}"));
        for (a, b) in [(0, 45), (5, 6), (11, 13), (13, 40), (44, 45), (7, 7)] {
            let mut out = vec![0u8; (b - a) * 6];
            files.read_into(a..b, &mut out).unwrap();
            assert_eq!(out, raw[a * 6..b * 6], "rows {a}:{b}, zstd {zstd}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn damaged_zstd_chunks_are_named_data_errors() {
    let (files, _, dir) = array(true, "damaged");
    let path = &files.paths[1];
    let good = std::fs::read(path).unwrap();
    // garbage that passes the checksum: the codec must refuse it, not crash
    let mut bad = good.clone();
    let len = bad.len();
    let index = &good[len - 52..len - 4];
    let (off, nb) = (
        u64::from_le_bytes(index[16..24].try_into().unwrap()) as usize,
        u64::from_le_bytes(index[24..32].try_into().unwrap()) as usize,
    );
    for b in &mut bad[off + 4..off + nb - 4] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let crc = crc32c::crc32c(&bad[off..off + nb - 4]).to_le_bytes();
    bad[off + nb - 4..off + nb].copy_from_slice(&crc);
    std::fs::write(path, &bad).unwrap();
    let mut out = vec![0u8; 45 * 6];
    let err = files.read_into(0..45, &mut out).unwrap_err();
    assert!(
        matches!(&err, Error::Data(m) if m.contains("/1 (tokens 12:24)") && m.contains("inner chunk 1")),
        "{err:?}"
    );
    // cut short: the index no longer checks out
    std::fs::write(path, &good[..len - 9]).unwrap();
    let err = files.read_into(0..45, &mut out).unwrap_err();
    assert!(
        matches!(&err, Error::Data(m) if m.contains("checksum")),
        "{err:?}"
    );
    // rows of the other files still read
    files.read_into(24..45, &mut out[..21 * 6]).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sizes_are_checked_before_reading() {
    let (mut files, _, dir) = array(false, "sizes");
    let err = files.read_into(0..50, &mut vec![0u8; 50 * 6]).unwrap_err();
    assert!(
        matches!(&err, Error::Shape(m) if m.contains("chunk files")),
        "{err:?}"
    );
    files.file_rows = 5;
    let err = files.read_into(0..4, &mut [0u8; 24]).unwrap_err();
    assert!(
        matches!(&err, Error::Shape(m) if m.contains("positive multiple")),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
