//! What the service provider supports (RFC 7643 §5-§7, RFC 7644 §4):
//! `ServiceProviderConfig`, `ResourceTypes` and `Schemas`, describing
//! exactly the attributes Jalon keeps. No `/Bulk`, no sorting, no password
//! changes.

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use http::StatusCode;
use serde_json::{Value, json};

use super::{
    ENTERPRISE_USER, GROUP_SCHEMA, MAX_RESULTS, ScimError, ScimState, USER_SCHEMA, ctx,
    list_response, scim_json,
};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Clone, Copy)]
struct A {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
    description: &'static str,
}

const fn a(name: &'static str, kind: &'static str, description: &'static str) -> A {
    A {
        name,
        kind,
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        description,
    }
}

fn attr(a: A, sub: &[Value], references: &[&str]) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.kind,
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability,
        "returned": a.returned,
        "uniqueness": a.uniqueness,
    });
    if !sub.is_empty() {
        v["subAttributes"] = Value::Array(sub.to_vec());
    }
    if !references.is_empty() {
        v["referenceTypes"] = json!(references);
    }
    v
}

fn text(name: &'static str, description: &'static str) -> Value {
    attr(a(name, "string", description), &[], &[])
}

fn meta(resource_type: &str, location: String) -> Value {
    json!({"resourceType": resource_type, "location": location})
}

fn user_schema(base: &str) -> Value {
    let name_parts = [
        text("formatted", "The full name, formatted for display."),
        text("familyName", "The family name."),
        text("givenName", "The given name."),
        text("middleName", "The middle name(s)."),
        text("honorificPrefix", "The honorific prefix (Ms.)."),
        text("honorificSuffix", "The honorific suffix (III)."),
    ];
    let email_parts = [
        attr(
            A {
                required: true,
                ..a(
                    "value",
                    "string",
                    "An e-mail address; the primary one (or the first) is the person's.",
                )
            },
            &[],
            &[],
        ),
        text("display", "A label of the address."),
        {
            let mut t = text("type", "work, home or other.");
            t["canonicalValues"] = json!(["work", "home", "other"]);
            t
        },
        attr(
            a(
                "primary",
                "boolean",
                "Whether this is the person's address.",
            ),
            &[],
            &[],
        ),
    ];
    let group_parts = [
        attr(
            A {
                mutability: "readOnly",
                ..a("value", "string", "The group's id.")
            },
            &[],
            &[],
        ),
        attr(
            A {
                mutability: "readOnly",
                ..a("$ref", "reference", "The group's URI.")
            },
            &[],
            &["Group"],
        ),
        attr(
            A {
                mutability: "readOnly",
                ..a("display", "string", "The group's displayName.")
            },
            &[],
            &[],
        ),
        attr(
            A {
                mutability: "readOnly",
                ..a("type", "string", "direct.")
            },
            &[],
            &[],
        ),
    ];
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A person of the organisation.",
        "attributes": [
            attr(A { required: true, uniqueness: "server", ..a("userName", "string", "Unique in the organisation, regardless of case; the person's token subject when auth.scim_subject_attribute = userName.") }, &[], &[]),
            attr(a("name", "complex", "The person's name."), &name_parts, &[]),
            text("displayName", "The name shown in Jalon (else name.formatted, given and family names, or userName)."),
            text("title", "The person's job title."),
            attr(A { multi: true, required: true, ..a("emails", "complex", "E-mail addresses; the primary one (or the first) is the person's. Required unless userName is an e-mail address.") }, &email_parts, &[]),
            attr(A { required: true, ..a("active", "boolean", "false deactivates the person: they lose access at once. A person is always active or not: a PUT without it keeps the current state.") }, &[], &[]),
            attr(A { multi: true, mutability: "readOnly", ..a("groups", "complex", "The groups the person is in (set through Groups).") }, &group_parts, &[]),
        ],
        "meta": meta("Schema", format!("{base}/Schemas/{USER_SCHEMA}")),
    })
}

