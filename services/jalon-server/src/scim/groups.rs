//! `/scim/v2/Groups`: groups of provisioned people; a group's name may map
//! to a role (ProvisioningService), which its members' roles follow.

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use http::StatusCode;
use jalon_core::{
    scim::{GroupName, GroupState},
    values::ExternalRef,
};
use jalon_store::scim::{self as store, Group};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    GROUP_SCHEMA, ListParams, ScimError, ScimState, ctx, etag, filter, if_match, json_body,
    list_response, patch, project, query, resource_response,
};

/// How PATCH paths read on a Group.
const PATCH_SCHEMA: patch::Schema<'static> = patch::Schema {
    core: GROUP_SCHEMA,
    extensions: &[],
    read_only: &["id", "meta", "schemas"],
    multi_valued: &["members"],
    canonical: &[
        "displayName",
        "externalId",
        "members",
        "value",
        "display",
        "type",
    ],
};

fn invalid(field: &str, why: impl std::fmt::Display) -> ScimError {
    ScimError::bad_request("invalidValue", format!("{field}: {why}"))
}

/// A group as SCIM renders it.
pub fn render(group: &Group, base: &str, with_members: bool) -> Value {
    let mut doc = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id.to_string(),
        "displayName": group.display_name,
        "meta": {
            "resourceType": "Group",
            "created": group.create_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "lastModified": group.update_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "version": etag(group.version),
            "location": format!("{base}/Groups/{}", group.id),
        },
    });
    if let Some(external) = &group.external_id {
        doc["externalId"] = json!(external);
    }
    if with_members && !group.members.is_empty() {
        doc["members"] = Value::Array(
            group
                .members
                .iter()
                .map(|m| {
                    json!({
                        "value": m.id.to_string(),
                        "$ref": format!("{base}/Users/{}", m.id),
                        "type": "User",
                    })
                })
                .collect(),
        );
    }
    doc
}

/// What a request's Group body leaves.
pub fn state(doc: &Value) -> Result<GroupState, ScimError> {
    if !doc.is_object() {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "a Group is a JSON object",
        ));
    }
    let display_name = match filter::get_ci(doc, "displayName") {
        Some(Value::String(s)) => GroupName::parse(s).map_err(|e| invalid("displayName", e))?,
        None | Some(Value::Null) => return Err(invalid("displayName", "is required")),
        Some(other) => return Err(invalid("displayName", format!("{other} is not a string"))),
    };
    let external_id = match filter::get_ci(doc, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(ExternalRef::parse(s).map_err(|e| invalid("externalId", e))?)
        }
        Some(other) => return Err(invalid("externalId", format!("{other} is not a string"))),
    };
    let mut members = Vec::new();
    match filter::get_ci(doc, "members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("members[{i}].value");
                if let Some(Value::String(t)) = filter::get_ci(item, "type")
                    && t.eq_ignore_ascii_case("group")
                {
                    return Err(invalid(&field, "groups in groups are not supported"));
                }
                let raw = match filter::get_ci(item, "value") {
                    Some(Value::String(s)) => s.trim().to_owned(),
                    _ => return Err(invalid(&field, "is required")),
                };
                let id = Uuid::try_parse(&raw)
                    .map_err(|_| invalid(&field, "is not the id of a User of this organisation"))?;
                if !members.contains(&id) {
                    members.push(id);
                }
            }
        }
        Some(other) => return Err(invalid("members", format!("{other} is not an array"))),
    }
    Ok(GroupState {
        display_name,
        external_id,
        members,
    })
}

fn group_id(raw: &str) -> Result<Uuid, ScimError> {
    Uuid::try_parse(raw).map_err(|_| ScimError::new(StatusCode::NOT_FOUND, None, "Group not found"))
}

/// Whether the members are wanted in the response.
fn wants_members(params: &ListParams) -> bool {
    let named = |list: &[String]| {
        list.iter().any(|a| {
            let bare = filter::bare_path(a, GROUP_SCHEMA);
            bare == "members" || bare.starts_with("members.")
        })
    };
    if !params.attributes.is_empty() {
        return named(&params.attributes);
    }
    !named(&params.excluded)
}

pub async fn create(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let new = self::state(&body)?;
    let group = store::create_group(ctx.state.store.db(), ctx.by, &new).await?;
    tracing::info!(organisation_id = %ctx.by.organisation_id, group_id = %group.id, "scim group created");
    Ok(resource_response(
        StatusCode::CREATED,
        &render(&group, &ctx.base, true),
    ))
}

pub async fn get(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let params = ListParams::from_query(&query(&request))?;
    let with_members = wants_members(&params);
    let group = store::get_group(
        ctx.state.store.db(),
        ctx.by.organisation_id,
        group_id(&id)?,
        with_members,
    )
    .await?;
    let doc = project(
        render(&group, &ctx.base, with_members),
        &params.attributes,
        &params.excluded,
        GROUP_SCHEMA,
    );
    Ok(resource_response(StatusCode::OK, &doc))
}

async fn list_with(ctx: super::Ctx, params: ListParams) -> Result<Response, ScimError> {
    let filter = params.filter.as_ref().map(filter::groups).transpose()?;
    let with_members = wants_members(&params);
    let (total, groups) = store::list_groups(
        ctx.state.store.db(),
        ctx.by.organisation_id,
        filter.as_ref(),
        params.start_index - 1,
        params.count,
        with_members,
    )
    .await?;
    let resources = groups
        .iter()
        .map(|g| {
            project(
                render(g, &ctx.base, with_members),
                &params.attributes,
                &params.excluded,
                GROUP_SCHEMA,
            )
        })
        .collect();
    Ok(list_response(total, params.start_index, resources))
}

pub async fn list(State(state): State<ScimState>, request: Request) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let params = ListParams::from_query(&query(&request))?;
    list_with(ctx, params).await
}

pub async fn search(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let params = ListParams::from_search(&body)?;
    list_with(ctx, params).await
}

async fn modify_with(
    ctx: super::Ctx,
    id: Uuid,
    version: Option<i64>,
    next: impl FnOnce(&Group) -> Result<GroupState, ScimError> + Send,
) -> Result<Response, ScimError> {
    let mut failure = None;
    let result = store::modify_group(ctx.state.store.db(), ctx.by, id, version, |current| {
        next(current).map_err(|e| {
            failure = Some(e);
            jalon_core::Error::invalid("body", "refused")
        })
    })
    .await;
    let group = match (result, failure) {
        (_, Some(e)) => return Err(e),
        (r, None) => r?,
    };
    Ok(resource_response(
        StatusCode::OK,
        &render(&group, &ctx.base, true),
    ))
}

pub async fn replace(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let id = group_id(&id)?;
    let version = if_match(request.headers())?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let next = self::state(&body)?;
    modify_with(ctx, id, version, move |_| Ok(next)).await
}

pub async fn modify(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let id = group_id(&id)?;
    let version = if_match(request.headers())?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let ops = patch::parse(&body)?;
    let base = ctx.base.clone();
    modify_with(ctx, id, version, move |current| {
        let mut doc = render(current, &base, true);
        patch::apply(&mut doc, &ops, &PATCH_SCHEMA)?;
        self::state(&doc)
    })
    .await
}

pub async fn delete(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let id = group_id(&id)?;
    let version = if_match(request.headers())?;
    store::delete_group(ctx.state.store.db(), ctx.by, id, version).await?;
    tracing::info!(organisation_id = %ctx.by.organisation_id, group_id = %id, "scim group deleted");
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
