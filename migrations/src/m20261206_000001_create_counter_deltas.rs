//! The portfolio's counters without a hot row (issue 11): a write appends
//! the differences it makes to the organisation's counters as rows of
//! `portfolio_counter_deltas` (an insert: concurrent writers never wait for
//! each other there), a background task folds them into
//! `portfolio_counters`, and a reader sums both.

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
                    .table(name("portfolio_counter_deltas"))
                    .col(uuid(name("id")).primary_key())
                    .col(uuid(name("organisation_id")))
                    .col(string_len(name("name"), 80))
                    .col(big_integer(name("value")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_portfolio_counter_deltas_organisation")
                    .table(name("portfolio_counter_deltas"))
                    .col(name("organisation_id"))
                    .col(name("name"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(name("portfolio_counter_deltas"))
                    .to_owned(),
            )
            .await
    }
}
