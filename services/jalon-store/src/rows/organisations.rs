//! Organisation rows.

use jalon_core::{Error, Result, organisation::Organisation};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::{entity::organisation as org, error::db_error};

pub(crate) fn from_model(m: org::Model) -> Organisation {
    Organisation {
        id: m.id,
        display_name: m.display_name,
        slug: m.slug,
        default_currency: m.default_currency,
        discount_rate: m.discount_rate,
        fiscal_year_start_month: u8::try_from(m.fiscal_year_start_month).unwrap_or(1),
        external_ref: m.external_ref,
        create_time: m.create_time,
        update_time: m.update_time,
        delete_time: m.delete_time,
        version: m.version,
        gate_overdue_days: u32::try_from(m.gate_overdue_days).unwrap_or(365),
    }
}

/// Reads an organisation, deleted or not.
#[tracing::instrument(skip(conn))]
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> Result<Organisation> {
    org::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map(from_model)
        .ok_or(Error::NotFound {
            resource: "organisation",
        })
}
