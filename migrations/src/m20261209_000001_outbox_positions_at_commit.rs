//! Outbox positions taken at commit on PostgreSQL (issue 11). A writer
//! used to take its events' positions from the organisation's
//! `event_heads` row as the last statement of its transaction and hold that
//! row's lock through the round trip of its COMMIT: with 16 writers of one
//! organisation they waited 24 ms each there (56 ms before the last
//! statements were merged into one). Now a writer inserts its events with a
//! pending (negative) position and a deferred constraint trigger takes the
//! real positions when the transaction commits, inside the server: the head
//! is held for the commit itself, no client round trip. Positions keep their
//! guarantee (assigned in commit order, numbered 1, 2, ... without gap).
//! Rows inserted with a position already taken (older binaries, SQLite's
//! path) are left alone by the trigger. SQLite has a single writer: nothing
//! to do there.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE SEQUENCE IF NOT EXISTS outbox_pending_positions",
    r#"CREATE OR REPLACE FUNCTION jalon_outbox_take_position() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE taken bigint;
BEGIN
    INSERT INTO event_heads (organisation_id, position, purged_through)
    VALUES (NEW.organisation_id, 1, 0)
    ON CONFLICT (organisation_id) DO UPDATE SET position = event_heads.position + 1
    RETURNING position INTO taken;
    UPDATE outbox_events SET position = taken
    WHERE organisation_id = NEW.organisation_id AND position = NEW.position;
    RETURN NULL;
END
$$"#,
    "DROP TRIGGER IF EXISTS outbox_take_position ON outbox_events",
    "CREATE CONSTRAINT TRIGGER outbox_take_position AFTER INSERT ON outbox_events \
     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.position < 0) \
     EXECUTE FUNCTION jalon_outbox_take_position()",
];

const DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS outbox_take_position ON outbox_events",
    "DROP FUNCTION IF EXISTS jalon_outbox_take_position()",
    "DROP SEQUENCE IF EXISTS outbox_pending_positions",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}
