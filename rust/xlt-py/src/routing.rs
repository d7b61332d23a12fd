//! Bindings of `xlt_core::routing`: the streaming `RoutingAccumulator`
//! (chunks in zero-copy, GIL released, picklable for dask reductions), the
//! derived profile, and the small helpers `shift` / `partial` use.
use half::f16;
use numpy::{
    Element, IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use xlt_core::routing::{
    js_rows, partial_rows, Chunk, Indices, Parts, RoutingAccumulator, RoutingFiles, Thresholds,
    Values,
};

use crate::arrays::one_of;
use crate::dump::array_files;
use crate::errors::{DataError, IntoPyResult, ShapeError};

enum Idx<'py> {
    I16(PyReadonlyArray3<'py, i16>),
    I32(PyReadonlyArray3<'py, i32>),
}

enum Vals<'py> {
    F16(PyReadonlyArray3<'py, f16>),
    F32(PyReadonlyArray3<'py, f32>),
    /// bfloat16 bit patterns (Python declares them; `xlt.routing` passes uint16 views).
    BF16(PyReadonlyArray3<'py, u16>),
}

fn contiguous<'a, T: Element>(a: &'a PyReadonlyArray3<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        ShapeError::new_err(format!(
            "{name} must be C-contiguous; pass np.ascontiguousarray({name})"
        ))
    })
}

fn check_dims(shape: &[usize], want: [usize; 3], name: &str, what: &str) -> PyResult<()> {
    if shape == want {
        Ok(())
    } else {
        Err(ShapeError::new_err(format!(
            "{name} has shape {shape:?}, expected {want:?} = ({what})"
        )))
    }
}

impl<'py> Idx<'py> {
    fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        one_of(
            obj,
            &[
                |o| o.extract().ok().map(Idx::I16),
                |o| o.extract().ok().map(Idx::I32),
            ],
            "routing_idx",
            "a 3-D int16 or int32 array (token, moe_layer, k)",
        )
    }
    fn shape(&self) -> &[usize] {
        match self {
            Idx::I16(a) => a.shape(),
            Idx::I32(a) => a.shape(),
        }
    }
    fn view(&self) -> PyResult<Indices<'_>> {
        Ok(match self {
            Idx::I16(a) => Indices::I16(contiguous(a, "routing_idx")?),
            Idx::I32(a) => Indices::I32(contiguous(a, "routing_idx")?),
        })
    }
}

impl<'py> Vals<'py> {
    fn extract(obj: &Bound<'py, PyAny>, name: &str, dims: &str) -> PyResult<Self> {
        one_of(
            obj,
            &[
                |o| o.extract().ok().map(Vals::F16),
                |o| o.extract().ok().map(Vals::F32),
                |o| o.extract().ok().map(Vals::BF16),
            ],
            name,
            &format!("a 3-D float16, float32 or bfloat16 (uint16 bits) array ({dims})"),
        )
    }
    fn shape(&self) -> &[usize] {
        match self {
            Vals::F16(a) => a.shape(),
            Vals::F32(a) => a.shape(),
            Vals::BF16(a) => a.shape(),
        }
    }
    fn view(&self, name: &str) -> PyResult<Values<'_>> {
        Ok(match self {
            Vals::F16(a) => Values::F16(contiguous(a, name)?),
            Vals::F32(a) => Values::F32(contiguous(a, name)?),
            Vals::BF16(a) => Values::BF16(contiguous(a, name)?),
        })
    }
}

/// `obj` (any shape) as a flat vector of `T`; `dtype` names `T` in messages.
fn vector<'py, T: Element + Copy>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    dtype: &str,
) -> PyResult<Vec<T>> {
    let a: PyReadonlyArrayDyn<'py, T> = one_of(
        obj,
        &[|o| o.extract().ok()],
        name,
        &format!("a {dtype} array"),
    )?;
    Ok(a.as_array().iter().copied().collect())
}

fn shaped<'py, T: Element>(
    py: Python<'py>,
    v: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    v.into_pyarray(py).reshape(shape)
}

/// Per group × MoE layer routing counts, fed chunk by chunk along the token axis.
#[pyclass(module = "xlt._core", name = "RoutingAccumulator")]
pub struct PyRoutingAccumulator {
    inner: RoutingAccumulator,
}

