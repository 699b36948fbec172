//! The `jalon` service: configuration, authentication, the gRPC handlers and
//! the server around them. The binary (`main.rs`) is a thin CLI over this
//! library, and the end-to-end tests build the same [`startup::Application`].

pub mod auth;
pub mod codec_errors;
pub mod config;
pub mod cost_import;
pub mod demo;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod overload;
pub mod scim;
pub mod startup;
pub mod telemetry;
pub mod timeouts;
pub mod webhooks;

pub use startup::Application;

#[cfg(test)]
mod tests {
    /// The README's authorisation table is a copy of `jalon_core::authz::RULES`.
    #[test]
    fn readme_lists_the_rule_of_every_rpc() {
        let readme = include_str!("../../../README.md");
        for (_, rpc, _, note) in jalon_core::authz::RULES {
            let row = format!("| `{rpc}` | {note} |");
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    /// The README's table of event types is a copy of
    /// `jalon_store::events::TYPES`.
    #[test]
    fn readme_lists_every_event_type() {
        let readme = include_str!("../../../README.md");
        for (kind, data) in jalon_store::events::TYPES {
            let row = format!("| `{kind}` | {data} |");
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    /// Every RPC of the API has a rule in the table.
    #[test]
    fn every_rpc_has_an_authorisation_rule() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(jalon_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        for file in set.file {
            for service in file.service {
                for method in &service.method {
                    let rpc = format!("{}/{}", service.name(), method.name());
                    assert!(
                        jalon_core::authz::RULES.iter().any(|(_, r, ..)| *r == rpc),
                        "{rpc} has no authorisation rule"
                    );
                }
            }
        }
    }
}
