//! sea-orm entities: one per table, mirroring the migrations.

pub mod assessment_item;
pub mod audit_event;
pub mod audit_head;
pub mod bank_question;
pub mod bank_retirement;
pub mod benefit;
pub mod budget;
pub mod cost;
pub mod gate_condition;
pub mod gate_policy;
pub mod gate_review;
pub mod gate_signature;
pub mod gate_waiver;
pub mod idempotency_key;
pub mod kpi;
pub mod kpi_measurement;
pub mod organisation;
pub mod person;
pub mod portfolio_contribution;
pub mod portfolio_counter;
pub mod project;
pub mod project_alert;
pub mod project_figures;
pub mod project_phase;
pub mod project_tag;
pub mod question_bank;
