//! The `jalon.v1` API: generated messages, clients and servers, and the file
//! descriptor set served by reflection.

/// Version 1 of the API.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("jalon.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every proto in `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jalon_descriptor.bin"));

/// Fully qualified names of the services of the API, as health and reflection
/// know them.
pub const SERVICE_NAMES: &[&str] = &[
    "jalon.v1.OrganisationService",
    "jalon.v1.PersonService",
    "jalon.v1.ProjectService",
    "jalon.v1.AssessmentService",
    "jalon.v1.GateService",
    "jalon.v1.AuditService",
    "jalon.v1.KpiService",
    "jalon.v1.FinanceService",
    "jalon.v1.PortfolioService",
    "jalon.v1.EventService",
    "jalon.v1.WebhookService",
    "jalon.v1.ProvisioningService",
];
