//! The `jalon` service: configuration, authentication, the gRPC handlers and
//! the server around them. The binary (`main.rs`) is a thin CLI over this
//! library, and the end-to-end tests build the same [`startup::Application`].

pub mod auth;
pub mod config;
pub mod error;
pub mod grpc;
pub mod startup;
pub mod telemetry;

pub use startup::Application;
