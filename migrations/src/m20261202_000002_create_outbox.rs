//! The outbox (issue 14): every change writes the events other systems
//! follow (`EventService.WatchEvents`, webhooks) in its own transaction.
//!
//! Each organisation's events carry a position (1, 2, ...) taken from
//! `event_heads` at the very end of the writing transaction, under that
//! row's lock: positions are therefore assigned in commit order, and a
//! reader that has seen position N has seen every event up to N (a higher
//! position never commits before a lower one). `purged_through` is the
//! highest position the retention purge has deleted: a reader resuming at
//! or below it has lost history.

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
                    .table(name("event_heads"))
                    .col(uuid(name("organisation_id")).primary_key())
                    .col(big_integer(name("position")))
                    .col(big_integer(name("purged_through")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_event_heads_organisation")
                            .from(name("event_heads"), name("organisation_id"))
                            .to(name("organisations"), name("id"))
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("outbox_events"))
                    .col(uuid(name("organisation_id")))
                    .col(big_integer(name("position")))
                    .col(uuid(name("id")).unique_key())
                    .col(string_len(name("type"), 64))
                    .col(uuid_null(name("project_id")))
                    .col(string_len(name("subject"), 128))
                    .col(uuid_null(name("actor_person_id")))
                    .col(string_len(name("actor_subject"), 256))
                    .col(timestamp_with_time_zone(name("time")))
                    .col(text(name("data")))
                    .primary_key(
                        Index::create()
                            .col(name("organisation_id"))
                            .col(name("position")),
                    )
                    .to_owned(),
            )
            .await?;
        // The retention purge deletes by time.
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_events_time")
                    .table(name("outbox_events"))
                    .col(name("time"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(name("outbox_events")).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(name("event_heads")).to_owned())
            .await
    }
}
