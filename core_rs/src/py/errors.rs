//! The exception tree and the ONE conversion from core errors to Python exceptions.

use crate::error::{CoreError, Stage};
use crate::schema::LoadError;
use crate::version::OcppVersion;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::create_exception!(
    csms._core,
    OcppError,
    PyValueError,
    "A frame or payload refused by the OCPP-J rules; carries everything its CALLERROR needs."
);
pyo3::create_exception!(
    csms._core,
    FrameError,
    OcppError,
    "Not a readable OCPP-J frame."
);
pyo3::create_exception!(
    csms._core,
    MessageTypeError,
    OcppError,
    "A message type number this version does not define (OCPP 2.0.1)."
);
pyo3::create_exception!(
    csms._core,
    ActionError,
    OcppError,
    "An unknown action, or one not accepted in this direction."
);
pyo3::create_exception!(
    csms._core,
    PayloadError,
    OcppError,
    "A payload that does not conform to its JSON schema."
);
pyo3::create_exception!(
    csms._core,
    SchemaLoadError,
    PyValueError,
    "A schema directory that cannot be used."
);

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("OcppError", py.get_type::<OcppError>())?;
    m.add("FrameError", py.get_type::<FrameError>())?;
    m.add("MessageTypeError", py.get_type::<MessageTypeError>())?;
    m.add("ActionError", py.get_type::<ActionError>())?;
    m.add("PayloadError", py.get_type::<PayloadError>())?;
    m.add("SchemaLoadError", py.get_type::<SchemaLoadError>())?;
    Ok(())
}

/// Turn a core error into the matching exception, with the code spelled for `version`.
#[cold]
pub(super) fn to_pyerr(py: Python<'_>, err: &CoreError, version: OcppVersion) -> PyErr {
    let description = err.description.clone();
    let exc = match err.stage {
        Stage::Frame => FrameError::new_err(description.clone()),
        Stage::MessageType => MessageTypeError::new_err(description.clone()),
        Stage::Action => ActionError::new_err(description.clone()),
        Stage::Payload => PayloadError::new_err(description.clone()),
    };
    let value = exc.value(py);
    let set = || -> PyResult<()> {
        value.setattr("code", err.code.spelling(version))?;
        value.setattr("unique_id", err.reply_id())?;
        value.setattr("description", description)?;
        value.setattr("message_type_id", err.message_type_id)?;
        value.setattr("path", err.path.as_deref())?;
        value.setattr("keyword", err.keyword)?;
        Ok(())
    };
    if let Err(e) = set() {
        return e;
    }
    exc
}

#[cold]
pub(super) fn load_error(err: &LoadError) -> PyErr {
    SchemaLoadError::new_err(err.to_string())
}
