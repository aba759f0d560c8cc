//! `Codec` and the frozen frame classes handed to Python.

use super::convert::{from_py, to_py};
use super::errors::{load_error, to_pyerr};
use crate::codec::{Codec, Role};
use crate::error::{CoreError, ErrorCode};
use crate::frame::{message_type as mt, Failure, Frame, Payload, Request};
use crate::limits::Limits;
use crate::schema::{SchemaOptions, SchemaSet};
use crate::version::OcppVersion;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyString};
use serde_json::Value;
use std::path::PathBuf;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCodec>()?;
    m.add_class::<PyCall>()?;
    m.add_class::<PyCallResult>()?;
    m.add_class::<PyCallError>()?;
    m.add_class::<PyIgnored>()?;
    Ok(())
}

/// A payload kept as parsed JSON; converted to Python objects on first access only, so frames
/// whose payload Python never reads cost no object allocation.
struct LazyPayload {
    payload: Payload,
    cache: PyOnceLock<Py<PyAny>>,
}

impl LazyPayload {
    fn new(payload: Payload) -> Self {
        LazyPayload {
            payload,
            cache: PyOnceLock::new(),
        }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.cache
            .get_or_try_init(py, || match &self.payload {
                // msgspec (a pinned dependency) builds these objects several times faster
                // than a walk over a serde_json Value, and keeps big integers exact.
                Payload::Raw(json) => json_decoder(py)?.call1(py, (PyBytes::new(py, json),)),
                Payload::Parsed(value) => to_py(py, value).map(Bound::unbind),
            })
            .map(|obj| obj.clone_ref(py))
    }
}

/// `msgspec.json.decode`, looked up once.
fn json_decoder(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static DECODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    DECODE.get_or_try_init(py, || {
        Ok(py.import("msgspec.json")?.getattr("decode")?.unbind())
    })
}

/// CALL (2) or, in 2.1, SEND (6).
#[pyclass(frozen, module = "csms._core", name = "Call")]
pub(super) struct PyCall {
    #[pyo3(get)]
    message_type_id: u64,
    #[pyo3(get)]
    unique_id: String,
    #[pyo3(get)]
    action: String,
    payload: LazyPayload,
}

#[pymethods]
impl PyCall {
    #[getter]
    fn payload(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.payload.get(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "Call(message_type_id={}, unique_id={:?}, action={:?})",
            self.message_type_id, self.unique_id, self.action
        )
    }
}

/// CALLRESULT (3); validate its payload with `Codec.check_response` once matched to a CALL.
#[pyclass(frozen, module = "csms._core", name = "CallResult")]
pub(super) struct PyCallResult {
    #[pyo3(get)]
    unique_id: String,
    payload: LazyPayload,
}

#[pymethods]
impl PyCallResult {
    #[classattr]
    const MESSAGE_TYPE_ID: u64 = mt::CALLRESULT;

    #[getter]
    fn message_type_id(&self) -> u64 {
        mt::CALLRESULT
    }

    #[getter]
    fn payload(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.payload.get(py)
    }

    fn __repr__(&self) -> String {
        format!("CallResult(unique_id={:?})", self.unique_id)
    }
}

/// CALLERROR (4) or, in 2.1, CALLRESULTERROR (5), as the peer wrote it.
#[pyclass(frozen, module = "csms._core", name = "CallError")]
pub(super) struct PyCallError {
    #[pyo3(get)]
    message_type_id: u64,
    #[pyo3(get)]
    unique_id: String,
    #[pyo3(get)]
    code: String,
    #[pyo3(get)]
    description: String,
    details: LazyPayload,
}

#[pymethods]
impl PyCallError {
    #[getter]
    fn details(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.details.get(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "CallError(message_type_id={}, unique_id={:?}, code={:?})",
            self.message_type_id, self.unique_id, self.code
        )
    }
}

/// A frame of a message type the version says to ignore (1.6 and 2.1, Part 4 §4.1.3).
#[pyclass(frozen, module = "csms._core", name = "Ignored")]
pub(super) struct PyIgnored {
    #[pyo3(get)]
    message_type_id: u64,
    #[pyo3(get)]
    unique_id: Option<String>,
}

#[pymethods]
impl PyIgnored {
    fn __repr__(&self) -> String {
        format!(
            "Ignored(message_type_id={}, unique_id={:?})",
            self.message_type_id, self.unique_id
        )
    }
}

fn request(py: Python<'_>, type_id: u64, r: Request) -> PyResult<Py<PyAny>> {
    let call = PyCall {
        message_type_id: type_id,
        unique_id: r.unique_id,
        action: r.action,
        payload: LazyPayload::new(r.payload),
    };
    Ok(Py::new(py, call)?.into_any())
}

