//! sea-orm entities: one per table, mirroring the migrations.

pub mod idempotency_key;
pub mod organisation;
pub mod person;
