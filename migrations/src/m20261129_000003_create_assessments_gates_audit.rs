//! Question banks, assessment items, gate reviews (signatures, waivers,
//! conditions, policies) and the audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

fn index(name_: &str, table: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name_).table(name(table));
    for col in cols {
        stmt.col(name(col));
    }
    stmt.to_owned()
}

fn table(t: &str) -> TableCreateStatement {
    Table::create().table(name(t)).to_owned()
}

fn pk(name_: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name_);
    for col in cols {
        stmt.col(name(col));
    }
    stmt.to_owned()
}

fn fk(name_: &str, from: (&str, &str), to: (&str, &str)) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name_)
        .from(name(from.0), name(from.1))
        .to(name(to.0), name(to.1))
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The version of each organisation's question bank (absent: 0, the
        // defaults as shipped).
        manager
            .create_table(
                table("question_banks")
                    .col(pk_uuid("organisation_id"))
                    .col(big_integer("version"))
                    .foreign_key(&mut fk(
                        "fk_question_banks_organisation",
                        ("question_banks", "organisation_id"),
                        ("organisations", "id"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                table("bank_questions")
                    .col(uuid("organisation_id"))
                    .col(string_len("key", 120))
                    .col(string_len("phase", 32))
                    .col(string_len("concern", 32))
                    .col(string_len("kind", 8))
                    .col(integer("weight"))
                    .col(text("text"))
                    .col(big_integer("added_version"))
                    .col(big_integer_null("retired_version"))
                    .primary_key(&mut pk("pk_bank_questions", &["organisation_id", "key"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                table("bank_retirements")
                    .col(uuid("organisation_id"))
                    .col(string_len("key", 120))
                    .col(big_integer("retired_version"))
                    .primary_key(&mut pk("pk_bank_retirements", &["organisation_id", "key"]))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                table("assessment_items")
                    .col(uuid("project_id"))
                    .col(string_len("key", 120))
                    .col(uuid("organisation_id"))
                    .col(string_len("phase", 32))
                    .col(string_len("concern", 32))
                    .col(string_len("kind", 8))
                    .col(integer("weight"))
                    .col(text("text"))
                    .col(big_integer("bank_version"))
                    .col(string_len("status", 16))
                    .col(string_len_null("risk", 8))
                    .col(text("note"))
                    .col(text("evidence_uri"))
                    .col(text("justification"))
                    .col(uuid_null("answered_by"))
                    .col(timestamp_with_time_zone_null("answer_time"))
                    .col(big_integer("version"))
                    .primary_key(&mut pk("pk_assessment_items", &["project_id", "key"]))
                    .foreign_key(&mut fk(
                        "fk_assessment_items_project",
                        ("assessment_items", "project_id"),
                        ("projects", "id"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_assessment_items_phase",
                "assessment_items",
                &["project_id", "phase", "concern"],
            ))
            .await?;
        // The portfolio's risk heat map: open HIGH-risk items per concern and phase.
        manager
            .create_index(index(
                "ix_assessment_items_risk",
                "assessment_items",
                &["organisation_id", "risk", "status"],
            ))
            .await?;

        manager
            .create_table(
                table("gate_reviews")
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(uuid("project_id"))
                    // Set while the review is open, NULL once decided: its
                    // unique index allows one open review per project.
                    .col(uuid_null("open_project_id"))
                    .col(string_len("from_phase", 32))
                    .col(string_len_null("to_phase", 32))
                    .col(string_len("state", 16))
                    .col(uuid_null("requested_by"))
                    .col(timestamp_with_time_zone("request_time"))
                    .col(text("criteria_at_request"))
                    .col(text("signatories"))
                    .col(string_len_null("outcome", 16))
                    .col(text("rationale"))
                    .col(uuid_null("decided_by"))
                    .col(timestamp_with_time_zone_null("decide_time"))
                    .col(text_null("criteria_at_decision"))
                    .col(big_integer("version"))
                    .foreign_key(&mut fk(
                        "fk_gate_reviews_project",
                        ("gate_reviews", "project_id"),
                        ("projects", "id"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("ux_gate_reviews_open", "gate_reviews", &["open_project_id"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_gate_reviews_project",
                "gate_reviews",
                &["organisation_id", "project_id", "request_time"],
            ))
            .await?;

        manager
            .create_table(
                table("gate_signatures")
                    .col(uuid("review_id"))
                    .col(uuid("person_id"))
                    .col(string_len("verdict", 8))
                    .col(text("comment"))
                    .col(timestamp_with_time_zone("sign_time"))
                    .primary_key(&mut pk("pk_gate_signatures", &["review_id", "person_id"]))
                    .foreign_key(&mut fk(
                        "fk_gate_signatures_review",
                        ("gate_signatures", "review_id"),
                        ("gate_reviews", "id"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                table("gate_waivers")
                    .col(uuid("review_id"))
                    .col(string_len("criterion", 64))
                    .col(text("reason"))
                    .col(uuid("waived_by"))
                    .col(timestamp_with_time_zone("waive_time"))
                    .primary_key(&mut pk("pk_gate_waivers", &["review_id", "criterion"]))
                    .foreign_key(&mut fk(
                        "fk_gate_waivers_review",
                        ("gate_waivers", "review_id"),
                        ("gate_reviews", "id"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                table("gate_conditions")
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(uuid("project_id"))
                    .col(uuid("review_id"))
                    .col(text("description"))
                    .col(uuid("owner_id"))
                    .col(date("due_date"))
                    .col(boolean("closed"))
                    .col(text("close_note"))
                    .col(uuid_null("closed_by"))
                    .col(timestamp_with_time_zone_null("close_time"))
                    .foreign_key(&mut fk(
                        "fk_gate_conditions_review",
                        ("gate_conditions", "review_id"),
                        ("gate_reviews", "id"),
                    ))
                    .foreign_key(&mut fk(
                        "fk_gate_conditions_owner",
                        ("gate_conditions", "owner_id"),
                        ("people", "id"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_gate_conditions_project",
                "gate_conditions",
                &["project_id", "closed"],
            ))
            .await?;
        manager
            .create_table(
                table("gate_policies")
                    .col(uuid("organisation_id"))
                    .col(string_len("from_phase", 32))
                    .col(string_len("function", 64))
                    .col(uuid("person_id"))
                    .col(boolean("only_when_personal_data"))
                    .primary_key(&mut pk(
                        "pk_gate_policies",
                        &["organisation_id", "from_phase", "function"],
                    ))
                    .foreign_key(&mut fk(
                        "fk_gate_policies_person",
                        ("gate_policies", "person_id"),
                        ("people", "id"),
                    ))
                    .to_owned(),
            )
            .await?;

        // The audit log and, per organisation, its head: the last sequence
        // numbers and hash, updated in the same transaction as each event.
        manager
            .create_table(
                table("audit_heads")
                    .col(pk_uuid("organisation_id"))
                    .col(big_integer("last_sequence"))
                    .col(big_integer("last_chain_sequence"))
                    .col(string_len("last_hash", 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                table("audit_events")
                    .col(pk_uuid("id"))
                    .col(uuid("organisation_id"))
                    .col(big_integer("sequence"))
                    .col(uuid_null("project_id"))
                    .col(uuid_null("actor_person_id"))
                    .col(string_len("actor_subject", 255))
                    .col(string_len("action", 64))
                    .col(string_len("resource_type", 64))
                    .col(string_len("resource_id", 200))
                    .col(text("before_json"))
                    .col(text("after_json"))
                    .col(timestamp_with_time_zone("time"))
                    .col(big_integer("chain_sequence"))
                    .col(string_len("previous_hash", 64))
                    .col(string_len("hash", 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_audit_events_sequence",
                    "audit_events",
                    &["organisation_id", "sequence"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_audit_events_chain",
                "audit_events",
                &["organisation_id", "chain_sequence"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_audit_events_project",
                "audit_events",
                &["organisation_id", "project_id", "sequence"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_audit_events_actor",
                "audit_events",
                &["organisation_id", "actor_person_id", "sequence"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_audit_events_time",
                "audit_events",
                &["organisation_id", "time"],
            ))
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
