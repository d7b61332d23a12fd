//! Sizes taken from arguments or files, checked before anything is
//! allocated: a product that overflows, or a table larger than this
//! machine's physical memory, is a `Config` error that names the sizes —
//! never an allocation abort or a swap storm.
use crate::error::{Error, Result};

/// Physical memory in bytes (sysconf), or 1 TiB where it cannot be read.
pub fn physical_memory() -> u64 {
    #[cfg(all(unix, not(miri)))]
    {
        // SAFETY: sysconf only reads system configuration.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return (pages as u64).saturating_mul(size as u64);
        }
    }
    1 << 40
}

/// Elements of a table of `dims` (name, size) with `bytes_per` bytes per
/// element, checked: the product must not overflow and the table must fit in
/// physical memory. `what` names the table in the message.
pub fn table(what: &str, dims: &[(&str, usize)], bytes_per: usize) -> Result<usize> {
    let shown = || {
        dims.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mem = physical_memory();
    let n = dims.iter().try_fold(1usize, |a, &(_, v)| a.checked_mul(v));
    let bytes = n.and_then(|n| n.checked_mul(bytes_per));
    match bytes {
        Some(b) if (b as u64) <= mem => Ok(n.unwrap_or(0)),
        _ => Err(Error::Config(format!(
            "{what} for {} would need {} bytes, more than this machine's {:.1} GB of memory; \
             check these sizes (a group, layer or expert count read from the wrong place?)",
            shown(),
            bytes.map_or_else(|| "more than 2^64".to_string(), |b| b.to_string()),
            mem as f64 / 1e9
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_and_excess_are_errors_that_name_the_sizes() {
        let huge = table(
            "x",
            &[("a", 1_000_000), ("b", 1_000_000), ("c", 1_000_000)],
            24,
        );
        assert!(
            matches!(&huge, Err(Error::Config(m)) if m.contains("a=1000000") && m.contains("2^64"))
        );
        let big = table("x", &[("a", 1 << 40)], 8);
        assert!(matches!(&big, Err(Error::Config(m)) if m.contains("8796093022208 bytes")));
        assert_eq!(table("x", &[("a", 3), ("b", 5)], 8), Ok(15));
    }
}