fn enterprise_schema(base: &str) -> Value {
    let manager_parts = [
        text("value", "The manager's User id."),
        attr(a("$ref", "reference", "The manager's URI."), &[], &["User"]),
        attr(
            A {
                mutability: "readOnly",
                ..a("displayName", "string", "The manager's name.")
            },
            &[],
            &[],
        ),
    ];
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": ENTERPRISE_USER,
        "name": "EnterpriseUser",
        "description": "Enterprise User",
        "attributes": [
            text("department", "The person's department."),
            attr(a("manager", "complex", "The person's manager, a User of the organisation."), &manager_parts, &[]),
        ],
        "meta": meta("Schema", format!("{base}/Schemas/{ENTERPRISE_USER}")),
    })
}

fn group_schema(base: &str) -> Value {
    let member_parts = [
        attr(
            A {
                mutability: "immutable",
                ..a("value", "string", "The member's User id.")
            },
            &[],
            &[],
        ),
        attr(
            A {
                mutability: "immutable",
                ..a("$ref", "reference", "The member's URI.")
            },
            &[],
            &["User"],
        ),
        {
            let mut t = attr(
                A {
                    mutability: "immutable",
                    ..a(
                        "type",
                        "string",
                        "User (groups in groups are not supported).",
                    )
                },
                &[],
                &[],
            );
            t["canonicalValues"] = json!(["User"]);
            t
        },
    ];
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "A group of people; its name may map to a role.",
        "attributes": [
            attr(A { required: true, uniqueness: "server", ..a("displayName", "string", "Unique in the organisation, regardless of case; what role mappings name.") }, &[], &[]),
            attr(A { multi: true, ..a("members", "complex", "The people in the group.") }, &member_parts, &[]),
        ],
        "meta": meta("Schema", format!("{base}/Schemas/{GROUP_SCHEMA}")),
    })
}

fn schemas_list(base: &str) -> Vec<Value> {
    vec![
        user_schema(base),
        enterprise_schema(base),
        group_schema(base),
    ]
}

fn resource_types_list(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RT_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "People of the organisation",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}],
            "meta": meta("ResourceType", format!("{base}/ResourceTypes/User")),
        }),
        json!({
            "schemas": [RT_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Groups, whose names map to roles",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": meta("ResourceType", format!("{base}/ResourceTypes/Group")),
        }),
    ]
}

pub async fn service_provider_config(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [SPC_SCHEMA],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Provisioning token",
                "description": "An organisation's provisioning token (ProvisioningService/CreateProvisioningToken) as the bearer token",
                "primary": true,
            }],
            "meta": meta("ServiceProviderConfig", format!("{}/ServiceProviderConfig", ctx.base)),
        }),
    ))
}

pub async fn resource_types(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let all = resource_types_list(&ctx.base);
    Ok(list_response(all.len() as u64, 1, all))
}

pub async fn resource_type(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    resource_types_list(&ctx.base)
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id.as_str()))
        .map(|r| scim_json(StatusCode::OK, &r))
        .ok_or_else(|| {
            ScimError::new(
                StatusCode::NOT_FOUND,
                None,
                format!("no resource type {id}"),
            )
        })
}

pub async fn schemas(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    let all = schemas_list(&ctx.base);
    Ok(list_response(all.len() as u64, 1, all))
}

pub async fn schema(
    State(state): State<ScimState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ScimError> {
    let ctx = ctx(state, &request).await?;
    schemas_list(&ctx.base)
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id.as_str()))
        .map(|s| scim_json(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no schema {id}")))
}

/// `POST /.search` across resource types (RFC 7644 §3.4.3): not supported;
/// search `/Users/.search` or `/Groups/.search`.
pub async fn root_search(
    State(state): State<ScimState>,
    request: Request,
) -> Result<Response, ScimError> {
    ctx(state, &request).await?;
    Err(ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "searching several resource types at once is not supported: POST /Users/.search or /Groups/.search",
    ))
}

pub async fn bulk(State(state): State<ScimState>, request: Request) -> Result<Response, ScimError> {
    ctx(state, &request).await?;
    Err(ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "bulk operations are not supported (ServiceProviderConfig: bulk.supported = false)",
    ))
}
