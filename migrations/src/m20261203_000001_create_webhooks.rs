//! Webhooks (issue 14): endpoints an organisation registers, and the
//! deliveries of its outbox's events to them.
//!
//! `webhook_endpoints.cursor` is the last outbox position of the
//! organisation already turned into deliveries for the endpoint: the
//! delivery worker reads the outbox after it, writes one delivery per
//! matching event and moves the cursor, in one transaction under the
//! endpoint's row lock (positions are given in commit order, so nothing
//! is skipped). A delivery is claimed by one replica at a time through a
//! lease (`lease_token`, `lease_expire_time`): a replica that dies
//! mid-delivery leaves a lease that expires, and another takes it up.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn name(s: &str) -> Alias {
    Alias::new(s)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("webhook_endpoints"))
                    .col(uuid(name("id")).primary_key())
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("url"), 2048))
                    .col(string_len(name("description"), 500))
                    .col(text(name("event_types")))
                    .col(boolean(name("enabled")))
                    .col(text_null(name("disabled_reason")))
                    .col(timestamp_with_time_zone_null(name("disable_time")))
                    .col(string_len(name("secret"), 128))
                    .col(string_len_null(name("previous_secret"), 128))
                    .col(timestamp_with_time_zone_null(name(
                        "previous_secret_expire_time",
                    )))
                    .col(big_integer(name("cursor")))
                    .col(timestamp_with_time_zone_null(name("failing_since")))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .col(timestamp_with_time_zone(name("update_time")))
                    .col(big_integer(name("version")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_endpoints_organisation")
                            .from(name("webhook_endpoints"), name("organisation_id"))
                            .to(name("organisations"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_endpoints_organisation")
                    .table(name("webhook_endpoints"))
                    .col(name("organisation_id"))
                    .col(name("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("webhook_deliveries"))
                    .col(uuid(name("id")).primary_key())
                    .col(uuid(name("organisation_id")))
                    .col(uuid(name("endpoint_id")))
                    .col(uuid(name("event_id")))
                    .col(big_integer(name("event_position")))
                    .col(string_len(name("event_type"), 64))
                    .col(text(name("body")))
                    .col(string_len(name("state"), 16))
                    .col(integer(name("attempts")))
                    .col(timestamp_with_time_zone(name("next_attempt_time")))
                    .col(timestamp_with_time_zone(name("give_up_time")))
                    .col(uuid_null(name("lease_token")))
                    .col(timestamp_with_time_zone_null(name("lease_expire_time")))
                    .col(timestamp_with_time_zone_null(name("last_attempt_time")))
                    .col(integer_null(name("last_status_code")))
                    .col(big_integer_null(name("last_latency_ms")))
                    .col(text_null(name("last_error")))
                    .col(timestamp_with_time_zone(name("create_time")))
                    .col(timestamp_with_time_zone(name("update_time")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_endpoint")
                            .from(name("webhook_deliveries"), name("endpoint_id"))
                            .to(name("webhook_endpoints"), name("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One delivery per endpoint and event: a fan-out repeated after a
        // crash writes nothing twice.
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_deliveries_endpoint_event")
                    .table(name("webhook_deliveries"))
                    .col(name("endpoint_id"))
                    .col(name("event_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The worker's claim: pending deliveries by due time.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_due")
                    .table(name("webhook_deliveries"))
                    .col(name("state"))
                    .col(name("next_attempt_time"))
                    .to_owned(),
            )
            .await?;
        // The delivery log of an endpoint, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_endpoint")
                    .table(name("webhook_deliveries"))
                    .col(name("endpoint_id"))
                    .col(name("id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(name("webhook_deliveries")).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(name("webhook_endpoints")).to_owned())
            .await
    }
}
