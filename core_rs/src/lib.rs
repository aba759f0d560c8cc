//! csms-core: the bytes of OCPP-J. Parsing, schema validation and encoding of frames for OCPP 1.6,
//! 2.0.1 and 2.1, with the exact per-version RPC error codes.
//!
//! This crate knows nothing above it: no sockets, no async runtime, no NATS. The Python binding
//! lives in `py/` behind the `python` feature, so the core builds, tests and benchmarks without
//! libpython (`cargo test --no-default-features`).

pub mod action;
pub mod codec;
mod compiled;
mod encode;
pub mod error;
mod fast;
pub mod frame;
pub mod limits;
pub mod negative;
pub mod parse;
pub mod projfold;
mod scan;
pub mod schema;
pub mod version;
pub mod wire;

#[cfg(feature = "python")]
mod py;

pub use codec::{Codec, Role};
pub use error::{CoreError, ErrorCode, Stage};
pub use frame::Frame;
pub use limits::Limits;
pub use schema::{LoadError, SchemaOptions, SchemaSet};
pub use version::{OcppVersion, PayloadKind};
