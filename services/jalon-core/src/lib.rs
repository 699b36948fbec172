//! Jalon's domain: the rules of the white paper as pure Rust.
//!
//! No I/O lives here: no tokio, no database, no gRPC. The store persists these
//! types, the server carries them over the wire, and every rule is unit-tested
//! beside its code.

pub mod assessment;
pub mod authz;
pub mod error;
pub mod finance;
pub mod gate;
pub mod kpi;
pub mod organisation;
pub mod person;
pub mod portfolio;
pub mod project;
pub mod question_bank;
pub mod scim;
pub mod stats;
pub mod values;
pub mod webhook;

pub use error::{Error, FieldViolation, PreconditionViolation, Result};
