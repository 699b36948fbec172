//! `/scim/v2/Users`: a SCIM User is a person of the token's organisation,
//! linked to the identity provider.

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use http::StatusCode;
use jalon_core::{
    scim::{UserName, UserState},
    values::{DisplayName, Email, ExternalRef, ShortText},
};
use jalon_store::scim::{self as store, User};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    ENTERPRISE_USER, ListParams, ScimError, ScimState, USER_SCHEMA, ctx, etag, filter, if_match,
    json_body, list_response, patch, project, query, resource_response,
};

const NAME_PARTS: &[&str] = &[
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
];

/// How PATCH paths read on a User.
pub const PATCH_SCHEMA: patch::Schema<'static> = patch::Schema {
    core: USER_SCHEMA,
    extensions: &[ENTERPRISE_USER],
    read_only: &["id", "meta", "groups", "schemas"],
    multi_valued: &["emails"],
    canonical: &[
        "userName",
        "externalId",
        "name",
        "displayName",
        "emails",
        "active",
        "title",
        "formatted",
        "familyName",
        "givenName",
        "middleName",
        "honorificPrefix",
        "honorificSuffix",
        "value",
        "type",
        "primary",
        "display",
        "department",
        "manager",
    ],
};

fn invalid(field: &str, why: impl std::fmt::Display) -> ScimError {
    ScimError::bad_request("invalidValue", format!("{field}: {why}"))
}

/// A user as SCIM renders it.
pub fn render(user: &User, base: &str) -> Value {
    let p = &user.person;
    let profile: Value = serde_json::from_str(&user.profile_json).unwrap_or_else(|_| json!({}));
    let mut doc = Map::new();
    doc.insert("schemas".into(), json!([USER_SCHEMA, ENTERPRISE_USER]));
    doc.insert("id".into(), json!(p.id.to_string()));
    if let Some(external) = &p.external_id {
        doc.insert("externalId".into(), json!(external));
    }
    doc.insert("userName".into(), json!(user.user_name));
    for key in ["name", "displayName", "emails"] {
        if let Some(v) = profile.get(key) {
            doc.insert(key.into(), v.clone());
        }
    }
    doc.insert("active".into(), json!(p.active));
    if !p.job_title.is_empty() {
        doc.insert("title".into(), json!(p.job_title));
    }
    let mut enterprise = Map::new();
    if !p.department.is_empty() {
        enterprise.insert("department".into(), json!(p.department));
    }
    if let Some(manager) = p.manager_id {
        enterprise.insert(
            "manager".into(),
            json!({"value": manager.to_string(), "$ref": format!("{base}/Users/{manager}")}),
        );
    }
    if !enterprise.is_empty() {
        doc.insert(ENTERPRISE_USER.into(), Value::Object(enterprise));
    }
    if !user.groups.is_empty() {
        doc.insert(
            "groups".into(),
            Value::Array(
                user.groups
                    .iter()
                    .map(|g| {
                        json!({
                            "value": g.id.to_string(),
                            "display": g.display_name,
                            "$ref": format!("{base}/Groups/{}", g.id),
                            "type": "direct",
                        })
                    })
                    .collect(),
            ),
        );
    }
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": p.create_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "lastModified": p.update_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "version": etag(p.version),
            "location": format!("{base}/Users/{}", p.id),
        }),
    );
    Value::Object(doc)
}

/// A boolean as identity providers send it: `true`, or Entra's `"True"`.
pub fn boolean(value: &Value, field: &str) -> Result<bool, ScimError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(invalid(field, format!("{other} is not a boolean"))),
    }
}

fn optional_string(doc: &Value, name: &str) -> Result<Option<String>, ScimError> {
    match filter::get_ci(doc, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(name, format!("{other} is not a string"))),
    }
}

