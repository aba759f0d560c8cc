//! Python face of [`crate::wire`]: the gateway's HPUB builder and PubAck scanner.

use crate::wire::{self, Frame, Origin};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(exchange_message, m)?)?;
    m.add_function(wrap_pyfunction!(scan_acks, m)?)?;
    Ok(())
}

fn text<'a>(data: &'a [u8], what: &str) -> PyResult<&'a str> {
    std::str::from_utf8(data).map_err(|_| PyValueError::new_err(format!("{what} is not UTF-8")))
}

/// The HPUB command storing a station's CALL (event `seq`) and our answer (event `seq + 1`) as
/// one message; see `csms._core.pyi`. ValueError when a frame is not UTF-8.
#[pyfunction]
#[pyo3(signature = (
    subject, reply_prefix, token, node_id, session_id, station_id, ocpp_version, unique_id, action,
    seq, call, call_at_ns, answer_type, answer, answer_at_ns
))]
#[allow(clippy::too_many_arguments)]
fn exchange_message<'py>(
    py: Python<'py>,
    subject: &str,
    reply_prefix: &str,
    token: u64,
    node_id: &str,
    session_id: &str,
    station_id: &str,
    ocpp_version: &str,
    unique_id: &str,
    action: &str,
    seq: u64,
    call: &[u8],
    call_at_ns: i64,
    answer_type: u8,
    answer: &[u8],
    answer_at_ns: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let origin = Origin {
        node_id,
        session_id,
        station_id,
        ocpp_version,
    };
    let call = Frame {
        seq,
        inbound: true,
        message_type: 2,
        raw: text(call, "the CALL")?,
        at_ns: call_at_ns,
    };
    let answer = Frame {
        seq: seq
            .checked_add(1)
            .ok_or_else(|| PyValueError::new_err("seq out of range"))?,
        inbound: false,
        message_type: answer_type,
        raw: text(answer, "the answer")?,
        at_ns: answer_at_ns,
    };
    let (head, headers, body) = wire::exchange_parts(
        subject,
        reply_prefix,
        token,
        &origin,
        unique_id,
        action,
        &call,
        &answer,
    );
    let parts: [&[u8]; 4] = [&head, &headers, &body, b"\r\n"];
    let size = parts.iter().map(|p| p.len()).sum();
    PyBytes::new_with(py, size, |buffer| {
        let mut at = 0;
        for part in parts {
            if let Some(slot) = buffer.get_mut(at..at + part.len()) {
                slot.copy_from_slice(part);
            }
            at += part.len();
        }
        Ok(())
    })
}

/// `(position after the last PubAck read, [(token, stream seq), ...])` of the PubAcks in `data`
/// from `start` on.
#[pyfunction]
fn scan_acks(data: &[u8], start: usize, prefix: &[u8]) -> (usize, Vec<(u64, u64)>) {
    let found = data
        .get(start..)
        .map(|rest| wire::scan_acks(rest, prefix))
        .unwrap_or(wire::Acks {
            consumed: 0,
            acks: Vec::new(),
        });
    (start.saturating_add(found.consumed), found.acks)
}
