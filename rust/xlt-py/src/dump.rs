//! Bindings of `xlt_core::dump`: a dump array's chunk files, described by a
//! dict that `xlt.dumps.chunk_files` makes, read into numpy (bf16 decoded to
//! float32 in Rust), GIL released.
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use numpy::{Element, IntoPyArray};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;
use std::ops::Range;
use std::path::PathBuf;
use xlt_core::dump::{ArrayFiles, Codec, IndexAt, Plain};
use xlt_core::Error;

use crate::arrays::by_name;
use crate::errors::IntoPyResult;

/// The chunk files described by `spec`: paths, file_rows, row_bytes,
/// chunk_rows (sharded) or None, index ("start"/"end"), codec ("raw"/"zstd"),
/// checksum; the first file starts at row `first_row` of the array.
pub fn array_files(spec: &Bound<'_, PyDict>, first_row: usize) -> PyResult<ArrayFiles> {
    let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        spec.get_item(k)?
            .ok_or_else(|| Error::Config(format!("chunk-file spec lacks {k:?}")))
            .py()
    };
    let chunk_rows: Option<usize> = get("chunk_rows")?.extract()?;
    let at: IndexAt = get("index")?.extract::<String>()?.parse().py()?;
    Ok(ArrayFiles {
        paths: get("paths")?.extract::<Vec<PathBuf>>()?,
        first_row,
        file_rows: get("file_rows")?.extract()?,
        row_bytes: get("row_bytes")?.extract()?,
        shard: chunk_rows.map(|c| (c, at)),
        codec: get("codec")?.extract::<String>()?.parse::<Codec>().py()?,
        checksum: get("checksum")?.extract()?,
        rows_are: if get("rows_are")?.extract::<String>()? == "items" {
            "items"
        } else {
            "tokens"
        },
    })
}

/// Reads rows of chunk files into a flat numpy array, GIL released.
type Reader = for<'py> fn(Python<'py>, &ArrayFiles, Range<usize>) -> PyResult<Bound<'py, PyAny>>;

/// The rows as they are stored, values of `T`.
fn read<'py, T: Plain + Element>(
    py: Python<'py>,
    files: &ArrayFiles,
    rows: Range<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let v = py.detach(|| files.read_vec::<T>(rows)).py()?;
    Ok(v.into_pyarray(py).into_any())
}

/// The rows' stored bf16 bits decoded to float32.
fn read_bf16<'py>(
    py: Python<'py>,
    files: &ArrayFiles,
    rows: Range<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let v = py
        .detach(|| {
            let bits = files.read_vec::<u16>(rows)?;
            let mut out = vec![0f32; bits.len()];
            out.par_chunks_mut(1 << 16)
                .zip(bits.par_chunks(1 << 16))
                .for_each(|(o, b)| b.reinterpret_cast::<bf16>().convert_to_f32_slice(o));
            Ok::<_, Error>(out)
        })
        .py()?;
    Ok(v.into_pyarray(py).into_any())
}

/// Rows `start:stop` of the array whose chunk files `spec` describes, as a
/// flat array of `dtype` (int16, int32, int64, uint16, float16, float32), or
/// with dtype "bfloat16" the stored bf16 bits decoded to float32.
#[pyfunction]
fn dump_read<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyDict>,
    start: usize,
    stop: usize,
    dtype: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let table: [(&str, Reader); 7] = [
        ("int16", read::<i16>),
        ("int32", read::<i32>),
        ("int64", read::<i64>),
        ("uint16", read::<u16>),
        ("float16", read::<f16>),
        ("float32", read::<f32>),
        ("bfloat16", read_bf16),
    ];
    let reader = by_name(dtype, &table, "dump_read")?;
    reader(py, &array_files(spec, 0)?, start..stop.max(start))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dump_read, m)?)?;
    Ok(())
}