/// What a request's User body (a POST's or PUT's, or a PATCH's result)
/// leaves on the person. `current` is the user replaced: an absent
/// `active` keeps theirs (a PUT that omits it suspends no one), and
/// without any e-mail address the person keeps theirs.
pub fn state(doc: &Value, current: Option<&User>) -> Result<UserState, ScimError> {
    if !doc.is_object() {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "a User is a JSON object",
        ));
    }
    let user_name = match filter::get_ci(doc, "userName") {
        Some(Value::String(s)) => UserName::parse(s).map_err(|e| invalid("userName", e))?,
        None | Some(Value::Null) => {
            return Err(invalid("userName", "is required"));
        }
        Some(other) => return Err(invalid("userName", format!("{other} is not a string"))),
    };
    let external_id = optional_string(doc, "externalId")?
        .map(|e| ExternalRef::parse(&e).map_err(|why| invalid("externalId", why)))
        .transpose()?;
    let mut name = Map::new();
    match filter::get_ci(doc, "name") {
        None | Some(Value::Null) => {}
        Some(Value::Object(parts)) => {
            for part in NAME_PARTS {
                match parts.iter().find(|(k, _)| k.eq_ignore_ascii_case(part)) {
                    None | Some((_, Value::Null)) => {}
                    Some((_, Value::String(s))) if s.trim().is_empty() => {}
                    Some((_, Value::String(s))) => {
                        ShortText::parse(s).map_err(|e| invalid(&format!("name.{part}"), e))?;
                        name.insert((*part).to_owned(), json!(s.trim()));
                    }
                    Some((_, other)) => {
                        return Err(invalid(
                            &format!("name.{part}"),
                            format!("{other} is not a string"),
                        ));
                    }
                }
            }
        }
        Some(other) => return Err(invalid("name", format!("{other} is not an object"))),
    }
    let display = optional_string(doc, "displayName")?;
    let mut emails = Vec::new();
    let mut primary = None;
    match filter::get_ci(doc, "emails") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("emails[{i}].value");
                let raw = match filter::get_ci(item, "value") {
                    Some(Value::String(s)) => s.trim().to_owned(),
                    _ => return Err(invalid(&field, "is required")),
                };
                let email = Email::parse(&raw).map_err(|e| invalid(&field, e))?;
                let mut element = Map::new();
                element.insert("value".into(), json!(raw));
                if let Some(t) = optional_string(item, "type")? {
                    element.insert("type".into(), json!(t));
                }
                if let Some(d) = optional_string(item, "display")? {
                    element.insert("display".into(), json!(d));
                }
                let is_primary = match filter::get_ci(item, "primary") {
                    None | Some(Value::Null) => false,
                    Some(v) => boolean(v, &format!("emails[{i}].primary"))?,
                };
                if is_primary {
                    if primary.is_some() {
                        return Err(invalid("emails", "at most one address is primary"));
                    }
                    primary = Some(email.clone());
                    element.insert("primary".into(), json!(true));
                } else if filter::get_ci(item, "primary").is_some() {
                    element.insert("primary".into(), json!(false));
                }
                emails.push((email, Value::Object(element)));
            }
        }
        Some(other) => return Err(invalid("emails", format!("{other} is not an array"))),
    }
    let email = match primary.or_else(|| emails.first().map(|(e, _)| e.clone())) {
        Some(e) => e,
        None => match Email::parse(user_name.as_str()) {
            Ok(e) => e,
            Err(_) => match current {
                Some(c) => Email::parse(&c.person.email).map_err(|e| invalid("emails", e))?,
                None => {
                    return Err(invalid(
                        "emails",
                        "an e-mail address is required (or a userName that is one)",
                    ));
                }
            },
        },
    };
    let formatted = name
        .get("formatted")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let given_family = [name.get("givenName"), name.get("familyName")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let shown = display
        .clone()
        .or(formatted)
        .or((!given_family.is_empty()).then_some(given_family))
        .unwrap_or_else(|| user_name.as_str().to_owned());
    let display_name = DisplayName::parse(&shown).map_err(|e| invalid("displayName", e))?;
    let active = match filter::get_ci(doc, "active") {
        None | Some(Value::Null) => current.is_none_or(|c| c.person.active),
        Some(v) => boolean(v, "active")?,
    };
    let title = optional_string(doc, "title")?.unwrap_or_default();
    let title = ShortText::parse(&title).map_err(|e| invalid("title", e))?;
    let enterprise = filter::get_ci(doc, ENTERPRISE_USER);
    let department = match enterprise {
        Some(ext) => optional_string(ext, "department")?.unwrap_or_default(),
        None => String::new(),
    };
    let department = ShortText::parse(&department)
        .map_err(|e| invalid(&format!("{ENTERPRISE_USER}:department"), e))?;
    let manager_field = format!("{ENTERPRISE_USER}:manager.value");
    let manager_id = match enterprise.and_then(|ext| filter::get_ci(ext, "manager")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(m @ Value::Object(_)) => match filter::get_ci(m, "value") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(other) => return Err(invalid(&manager_field, format!("{other} is not a string"))),
        },
        Some(other) => return Err(invalid(&manager_field, format!("{other} is not an object"))),
    }
    .map(|raw| {
        Uuid::try_parse(&raw).map_err(|_| {
            invalid(
                &manager_field,
                "is not the id of a User of this organisation",
            )
        })
    })
    .transpose()?;
    let mut profile = Map::new();
    if !name.is_empty() {
        profile.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = display {
        profile.insert("displayName".into(), json!(d.trim()));
    }
    if !emails.is_empty() {
        profile.insert(
            "emails".into(),
            Value::Array(emails.into_iter().map(|(_, v)| v).collect()),
        );
    }
    Ok(UserState {
        user_name,
        external_id,
        display_name,
        profile_json: Value::Object(profile).to_string(),
        email,
        title,
        department,
        manager_id,
        active,
    })
}

fn user_id(raw: &str) -> Result<Uuid, ScimError> {
    Uuid::try_parse(raw).map_err(|_| ScimError::new(StatusCode::NOT_FOUND, None, "User not found"))
}

