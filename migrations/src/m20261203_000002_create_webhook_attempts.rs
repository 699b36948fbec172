//! Every attempt of a webhook delivery (time, HTTP status or error,
//! latency), not only the latest: the delivery log shows them.

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
                    .table(name("webhook_attempts"))
                    .col(uuid(name("id")).primary_key())
                    .col(uuid(name("delivery_id")))
                    .col(integer(name("number")))
                    .col(timestamp_with_time_zone(name("start_time")))
                    .col(integer_null(name("status_code")))
                    .col(big_integer(name("latency_ms")))
                    .col(text_null(name("error")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_attempts_delivery")
                            .from(name("webhook_attempts"), name("delivery_id"))
                            .to(name("webhook_deliveries"), name("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_delivery")
                    .table(name("webhook_attempts"))
                    .col(name("delivery_id"))
                    .col(name("number"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(name("webhook_attempts")).to_owned())
            .await
    }
}
