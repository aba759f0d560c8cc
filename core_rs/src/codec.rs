//! One version's full decode/encode: structure (`parse`), action table, schemas (`schema`).

use crate::action::{Delivery, Initiator};
use crate::encode;
use crate::error::{bounded, CoreError, ErrorCode, Stage};
use crate::fast;
use crate::frame::{message_type as mt, Frame, Payload};
use crate::limits::Limits;
use crate::parse::{parse_frame, MAX_UNIQUE_ID_CHARS};
use crate::schema::SchemaSet;
use crate::version::{OcppVersion, PayloadKind};
use serde_json::Value;

/// Which side of the connection we play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Csms,
    Station,
}

impl Role {
    fn me(self) -> Initiator {
        match self {
            Role::Csms => Initiator::Csms,
            Role::Station => Initiator::Station,
        }
    }

    fn peer(self) -> Initiator {
        match self {
            Role::Csms => Initiator::Station,
            Role::Station => Initiator::Csms,
        }
    }
}

/// Decoder and encoder for one OCPP version, shared by every connection of that version.
pub struct Codec {
    schemas: SchemaSet,
    limits: Limits,
    role: Role,
    validate_outbound: bool,
}

#[cold]
fn internal(e: &serde_json::Error) -> CoreError {
    CoreError::new(
        Stage::Payload,
        ErrorCode::InternalError,
        format!("cannot encode: {e}"),
    )
}

impl Codec {
    #[must_use]
    pub fn new(schemas: SchemaSet, limits: Limits, role: Role, validate_outbound: bool) -> Self {
        Codec {
            schemas,
            limits,
            role,
            validate_outbound,
        }
    }

    #[must_use]
    pub fn version(&self) -> OcppVersion {
        self.schemas.version()
    }

    #[must_use]
    pub fn schemas(&self) -> &SchemaSet {
        &self.schemas
    }

    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decode one inbound text frame. CALL and SEND payloads are validated against their
    /// request schema; a CALLRESULT's payload is validated later by [`Codec::check_response`],
    /// once the caller has matched it to the action of its CALL.
    ///
    /// # Errors
    /// A [`CoreError`] carrying the code, id and message type for the reply.
    pub fn decode(&self, bytes: &[u8]) -> Result<Frame, CoreError> {
        if bytes.len() <= self.limits.max_frame_bytes {
            let peer = self.role.peer();
            if let Some(frame) = fast::decode(bytes, &self.schemas, peer, self.limits.max_depth) {
                return Ok(frame);
            }
        }
        self.decode_reference(bytes)
    }

