//! Shared by every target.

/// Runs rayon's work on this (libFuzzer's) thread: a one-thread global pool
/// that includes the caller, so the many tiny parallel calls per input do not
/// each wait for another thread to wake (24 runs/s before, under load).
#[allow(dead_code)]
pub fn one_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build_global();
    });
}

/// One rayon worker, but not libFuzzer's thread (unlike [`one_thread`]): the
/// dump reader decodes zstd chunks with rayon on its mapping thread while the
/// caller waits for them, so a pool made only of the caller never runs them.
#[allow(dead_code)]
pub fn one_worker() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global();
    });
}

/// Rewrite the crc32c of a shard index of `chunks` entries, where it would be
/// (chunk-file targets: lets the fuzzer get past the index checksum).
#[allow(dead_code)]
pub fn fix_index(bytes: &mut [u8], chunks: usize, at: xlt_core::dump::IndexAt) {
    let index_len = 16 * chunks + 4;
    if bytes.len() < index_len {
        return;
    }
    let start = match at {
        xlt_core::dump::IndexAt::Start => 0,
        xlt_core::dump::IndexAt::End => bytes.len() - index_len,
    };
    let crc = crc32c(&bytes[start..start + 16 * chunks]);
    bytes[start + 16 * chunks..start + index_len].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32C (Castagnoli), bitwise: small inputs only.
#[allow(dead_code)]
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}
