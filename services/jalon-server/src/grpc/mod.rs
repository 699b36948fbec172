//! One thin file per proto service: validate and convert the request, take
//! the caller from the extensions, authorise, call the store, convert the
//! reply.

pub mod conversions;
pub mod organisations;
pub mod people;
pub mod projects;

use jalon_core::{
    Error, Result,
    authz::{Action, Standing, authorize},
};
use jalon_store::{Store, people::Membership};
use tonic::{Request, Status};
use uuid::Uuid;

use crate::auth::Caller;

/// The authenticated caller of a request (set by the auth interceptor).
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing or invalid credentials"))
}

/// Checks the authorisation table for `action` on a resource of
/// `organisation_id`, and returns the caller's membership there.
pub async fn authorise(
    store: &Store,
    caller: &Caller,
    action: Action,
    organisation_id: Uuid,
) -> Result<Option<Membership>> {
    let membership =
        jalon_store::people::membership(store.db(), organisation_id, &caller.subject).await?;
    let standing = Standing {
        platform_admin: caller.platform_admin,
        role: membership.map(|m| m.role),
    };
    authorize(action, standing, "organisation")?;
    Ok(membership)
}

/// The caller's membership, which `authorise` proved exists for an action
/// restricted to roles.
pub fn member(membership: Option<Membership>) -> Result<Membership> {
    membership.ok_or(Error::NotFound {
        resource: "organisation",
    })
}
