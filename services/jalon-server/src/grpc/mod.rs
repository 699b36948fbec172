//! One thin file per proto service: validate and convert the request, take
//! the caller from the extensions, authorise, call the store, convert the
//! reply.

/// A wire enum value to a domain one: `None` for UNSPECIFIED.
pub(crate) fn from_wire<T: std::str::FromStr>(
    name: Option<&'static str>,
    prefix: &str,
    raw: i32,
) -> Result<Option<T>, String> {
    let name = name.ok_or_else(|| format!("{raw} is not a known value"))?;
    let bare = name.strip_prefix(prefix).unwrap_or(name);
    if bare == "UNSPECIFIED" {
        return Ok(None);
    }
    bare.parse::<T>()
        .map(Some)
        .map_err(|_| format!("{name} is not supported"))
}

/// Conversions between a wire enum and a domain enum of the same names
/// (the wire's carry a prefix): `$from` maps UNSPECIFIED to `None`.
macro_rules! wire_enum {
    ($vis:vis $from:ident, $to:ident, $pb:ty, $domain:ty, $prefix:literal) => {
        $vis fn $from(raw: i32) -> Result<Option<$domain>, String> {
            crate::grpc::from_wire(
                <$pb>::try_from(raw).ok().map(|e| e.as_str_name()),
                $prefix,
                raw,
            )
        }
        $vis fn $to(value: Option<$domain>) -> i32 {
            value
                .and_then(|v| <$pb>::from_str_name(&format!("{}{}", $prefix, v.as_str())))
                .map_or(0, |e| e as i32)
        }
    };
}

pub mod assessments;
pub mod audit;
pub mod conversions;
pub mod events;
pub mod finance;
pub mod gates;
pub mod import;
pub mod kpis;
pub mod organisations;
pub mod people;
pub mod portfolio;
pub mod projects;
pub mod provisioning;
pub mod webhooks;

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
    check_standing(caller, action, membership.as_ref())?;
    Ok(membership)
}

/// The authorisation table's rule for `action`, given the caller's
/// membership already read (as `authorise` reads it).
pub fn check_standing(
    caller: &Caller,
    action: Action,
    membership: Option<&Membership>,
) -> Result<()> {
    let standing = Standing {
        platform_admin: caller.platform_admin,
        role: membership.map(|m| m.role),
    };
    authorize(action, standing, "organisation")
}

/// The caller's membership, which `authorise` proved exists for an action
/// restricted to roles.
pub fn member(membership: Option<Membership>) -> Result<Membership> {
    membership.ok_or(Error::NotFound {
        resource: "organisation",
    })
}

/// The store's view of the caller, for the changes that read the
/// membership and apply the access policy inside their transaction.
pub fn requester(caller: &Caller) -> jalon_store::change::Caller {
    jalon_store::change::Caller {
        subject: caller.subject.clone(),
        platform_admin: caller.platform_admin,
    }
}

/// Whether the member sees the project (the access policy's rule:
/// `jalon_core::authz::sees`).
pub fn visible(membership: &Membership, project: &jalon_core::project::Project) -> bool {
    jalon_core::authz::sees(
        &membership.member(),
        &jalon_core::authz::Parties::of(project),
    )
}

/// The access policy of `action` on a project (see `jalon_core::authz::check`).
pub fn allow(
    membership: &Membership,
    action: Action,
    parties: &jalon_core::authz::Parties,
    resource: &'static str,
) -> Result<()> {
    jalon_core::authz::check(&membership.member(), action, parties, resource)
}

/// A project the caller may see, or NOT_FOUND.
pub async fn visible_project(
    store: &Store,
    membership: &Membership,
    organisation_id: Uuid,
    project_id: Uuid,
) -> Result<jalon_core::project::Project> {
    let project = jalon_store::projects::get(store.db(), organisation_id, project_id).await?;
    if visible(membership, &project) {
        Ok(project)
    } else {
        Err(Error::NotFound {
            resource: "project",
        })
    }
}