fn failure(py: Python<'_>, type_id: u64, f: Failure) -> PyResult<Py<PyAny>> {
    let err = PyCallError {
        message_type_id: type_id,
        unique_id: f.unique_id,
        code: f.code,
        description: f.description,
        details: LazyPayload::new(Payload::Parsed(f.details)),
    };
    Ok(Py::new(py, err)?.into_any())
}

fn frame_to_py(py: Python<'_>, frame: Frame) -> PyResult<Py<PyAny>> {
    match frame {
        Frame::Call(r) => request(py, mt::CALL, r),
        Frame::Send(r) => request(py, mt::SEND, r),
        Frame::CallResult(r) => Ok(Py::new(
            py,
            PyCallResult {
                unique_id: r.unique_id,
                payload: LazyPayload::new(r.payload),
            },
        )?
        .into_any()),
        Frame::CallError(f) => failure(py, mt::CALLERROR, f),
        Frame::CallResultError(f) => failure(py, mt::CALLRESULTERROR, f),
        Frame::Ignored {
            message_type_id,
            unique_id,
        } => Ok(Py::new(
            py,
            PyIgnored {
                message_type_id,
                unique_id,
            },
        )?
        .into_any()),
    }
}

/// What `Codec.acknowledge` returns: the CALL's unique id and action, and its answer.
type Acknowledged<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
);

/// Decoder and encoder for one OCPP version; build one per version and share it.
#[pyclass(frozen, module = "csms._core", name = "Codec")]
pub(super) struct PyCodec {
    inner: Codec,
}

impl PyCodec {
    fn err(&self, py: Python<'_>, e: &CoreError) -> PyErr {
        to_pyerr(py, e, self.inner.version())
    }

    fn bytes<'py>(
        &self,
        py: Python<'py>,
        out: Result<Vec<u8>, CoreError>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        out.map(|b| PyBytes::new(py, &b))
            .map_err(|e| self.err(py, &e))
    }
}

