//! The Python face of the core, `csms._core`. The only code in the crate that names pyo3.

mod classes;
mod convert;
mod errors;
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
    Ok(())
}
