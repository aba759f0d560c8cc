//! Python face of [`crate::projfold`]: the projector's fold of version 2 exchanges into
//! `Native` blocks.

use crate::projfold::{self, Cell, Folded, NativeTable};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fold_exchanges, m)?)?;
    m.add_function(wrap_pyfunction!(native_block, m)?)?;
    m.add(
        "FOLD_EVENT_COLUMNS",
        projfold::EVENT_COLUMNS.map(|(name, _)| name).to_vec(),
    )?;
    m.add(
        "FOLD_FACT_COLUMNS",
        projfold::FACT_COLUMNS.map(|(name, _)| name).to_vec(),
    )?;
    Ok(())
}

type FoldResult<'py> = (
    Vec<usize>,
    Bound<'py, PyBytes>,
    usize,
    Bound<'py, PyBytes>,
    usize,
    Vec<(String, i64)>,
);

/// Fold the `(stream seq, subject, data, stored ms)` messages this fold accepts; see
/// `csms._core.pyi`. The GIL is released while folding.
#[pyfunction]
fn fold_exchanges<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
) -> PyResult<FoldResult<'py>> {
    let mut held: Vec<(u64, Bound<'py, PyBytes>)> = Vec::with_capacity(messages.len());
    let mut declined = Vec::new();
    for (i, item) in messages.iter().enumerate() {
        let tuple = item.cast_into::<PyTuple>()?;
        let seq: u64 = tuple.get_item(0)?.extract()?;
        match tuple.get_item(2)?.cast_into::<PyBytes>() {
            Ok(data) => held.push((seq, data)),
            Err(_) => declined.push(i),
        }
    }
    let slices: Vec<(u64, &[u8])> = held.iter().map(|(s, d)| (*s, d.as_bytes())).collect();
    let (folded, mut refused) = py.detach(|| {
        let mut folded = Folded::with_room(slices.iter().map(|(_, d)| d.len()).sum());
        let mut refused = Vec::new();
        for (i, (seq, data)) in slices.iter().enumerate() {
            if !projfold::fold_exchange(*seq, data, &mut folded) {
                refused.push(i);
            }
        }
        (folded, refused)
    });
    // indices into `held` back to indices into `messages`
    let mut positions = Vec::with_capacity(held.len());
    let mut skip = declined.iter().peekable();
    let mut at = 0usize;
    for _ in 0..held.len() {
        while skip.peek() == Some(&&at) {
            skip.next();
            at += 1;
        }
        positions.push(at);
        at += 1;
    }
    for i in refused.drain(..) {
        if let Some(&p) = positions.get(i) {
            declined.push(p);
        }
    }
    declined.sort_unstable();
    let events = PyBytes::new(py, &folded.events.block());
    let facts = PyBytes::new(py, &folded.facts.block());
    let seen = folded.seen.into_iter().collect();
    Ok((
        declined,
        events,
        folded.events.rows(),
        facts,
        folded.facts.rows(),
        seen,
    ))
}

/// The `Native` block of `rows` (lists in `streams.projections.rows.COLUMNS` order) of `events`
/// or `transaction_facts`; ValueError / TypeError when a value does not fit its column.
#[pyfunction]
fn native_block<'py>(
    py: Python<'py>,
    table: &str,
    rows: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut native = NativeTable::for_table(table)
        .ok_or_else(|| PyValueError::new_err(format!("no Native encoding for {table}")))?;
    let width = native.width();
    for row in rows.iter() {
        let held: Vec<Bound<'py, PyAny>> = row.cast_into::<PyList>()?.iter().collect();
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(width);
        for value in &held {
            cells.push(cell(value)?);
        }
        native.push_row(&cells).map_err(PyValueError::new_err)?;
    }
    Ok(PyBytes::new(py, &native.block()))
}

fn cell<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<Cell<'a>> {
    if value.is_none() {
        Ok(Cell::Null)
    } else if let Ok(s) = value.cast::<PyString>() {
        Ok(Cell::Str(s.to_str()?))
    } else if value.is_instance_of::<PyBool>() {
        Err(PyTypeError::new_err(
            "a bool where a number or string is expected",
        ))
    } else if value.is_instance_of::<PyInt>() {
        Ok(Cell::Int(value.extract::<i128>()?))
    } else if let Ok(f) = value.cast::<PyFloat>() {
        Ok(Cell::Float(f.value()))
    } else {
        Err(PyTypeError::new_err(format!(
            "cannot encode a {}",
            value.get_type().name()?
        )))
    }
}
