//! The Python face of the core, `csms._core`. The only code in the crate that names pyo3.

mod classes;
mod convert;
mod errors;
mod projfold;
mod wire;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "SUPPORTED_VERSIONS",
        crate::OcppVersion::ALL
            .map(crate::OcppVersion::label)
            .to_vec(),
    )?;
    classes::register(m)?;
    errors::register(m)?;
    wire::register(m)?;
    projfold::register(m)?;
    m.add_function(wrap_pyfunction!(may_hold_negative, m)?)?;
    Ok(())
}

/// Could the frame hold a negative number or a string starting with `-`? A `false` is
/// certain; see [`crate::negative::may_hold_negative`].
#[pyfunction]
fn may_hold_negative(frame: &[u8]) -> bool {
    crate::negative::may_hold_negative(frame)
}