fn optional_details(details: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Value>> {
    details.map(from_py).transpose()
}

#[pymethods]
impl PyCodec {
    #[new]
    #[pyo3(signature = (version, schema_dir, *, role = "csms", max_frame_bytes = 65536, max_depth = 32, validate_formats = false, validate_outbound = true))]
    fn new(
        version: &str,
        schema_dir: PathBuf,
        role: &str,
        max_frame_bytes: usize,
        max_depth: usize,
        validate_formats: bool,
        validate_outbound: bool,
    ) -> PyResult<Self> {
        let version = OcppVersion::parse(version).ok_or_else(|| {
            PyValueError::new_err(format!("unsupported OCPP version {version:?}"))
        })?;
        let role = match role {
            "csms" => Role::Csms,
            "station" => Role::Station,
            other => {
                return Err(PyValueError::new_err(format!(
                    "role must be 'csms' or 'station', not {other:?}"
                )))
            }
        };
        let schemas = SchemaSet::load(version, &schema_dir, SchemaOptions { validate_formats })
            .map_err(|e| load_error(&e))?;
        let limits = Limits {
            max_frame_bytes,
            max_depth,
        };
        Ok(PyCodec {
            inner: Codec::new(schemas, limits, role, validate_outbound),
        })
    }

    /// The version label: "1.6", "2.0.1" or "2.1".
    #[getter]
    fn version(&self) -> &'static str {
        self.inner.version().label()
    }

    /// The WebSocket subprotocol token, e.g. "ocpp2.0.1".
    #[getter]
    fn subprotocol(&self) -> &'static str {
        self.inner.version().subprotocol()
    }

    #[getter]
    fn max_frame_bytes(&self) -> usize {
        self.inner.limits().max_frame_bytes
    }

    /// Names of the version's actions, all or only those `sender` ("station"/"csms") initiates.
    #[pyo3(signature = (sender = None))]
    fn actions(&self, sender: Option<&str>) -> PyResult<Vec<&'static str>> {
        let who = match sender {
            None => None,
            Some("station") => Some(crate::action::Initiator::Station),
            Some("csms") => Some(crate::action::Initiator::Csms),
            Some(other) => return Err(PyValueError::new_err(format!("unknown sender {other:?}"))),
        };
        Ok(crate::action::actions(self.inner.version())
            .into_iter()
            .filter(|a| who.is_none_or(|w| a.may_be_sent_by(w)))
            .map(|a| a.name)
            .collect())
    }

    /// Decode one received text frame into a `Call`, `CallResult`, `CallError` or `Ignored`.
    fn decode(&self, py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
        let frame = self.inner.decode(data).map_err(|e| self.err(py, &e))?;
        frame_to_py(py, frame)
    }

    /// `(unique_id, action, answer)` when `data` is a valid CALL of an action answered with
    /// the empty payload: a key of `acknowledged` whose value is None (always) or bytes that
    /// `data` does not contain (a conservative test for what would make the answer non-empty:
    /// TransactionEvent's `"idToken"`). Also None when the action is in `checked` and the frame
    /// may hold a negative value (M30: the caller reads the payload). Otherwise None, and the
    /// caller decodes the frame with `decode`. One crossing instead of decode, the handler and
    /// `encode_call_result`.
    fn acknowledge<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        acknowledged: &Bound<'py, PyDict>,
        checked: &Bound<'py, PyFrozenSet>,
    ) -> PyResult<Option<Acknowledged<'py>>> {
        let mut name: Option<Bound<'py, PyString>> = None;
        let wanted = |action: &str| {
            let text = PyString::new(py, action);
            let empty = match acknowledged.get_item(&text) {
                Ok(Some(unless)) if unless.is_none() => true,
                Ok(Some(unless)) => unless
                    .cast::<PyBytes>()
                    .is_ok_and(|marker| memchr::memmem::find(data, marker.as_bytes()).is_none()),
                _ => false,
            };
            name = Some(text);
            empty
        };
        let Some((id, _, answer)) = self.inner.acknowledge(data, wanted) else {
            return Ok(None);
        };
        let Some(action) = name else {
            return Ok(None);
        };
        if checked.contains(&action)? && crate::negative::may_hold_negative(data) {
            return Ok(None);
        }
        Ok(Some((
            PyString::new(py, id),
            action,
            PyBytes::new(py, &answer),
        )))
    }

    /// Decode several frames in one crossing; a refused frame yields its exception object
    /// in place (not raised), so one bad frame does not hide the others.
    fn decode_batch(&self, py: Python<'_>, frames: Vec<PyBackedBytes>) -> PyResult<Vec<Py<PyAny>>> {
        frames
            .iter()
            .map(|data| match self.inner.decode(data) {
                Ok(frame) => frame_to_py(py, frame),
                Err(e) => Ok(self.err(py, &e).into_value(py).into_any()),
            })
            .collect()
    }
    /// Validate a CALLRESULT against the response schema of the CALL it answers.
    fn check_response(
        &self,
        py: Python<'_>,
        action: &str,
        result: &Bound<'_, PyCallResult>,
    ) -> PyResult<()> {
        let r = result.get();
        self.inner
            .check_response(action, &r.unique_id, &r.payload.payload)
            .map_err(|e| self.err(py, &e))
    }

    /// Validate a request payload we would send (e.g. an operator's command).
    fn check_request(
        &self,
        py: Python<'_>,
        action: &str,
        payload: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let value = from_py(payload)?;
        self.inner
            .check_request(action, &value)
            .map_err(|e| self.err(py, &e))
    }

    fn encode_call<'py>(
        &self,
        py: Python<'py>,
        unique_id: &str,
        action: &str,
        payload: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let value = from_py(payload)?;
        self.bytes(py, self.inner.encode_call(unique_id, action, &value))
    }

    fn encode_send<'py>(
        &self,
        py: Python<'py>,
        unique_id: &str,
        action: &str,
        payload: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let value = from_py(payload)?;
        self.bytes(py, self.inner.encode_send(unique_id, action, &value))
    }

    fn encode_call_result<'py>(
        &self,
        py: Python<'py>,
        action: &str,
        unique_id: &str,
        payload: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let value = from_py(payload)?;
        self.bytes(py, self.inner.encode_call_result(action, unique_id, &value))
    }

    #[pyo3(signature = (unique_id, code, description = "", details = None))]
    fn encode_call_error<'py>(
        &self,
        py: Python<'py>,
        unique_id: &str,
        code: &str,
        description: &str,
        details: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let details = optional_details(details)?;
        self.bytes(
            py,
            self.inner
                .encode_call_error(unique_id, code, description, details.as_ref()),
        )
    }

    #[pyo3(signature = (unique_id, code, description = "", details = None))]
    fn encode_call_result_error<'py>(
        &self,
        py: Python<'py>,
        unique_id: &str,
        code: &str,
        description: &str,
        details: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let details = optional_details(details)?;
        self.bytes(
            py,
            self.inner
                .encode_call_result_error(unique_id, code, description, details.as_ref()),
        )
    }

    /// The wire spelling of an error code for this version ("OccurrenceConstraintViolation"
    /// is "OccurenceConstraintViolation" on 1.6).
    fn spell(&self, code: &str) -> PyResult<&'static str> {
        ErrorCode::from_wire(code)
            .map(|c| self.inner.spell(c))
            .ok_or_else(|| PyValueError::new_err(format!("unknown RPC error code {code:?}")))
    }
}