#[pymethods]
impl PyRoutingAccumulator {
    #[new]
    #[pyo3(signature = (n_groups, n_layers, n_experts, k, items = false))]
    fn new(
        n_groups: usize,
        n_layers: usize,
        n_experts: usize,
        k: usize,
        items: bool,
    ) -> PyResult<Self> {
        Ok(Self {
            inner: RoutingAccumulator::new(n_groups, n_layers, n_experts, k, items).py()?,
        })
    }

    /// Add a chunk: `idx` (token, moe_layer, k) int16/int32, `weight` same shape
    /// float16/float32, `group` (token) int32 (negative: leave the token out),
    /// optional `prob` (token, moe_layer, expert) float16/float32 and `item`
    /// (token) int64 parallel item ids.
    #[pyo3(signature = (idx, weight, group, prob = None, item = None))]
    fn update(
        &mut self,
        py: Python<'_>,
        idx: &Bound<'_, PyAny>,
        weight: &Bound<'_, PyAny>,
        group: &Bound<'_, PyAny>,
        prob: Option<&Bound<'_, PyAny>>,
        item: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (_, l, e, k) = self.inner.dims();
        let group: PyReadonlyArray1<i32> =
            one_of(group, &[|o| o.extract().ok()], "group", "a 1-D int32 array")?;
        let t = group.len();
        let idx = Idx::extract(idx)?;
        check_dims(
            idx.shape(),
            [t, l, k],
            "routing_idx",
            "tokens in group, moe_layers, k",
        )?;
        let dims = "token, moe_layer, k";
        let weight = Vals::extract(weight, "routing_weight", dims)?;
        check_dims(
            weight.shape(),
            [t, l, k],
            "routing_weight",
            "tokens in group, moe_layers, k",
        )?;
        let prob = prob
            .map(|p| Vals::extract(p, "router_prob", "token, moe_layer, expert"))
            .transpose()?;
        if let Some(p) = &prob {
            check_dims(
                p.shape(),
                [t, l, e],
                "router_prob",
                "tokens in group, moe_layers, n_experts",
            )?;
        }
        let item: Option<PyReadonlyArray1<i64>> = item
            .map(|i| one_of(i, &[|o| o.extract().ok()], "item", "a 1-D int64 array"))
            .transpose()?;
        let group_s = group
            .as_slice()
            .map_err(|_| ShapeError::new_err("group must be contiguous"))?;
        let item_s = match &item {
            Some(a) => Some(
                a.as_slice()
                    .map_err(|_| ShapeError::new_err("item must be contiguous"))?,
            ),
            None => None,
        };
        let chunk = Chunk {
            idx: idx.view()?,
            weight: weight.view("routing_weight")?,
            prob: prob.as_ref().map(|p| p.view("router_prob")).transpose()?,
            group: group_s,
            item: item_s,
        };
        let inner = &mut self.inner;
        py.detach(|| inner.update(&chunk)).py()
    }