    /// The gateway's shortcut for CALLs whose answer is always the empty payload: when `bytes`
    /// is a valid CALL (the fast path's checks, exactly those of [`Codec::decode`]) of an
    /// action `wanted` accepts, its unique id, its action and the CALLRESULT `[3, id, {}]`
    /// (validated outbound like any answer). `None` for everything else, errors included: the
    /// caller decodes the frame the general way, which answers them.
    pub fn acknowledge<'b>(
        &self,
        bytes: &'b [u8],
        wanted: impl FnOnce(&str) -> bool,
    ) -> Option<(&'b str, &'b str, Vec<u8>)> {
        if bytes.len() > self.limits.max_frame_bytes {
            return None;
        }
        let peer = self.role.peer();
        let (id, action) =
            fast::call_if(bytes, &self.schemas, peer, self.limits.max_depth, wanted)?;
        let answer = self
            .encode_call_result(action, id, &Value::Object(serde_json::Map::new()))
            .ok()?;
        Some((id, action, answer))
    }

    /// Decode without the fast path: serde_json + the jsonschema crate only. Same contract as
    /// [`Codec::decode`]; the differential tests and the fuzz run hold the two to agreement.
    ///
    /// # Errors
    /// As [`Codec::decode`].
    pub fn decode_reference(&self, bytes: &[u8]) -> Result<Frame, CoreError> {
        let frame = parse_frame(bytes, self.version(), &self.limits)?;
        match &frame {
            Frame::Call(req) => {
                self.check_inbound(mt::CALL, &req.unique_id, &req.action, &req.payload)?
            }
            Frame::Send(req) => {
                self.check_inbound(mt::SEND, &req.unique_id, &req.action, &req.payload)?
            }
            _ => {}
        }
        Ok(frame)
    }

    fn check_inbound(
        &self,
        type_id: u64,
        id: &str,
        action: &str,
        payload: &Payload,
    ) -> Result<(), CoreError> {
        let tag = |e: CoreError| e.with_frame(Some(type_id), Some(id));
        self.check_action(action, type_id, self.role.peer())
            .map_err(tag)?;
        self.schemas
            .validate_payload(action, PayloadKind::Request, payload, self.limits.max_depth)
            .map_err(tag)
    }

    /// Unknown action → NotImplemented; known but not for this sender or this message type →
    /// NotSupported (reliability.md §5.3 M13–M16).
    fn check_action(&self, action: &str, type_id: u64, sender: Initiator) -> Result<(), CoreError> {
        let version = self.version().label();
        let Some(spec) = self.schemas.spec(action) else {
            return Err(CoreError::new(
                Stage::Action,
                ErrorCode::NotImplemented,
                format!(
                    "unknown OCPP {version} action {:?}",
                    bounded(action.to_owned(), 40)
                ),
            ));
        };
        if !spec.may_be_sent_by(sender) {
            return Err(CoreError::new(
                Stage::Action,
                ErrorCode::NotSupported,
                format!("{action} is not sent by the {sender:?} in OCPP {version}"),
            ));
        }
        let wanted = if type_id == mt::SEND {
            Delivery::Send
        } else {
            Delivery::Call
        };
        if spec.delivery != wanted {
            return Err(CoreError::new(
                Stage::Action,
                ErrorCode::NotSupported,
                format!(
                    "{action} is a {:?} message in OCPP {version}",
                    spec.delivery
                ),
            ));
        }
        Ok(())
    }

    /// Validate the CALLRESULT payload a peer sent for our CALL of `action`.
    ///
    /// # Errors
    /// A payload-stage [`CoreError`] (2.1 answers it with CALLRESULTERROR, FR.06).
    pub fn check_response(
        &self,
        action: &str,
        id: &str,
        payload: &Payload,
    ) -> Result<(), CoreError> {
        self.schemas
            .validate_payload(
                action,
                PayloadKind::Response,
                payload,
                self.limits.max_depth,
            )
            .map_err(|e| e.with_frame(Some(mt::CALLRESULT), Some(id)))
    }

    /// Validate a request payload we are about to send (used by the operator API to refuse
    /// an invalid command before anything reaches the station).
    ///
    /// # Errors
    /// Action- or payload-stage [`CoreError`].
    pub fn check_request(&self, action: &str, payload: &Value) -> Result<(), CoreError> {
        self.check_action(action, mt::CALL, self.role.me())?;
        self.schemas.validate(action, PayloadKind::Request, payload)
    }

    fn check_outbound(
        &self,
        action: &str,
        kind: PayloadKind,
        frame: &[u8],
        payload: std::ops::Range<usize>,
    ) -> Result<(), CoreError> {
        let json = frame.get(payload).unwrap_or_default();
        self.schemas.validate_json(action, kind, json, usize::MAX)
    }

    fn check_outbound_id(id: &str) -> Result<(), CoreError> {
        if id.is_empty() || id.chars().nth(MAX_UNIQUE_ID_CHARS).is_some() {
            return Err(CoreError::new(
                Stage::Frame,
                ErrorCode::InternalError,
                "message ids are 1 to 36 characters",
            ));
        }
        Ok(())
    }

    /// `[2, id, action, payload]`, the request validated first.
    ///
    /// # Errors
    /// [`CoreError`] if the id, action or payload is not valid for this version and role.
    pub fn encode_call(
        &self,
        id: &str,
        action: &str,
        payload: &Value,
    ) -> Result<Vec<u8>, CoreError> {
        Self::check_outbound_id(id)?;
        self.check_action(action, mt::CALL, self.role.me())?;
        let (out, range) =
            encode::request(mt::CALL, id, action, payload).map_err(|e| internal(&e))?;
        self.check_outbound(action, PayloadKind::Request, &out, range)?;
        Ok(out)
    }

    /// `[6, id, action, payload]` (2.1 only).
    ///
    /// # Errors
    /// [`CoreError`] if the version has no SEND or the action is not a SEND of ours.
    pub fn encode_send(
        &self,
        id: &str,
        action: &str,
        payload: &Value,
    ) -> Result<Vec<u8>, CoreError> {
        Self::check_outbound_id(id)?;
        self.check_action(action, mt::SEND, self.role.me())?;
        let (out, range) =
            encode::request(mt::SEND, id, action, payload).map_err(|e| internal(&e))?;
        if self.validate_outbound {
            self.check_outbound(action, PayloadKind::Request, &out, range)?;
        }
        Ok(out)
    }

    /// `[3, id, payload]`; the payload is checked against `action`'s response schema when
    /// outbound validation is on (always in tests), so a handler cannot answer out of spec.
    ///
    /// # Errors
    /// [`CoreError`] if the payload does not conform.
    pub fn encode_call_result(
        &self,
        action: &str,
        id: &str,
        payload: &Value,
    ) -> Result<Vec<u8>, CoreError> {
        Self::check_outbound_id(id)?;
        let (out, range) = encode::result(id, payload).map_err(|e| internal(&e))?;
        if self.validate_outbound {
            self.check_outbound(action, PayloadKind::Response, &out, range)?;
        }
        Ok(out)
    }

    /// `[4, id, code, description, details]`. The id is written as given ("-1" included).
    ///
    /// # Errors
    /// Only if serialisation fails, which it cannot for these types.
    pub fn encode_call_error(
        &self,
        id: &str,
        code: &str,
        description: &str,
        details: Option<&Value>,
    ) -> Result<Vec<u8>, CoreError> {
        encode::failure(mt::CALLERROR, id, code, description, details).map_err(|e| internal(&e))
    }

    /// `[5, id, code, description, details]` (2.1 only, FR.06).
    ///
    /// # Errors
    /// [`CoreError`] on a version without CALLRESULTERROR.
    pub fn encode_call_result_error(
        &self,
        id: &str,
        code: &str,
        description: &str,
        details: Option<&Value>,
    ) -> Result<Vec<u8>, CoreError> {
        if !self.version().has_send_and_result_error() {
            return Err(CoreError::new(
                Stage::Frame,
                ErrorCode::InternalError,
                format!("OCPP {} has no CALLRESULTERROR", self.version().label()),
            ));
        }
        encode::failure(mt::CALLRESULTERROR, id, code, description, details)
            .map_err(|e| internal(&e))
    }

    /// The wire spelling of `code` for this version.
    #[must_use]
    pub fn spell(&self, code: ErrorCode) -> &'static str {
        code.spelling(self.version())
    }
}
