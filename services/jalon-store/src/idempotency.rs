//! Idempotent creates (AIP-155): a `request_id` is claimed in the same
//! transaction as the resource it creates, before the resource is written.

use chrono::Utc;
use jalon_core::{Error, Result};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use crate::{
    entity::idempotency_key as key,
    error::{db_error, unique_violation},
};

/// The message of the internal race error that makes a create retry once.
pub(crate) const RACE: &str = "a request with the same request_id is being processed; retry";

/// A client's `request_id`, where it applies, and what the request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// What the id is unique within, e.g. `people:<organisation id>`.
    pub scope: String,
    pub request_id: Uuid,
    /// A hash of the request without its `request_id`.
    pub fingerprint: String,
}

/// What claiming a key found.
pub(crate) enum Claim {
    /// First time: create the resource with the id given.
    Fresh,
    /// A retry: return this resource.
    Replay(Uuid),
}

pub(crate) async fn claim(
    conn: &impl ConnectionTrait,
    key: Option<&IdempotencyKey>,
    resource_id: Uuid,
) -> Result<Claim> {
    let Some(k) = key else {
        return Ok(Claim::Fresh);
    };
    if let Some(found) = key::Entity::find_by_id((k.scope.clone(), k.request_id))
        .one(conn)
        .await
        .map_err(db_error)?
    {
        if found.fingerprint != k.fingerprint {
            return Err(Error::invalid(
                "request_id",
                "was already used for a different request: use a new request_id",
            ));
        }
        return Ok(Claim::Replay(found.resource_id));
    }
    let row = key::ActiveModel {
        scope: Set(k.scope.clone()),
        request_id: Set(k.request_id),
        fingerprint: Set(k.fingerprint.clone()),
        resource_id: Set(resource_id),
        create_time: Set(Utc::now()),
    };
    match row.insert(conn).await {
        Ok(_) => Ok(Claim::Fresh),
        Err(e) if unique_violation(&e).is_some() => Err(Error::Aborted(RACE.into())),
        Err(e) => Err(db_error(e)),
    }
}

/// Forgets the request ids claimed before `cutoff`; returns how many.
pub async fn purge(conn: &impl ConnectionTrait, cutoff: chrono::DateTime<Utc>) -> Result<u64> {
    let result = key::Entity::delete_many()
        .filter(key::Column::CreateTime.lt(cutoff))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected)
}