    /// Add the first `tokens` tokens of a dump's routing arrays read from
    /// their chunk files: `idx`, `weight` (and `prob`) are `(spec, dtype)`
    /// pairs (spec: see `xlt.dumps.chunk_files`), `token_item` a spec of the
    /// int32 item row of each token; `item_group` (int32, negative = leave
    /// out) and `item_key` (int64, when tracking items) are per item row.
    #[pyo3(signature = (idx, weight, token_item, item_group, tokens, prob = None, item_key = None, block = 65536))]
    #[allow(clippy::too_many_arguments)]
    fn update_files(
        &mut self,
        py: Python<'_>,
        idx: (Bound<'_, PyDict>, String),
        weight: (Bound<'_, PyDict>, String),
        token_item: &Bound<'_, PyDict>,
        item_group: PyReadonlyArray1<'_, i32>,
        tokens: usize,
        prob: Option<(Bound<'_, PyDict>, String)>,
        item_key: Option<PyReadonlyArray1<'_, i64>>,
        block: usize,
    ) -> PyResult<()> {
        let stored = |(spec, dtype): &(Bound<'_, PyDict>, String)| -> PyResult<_> {
            Ok((array_files(spec, 0)?, dtype.parse().py()?))
        };
        let files = RoutingFiles {
            idx: stored(&idx)?,
            weight: stored(&weight)?,
            prob: prob.as_ref().map(stored).transpose()?,
            token_item: array_files(token_item, 0)?,
            item_group: item_group.as_array().to_vec(),
            item_key: item_key.map(|k| k.as_array().to_vec()),
            tokens,
            block,
        };
        let inner = &mut self.inner;
        py.detach(|| inner.update_files(&files)).py()
    }

    /// Add the counts of another accumulator over other tokens.
    fn merge(&mut self, py: Python<'_>, other: PyRef<'_, Self>) -> PyResult<()> {
        let (inner, other) = (&mut self.inner, &other.inner);
        py.detach(|| inner.merge(other)).py()
    }

    #[getter]
    fn n_groups(&self) -> usize {
        self.inner.dims().0
    }
    #[getter]
    fn n_layers(&self) -> usize {
        self.inner.dims().1
    }
    #[getter]
    fn n_experts(&self) -> usize {
        self.inner.dims().2
    }
    #[getter]
    fn k(&self) -> usize {
        self.inner.dims().3
    }
    #[getter]
    fn items(&self) -> bool {
        self.inner.tracks_items()
    }
    /// Tokens fed so far, left-out ones included.
    #[getter]
    fn seen(&self) -> u64 {
        self.inner.seen()
    }

    /// The raw partial sums as numpy arrays: tokens, prob_tokens (group);
    /// counts, mass (group, layer, expert); entropy (group, layer); item_groups,
    /// item_ids, item_tokens (pair); item_counts (pair, layer, expert).
    fn parts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (g, l, e, _) = self.inner.dims();
        let p = self.inner.parts().py()?;
        let s = p.item_ids.len();
        let d = PyDict::new(py);
        d.set_item("tokens", shaped(py, p.tokens, &[g])?)?;
        d.set_item("prob_tokens", shaped(py, p.prob_tokens, &[g])?)?;
        d.set_item("counts", shaped(py, p.counts, &[g, l, e])?)?;
        d.set_item("mass", shaped(py, p.mass, &[g, l, e])?)?;
        d.set_item("entropy", shaped(py, p.entropy, &[g, l])?)?;
        d.set_item("item_groups", shaped(py, p.item_groups, &[s])?)?;
        d.set_item("item_ids", shaped(py, p.item_ids, &[s])?)?;
        d.set_item("item_tokens", shaped(py, p.item_tokens, &[s])?)?;
        d.set_item("item_counts", shaped(py, p.item_counts, &[s, l, e])?)?;
        Ok(d)
    }

    /// Rebuild from `parts()` (what pickling does).
    #[staticmethod]
    fn from_parts(
        n_layers: usize,
        n_experts: usize,
        k: usize,
        items: bool,
        parts: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let get = |name: &str| -> PyResult<Bound<'_, PyAny>> {
            parts
                .get_item(name)?
                .ok_or_else(|| DataError::new_err(format!("routing parts lack {name:?}")))
        };
        let p = Parts {
            tokens: vector(&get("tokens")?, "tokens", "uint64")?,
            prob_tokens: vector(&get("prob_tokens")?, "prob_tokens", "uint64")?,
            counts: vector(&get("counts")?, "counts", "uint64")?,
            mass: vector(&get("mass")?, "mass", "float64")?,
            entropy: vector(&get("entropy")?, "entropy", "float64")?,
            item_groups: vector(&get("item_groups")?, "item_groups", "uint32")?,
            item_ids: vector(&get("item_ids")?, "item_ids", "int64")?,
            item_tokens: vector(&get("item_tokens")?, "item_tokens", "uint64")?,
            item_counts: vector(&get("item_counts")?, "item_counts", "uint32")?,
        };
        Ok(Self {
            inner: RoutingAccumulator::from_parts(n_layers, n_experts, k, items, p).py()?,
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.borrow();
        let (_, l, e, k) = me.inner.dims();
        let args = (l, e, k, me.inner.tracks_items(), me.parts(py)?);
        (slf.get_type().getattr("from_parts")?, args).into_pyobject(py)
    }

    /// Derive the statistics (see `xlt.routing.profile`); a dict of numpy
    /// arrays, group-major. `reference`: group index for `js_to_reference`.
    #[pyo3(signature = (reference = None, min_lift = 2.0, min_usage = 0.0, min_specificity = 0.0))]
    fn profile<'py>(
        &self,
        py: Python<'py>,
        reference: Option<usize>,
        min_lift: f64,
        min_usage: f64,
        min_specificity: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let th = Thresholds {
            min_lift,
            min_usage,
            min_specificity,
        };
        let inner = &self.inner;
        let p = py.detach(|| inner.profile(reference, &th)).py()?;
        let (g, l, e) = (p.n_groups, p.n_layers, p.n_experts);
        let d = PyDict::new(py);
        d.set_item("tokens", shaped(py, p.tokens, &[g])?)?;
        d.set_item("usage", shaped(py, p.usage, &[g, l, e])?)?;
        d.set_item("weight_mass", shaped(py, p.weight_mass, &[g, l, e])?)?;
        d.set_item("token_entropy", shaped(py, p.token_entropy, &[g, l])?)?;
        d.set_item("usage_entropy", shaped(py, p.usage_entropy, &[g, l])?)?;
        d.set_item("imbalance", shaped(py, p.imbalance, &[g, l])?)?;
        d.set_item("never_used", shaped(py, p.never_used, &[g, l])?)?;
        d.set_item("js", shaped(py, p.js, &[g, g, l])?)?;
        if let Some(v) = p.js_to_reference {
            d.set_item("js_to_reference", shaped(py, v, &[g, l])?)?;
        }
        d.set_item("lift", shaped(py, p.lift, &[g, l, e])?)?;
        d.set_item("specificity", shaped(py, p.specificity, &[l, e])?)?;
        d.set_item("specialised", shaped(py, p.specialised, &[g, l, e])?)?;
        if let Some(v) = p.parallel_overlap {
            d.set_item("parallel_overlap", shaped(py, v, &[g, g, l])?)?;
        }
        if let Some(v) = p.parallel_items {
            d.set_item("parallel_items", shaped(py, v, &[g, g])?)?;
        }
        Ok(d)
    }
}

/// Row-wise Jensen–Shannon divergence / ln 2 of two (n, e) float64 arrays whose
/// rows are distributions (non-negative, summing to 1).
#[pyfunction]
fn routing_js_rows<'py>(
    py: Python<'py>,
    p: PyReadonlyArray2<'py, f64>,
    q: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    if p.shape() != q.shape() {
        return Err(ShapeError::new_err(format!(
            "distributions to compare have shapes {:?} and {:?}; they must match",
            p.shape(),
            q.shape()
        )));
    }
    let e = p.shape()[1];
    let (p, q) = (p.as_array().to_owned(), q.as_array().to_owned());
    let (p, q) = (p.as_slice().expect("owned"), q.as_slice().expect("owned"));
    Ok(js_rows(p, q, e.max(1)).py()?.into_pyarray(py))
}

/// Per row (layer) of (layers, groups) float64 arrays: Pearson r_xy, r_xz,
/// r_yz, the partial correlation r_xy·z and x's residual after regressing on z.
#[pyfunction]
fn routing_partial<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    z: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    if x.shape() != y.shape() || x.shape() != z.shape() {
        return Err(ShapeError::new_err(format!(
            "x, y, z must share their (layer, group) shape, got {:?}, {:?}, {:?}",
            x.shape(),
            y.shape(),
            z.shape()
        )));
    }
    let (n_l, n_g) = (x.shape()[0], x.shape()[1]);
    let flat = |a: &PyReadonlyArray2<'py, f64>| a.as_array().iter().copied().collect::<Vec<f64>>();
    let r = partial_rows(&flat(&x), &flat(&y), &flat(&z), n_g.max(1)).py()?;
    let d = PyDict::new(py);
    d.set_item("r_xy", r.r_xy.into_pyarray(py))?;
    d.set_item("r_xz", r.r_xz.into_pyarray(py))?;
    d.set_item("r_yz", r.r_yz.into_pyarray(py))?;
    d.set_item("r_xy_z", r.r_xy_z.into_pyarray(py))?;
    d.set_item("x_resid", shaped(py, r.x_resid, &[n_l, n_g])?)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRoutingAccumulator>()?;
    m.add_function(wrap_pyfunction!(routing_js_rows, m)?)?;
    m.add_function(wrap_pyfunction!(routing_partial, m)?)?;
    Ok(())
}