pub async fn create(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let new = self::state(&body, None)?;
    let user = store::create_user(
        ctx.state.store.db(),
        ctx.by,
        ctx.state.subject_attribute,
        &new,
    )
    .await?;
    tracing::info!(organisation_id = %ctx.by.organisation_id, person_id = %user.person.id, "scim user created");
    Ok(resource_response(
        StatusCode::CREATED,
        &render(&user, &ctx.base),
    ))
}

pub async fn get(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let params = ListParams::from_query(&query(&request))?;
    let user = store::get_user(ctx.state.store.db(), ctx.by.organisation_id, user_id(&id)?).await?;
    let doc = project(
        render(&user, &ctx.base),
        &params.attributes,
        &params.excluded,
        USER_SCHEMA,
    );
    Ok(resource_response(StatusCode::OK, &doc))
}

async fn list_with(ctx: super::Ctx, params: ListParams) -> Result<Response, ScimError> {
    let filter = params.filter.as_ref().map(filter::users).transpose()?;
    let (total, users) = store::list_users(
        ctx.state.store.db(),
        ctx.by.organisation_id,
        filter.as_ref(),
        params.start_index - 1,
        params.count,
    )
    .await?;
    let resources = users
        .iter()
        .map(|u| {
            project(
                render(u, &ctx.base),
                &params.attributes,
                &params.excluded,
                USER_SCHEMA,
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

pub async fn replace(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let id = user_id(&id)?;
    let version = if_match(request.headers())?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let mut failure = None;
    let result = store::modify_user(
        ctx.state.store.db(),
        ctx.by,
        ctx.state.subject_attribute,
        id,
        version,
        |current| {
            self::state(&body, Some(current)).map_err(|e| {
                failure = Some(e);
                jalon_core::Error::invalid("body", "refused")
            })
        },
    )
    .await;
    let user = match (result, failure) {
        (_, Some(e)) => return Err(e),
        (r, None) => r?,
    };
    Ok(resource_response(StatusCode::OK, &render(&user, &ctx.base)))
}

pub async fn modify(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let id = user_id(&id)?;
    let version = if_match(request.headers())?;
    let body = json_body(request, ctx.state.max_body_bytes).await?;
    let ops = patch::parse(&body)?;
    let base = ctx.base.clone();
    let mut failure = None;
    let result = store::modify_user(
        ctx.state.store.db(),
        ctx.by,
        ctx.state.subject_attribute,
        id,
        version,
        |current| {
            let mut doc = render(current, &base);
            let next = patch::apply(&mut doc, &ops, &PATCH_SCHEMA)
                .and_then(|()| self::state(&doc, Some(current)));
            next.map_err(|e| {
                failure = Some(e);
                jalon_core::Error::invalid("body", "refused")
            })
        },
    )
    .await;
    let user = match (result, failure) {
        (_, Some(e)) => return Err(e),
        (r, None) => r?,
    };
    Ok(resource_response(StatusCode::OK, &render(&user, &ctx.base)))
}

pub async fn delete(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let id = user_id(&id)?;
    let version = if_match(request.headers())?;
    store::delete_user(ctx.state.store.db(), ctx.by, id, version).await?;
    tracing::info!(organisation_id = %ctx.by.organisation_id, person_id = %id, "scim user deleted");
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_body_becomes_a_state() {
        let s = state(
            &json!({
                "userName": "grace@acme.example",
                "name": {"givenName": "Grace", "familyName": "Hopper", "nickName": "ignored"},
                "emails": [{"value": "g@other.example"}, {"value": "grace@acme.example", "primary": "True"}],
                "active": "False",
                "title": "Admiral",
                ENTERPRISE_USER: {"department": "Navy", "manager": ""},
            }),
            None,
        )
        .unwrap();
        assert_eq!(
            s.email.as_str(),
            "grace@acme.example",
            "the primary address"
        );
        assert_eq!(s.display_name.as_str(), "Grace Hopper");
        assert!(!s.active);
        assert_eq!(s.title.as_str(), "Admiral");
        assert_eq!(s.department.as_str(), "Navy");
        assert_eq!(s.manager_id, None);
        assert!(!s.profile_json.contains("nickName"));
    }

    #[test]
    fn a_user_name_that_is_an_address_stands_for_emails() {
        let s = state(&json!({"userName": "ada@acme.example"}), None).unwrap();
        assert_eq!(s.email.as_str(), "ada@acme.example");
        assert!(s.active, "active by default");
        let e = state(&json!({"userName": "ada"}), None).unwrap_err();
        assert!(e.detail.starts_with("emails"), "{e:?}");
        let e = state(&json!({"emails": [{"value": "a@b.co"}]}), None).unwrap_err();
        assert!(e.detail.starts_with("userName"), "{e:?}");
        let e = state(
            &json!({"userName": "a", "emails": [{"value": "a@b.co", "primary": true}, {"value": "c@b.co", "primary": true}]}),
            None,
        )
        .unwrap_err();
        assert!(e.detail.contains("primary"), "{e:?}");
    }
}
