//! OCPP versions, their WebSocket subprotocol tokens and the message types each one defines.

/// An OCPP-J version this crate speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OcppVersion {
    V16,
    V201,
    V21,
}

/// Whether a schema describes the request or the response of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    Request,
    Response,
}

impl OcppVersion {
    pub const ALL: [OcppVersion; 3] = [OcppVersion::V16, OcppVersion::V201, OcppVersion::V21];

    /// The version's label as operators write it: `1.6`, `2.0.1`, `2.1`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            OcppVersion::V16 => "1.6",
            OcppVersion::V201 => "2.0.1",
            OcppVersion::V21 => "2.1",
        }
    }

    /// The WebSocket subprotocol token (OCPP-J 1.6 §3.1.2, 2.x Part 4 §3.1.2 Table 1).
    #[must_use]
    pub fn subprotocol(self) -> &'static str {
        match self {
            OcppVersion::V16 => "ocpp1.6",
            OcppVersion::V201 => "ocpp2.0.1",
            OcppVersion::V21 => "ocpp2.1",
        }
    }

    /// Parse a label (`2.0.1`) or a subprotocol token (`ocpp2.0.1`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let label = text.strip_prefix("ocpp").unwrap_or(text);
        OcppVersion::ALL.into_iter().find(|v| v.label() == label)
    }

    /// The file name of an action's schema as the OCA publishes it: 1.6 names requests `X.json`,
    /// 2.x `XRequest.json`; responses are `XResponse.json` everywhere.
    #[must_use]
    pub fn schema_file_name(self, action: &str, kind: PayloadKind) -> String {
        match (self, kind) {
            (OcppVersion::V16, PayloadKind::Request) => format!("{action}.json"),
            (_, PayloadKind::Request) => format!("{action}Request.json"),
            (_, PayloadKind::Response) => format!("{action}Response.json"),
        }
    }

    /// Whether the version defines CALLRESULTERROR (5) and SEND (6): only 2.1 does (Part 4 §4.2).
    #[must_use]
    pub fn has_send_and_result_error(self) -> bool {
        self == OcppVersion::V21
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_subprotocols() {
        for v in OcppVersion::ALL {
            assert_eq!(OcppVersion::parse(v.label()), Some(v));
            assert_eq!(OcppVersion::parse(v.subprotocol()), Some(v));
        }
        assert_eq!(OcppVersion::parse("ocpp2.0"), None);
        assert_eq!(OcppVersion::parse("OCPP1.6"), None);
    }

    #[test]
    fn schema_file_names_follow_the_oca_convention() {
        assert_eq!(
            OcppVersion::V16.schema_file_name("Heartbeat", PayloadKind::Request),
            "Heartbeat.json"
        );
        assert_eq!(
            OcppVersion::V201.schema_file_name("Heartbeat", PayloadKind::Request),
            "HeartbeatRequest.json"
        );
        assert_eq!(
            OcppVersion::V21.schema_file_name("Heartbeat", PayloadKind::Response),
            "HeartbeatResponse.json"
        );
    }
}
