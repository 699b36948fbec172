//! sea-orm entities: one per table, mirroring the migrations.

pub mod idempotency_key;
pub mod organisation;
pub mod person;
pub mod project;
pub mod project_phase;
pub mod project_tag;
