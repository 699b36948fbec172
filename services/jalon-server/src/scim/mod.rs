//! The SCIM 2.0 service provider (RFC 7643/7644) at `/scim/v2/`, on the
//! gRPC port: Users (people), Groups (role mappings), and the discovery
//! endpoints. A request carries an organisation's provisioning token as
//! its bearer token and reaches that organisation's resources only.
//!
//! The routes are an axum router that [`ScimLayer`] puts in front of the
//! gRPC-Web layer: `/scim/` paths go to it, everything else to gRPC.

mod discovery;
pub mod filter;
mod groups;
pub mod patch;
mod users;

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jalon_core::{Error, scim::SubjectAttribute};
use jalon_store::{Store, provisioning::Provisioner};
use serde_json::{Value, json};

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The content type of every response.
pub const SCIM_JSON: &str = "application/scim+json";
/// Where the endpoint lives.
pub const PREFIX: &str = "/scim/v2";
/// The most resources a list returns (`count` above it is lowered).
pub const MAX_RESULTS: u64 = 1000;
/// The page size when a list names no `count`.
pub const DEFAULT_COUNT: u64 = 100;

/// What the handlers share.
#[derive(Clone)]
pub struct ScimState {
    pub store: Store,
    pub subject_attribute: SubjectAttribute,
    /// The largest body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn internal(detail: &str) -> Self {
        tracing::error!(detail, "scim internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid provisioning token is required (Authorization: Bearer <token>)",
        )
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
    }
}

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(v) => ScimError::bad_request(
                "invalidValue",
                v.iter()
                    .map(|f| format!("{}: {}", f.field, f.description))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Error::NotFound { resource } => ScimError::not_found(resource),
            Error::AlreadyExists(m) => ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), m),
            Error::PermissionDenied(m) => ScimError::new(StatusCode::FORBIDDEN, None, m),
            Error::FailedPrecondition(v) => ScimError::new(
                StatusCode::CONFLICT,
                None,
                v.iter()
                    .map(|p| format!("{} ({}): {}", p.kind, p.subject, p.description))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Error::Aborted(m) if m.contains("etag") => ScimError::new(
                StatusCode::PRECONDITION_FAILED,
                None,
                format!("{m} (If-Match is not the current version)"),
            ),
            Error::Aborted(m) | Error::Unavailable(m) => {
                ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, m)
            }
            Error::Unauthenticated => ScimError::unauthorized(),
            Error::Internal(cause) => ScimError::internal(&cause),
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut response = scim_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"jalon-scim\""),
            );
        }
        response
    }
}

/// A JSON response of SCIM's content type.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

/// A single resource's response, with its ETag (and Location when made).
pub fn resource_response(status: StatusCode, body: &Value) -> Response {
    let mut response = scim_json(status, body);
    if let Some(version) = body.pointer("/meta/version").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(version)
    {
        response.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(location) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(location)
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The version an `If-Match` header asks for: `None` without one (or
/// `*`); a value that names no version of ours matches none (412).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ScimError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<i64>().map(Some).map_err(|_| {
        ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("If-Match {text:?} is not a version of this resource"),
        )
    })
}

/// The weak ETag of a version.
pub fn etag(version: i64) -> String {
    jalon_core::organisation::etag(version)
}

/// The endpoint's absolute base URL as the client reached it (behind a
/// proxy: `X-Forwarded-Proto` and `X-Forwarded-Host`).
fn base_url(request: &Request) -> String {
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let proto = header("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}{PREFIX}")
}

/// One request's context: who asks, and where the endpoint is.
pub struct Ctx {
    pub state: ScimState,
    pub by: Provisioner,
    pub base: String,
}

/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
}

/// The query parameters of a request.
pub fn query(request: &Request) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Reads a request's JSON body (any of SCIM's and JSON's content types).
async fn json_body(request: Request, limit: usize) -> Result<Value, ScimError> {
    if let Some(ct) = request.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !(ct.starts_with(SCIM_JSON) || ct.starts_with("application/json")) {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                format!("send {SCIM_JSON} or application/json, not {ct}"),
            ));
        }
    }
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the body is larger than {limit} bytes (server.max_message_bytes)"),
            )
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::bad_request("invalidSyntax", format!("the body is not JSON: {e}")))
}

/// Paging and projection of a list or search.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: Option<filter::Raw>,
    /// 1-based.
    pub start_index: u64,
    pub count: u64,
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_index(raw: &str, name: &str) -> Result<i64, ScimError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ScimError::bad_request("invalidValue", format!("{name} must be an integer")))
}

impl ListParams {
    fn new(
        filter: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        attributes: Vec<String>,
        excluded: Vec<String>,
    ) -> Result<Self, ScimError> {
        let filter = match filter.map(str::trim) {
            Some(f) if !f.is_empty() => Some(filter::parse(f)?),
            _ => None,
        };
        Ok(Self {
            filter,
            // RFC 7644 §3.4.2.4: below 1 is 1; a negative count is 0.
            start_index: start_index.unwrap_or(1).max(1) as u64,
            count: count
                .map_or(DEFAULT_COUNT, |c| c.max(0) as u64)
                .min(MAX_RESULTS),
            attributes,
            excluded,
        })
    }

    /// From a GET's query string.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, ScimError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        Self::new(
            get("filter"),
            get("startIndex")
                .map(|v| parse_index(v, "startIndex"))
                .transpose()?,
            get("count").map(|v| parse_index(v, "count")).transpose()?,
            get("attributes").map(split_list).unwrap_or_default(),
            get("excludedAttributes")
                .map(split_list)
                .unwrap_or_default(),
        )
    }

    /// From a `.search` body (RFC 7644 §3.4.3).
    pub fn from_search(body: &Value) -> Result<Self, ScimError> {
        let schemas_ok = filter::get_ci(body, "schemas")
            .and_then(Value::as_array)
            .is_none_or(|s| s.iter().any(|v| v.as_str() == Some(SEARCH_SCHEMA)));
        if !schemas_ok {
            return Err(ScimError::bad_request(
                "invalidSyntax",
                format!("a search request's schemas include {SEARCH_SCHEMA}"),
            ));
        }
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            match filter::get_ci(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                    ScimError::bad_request("invalidValue", format!("{name} must be an integer"))
                }),
                Some(Value::String(s)) => parse_index(s, name).map(Some),
                Some(_) => Err(ScimError::bad_request(
                    "invalidValue",
                    format!("{name} must be an integer"),
                )),
            }
        };
        let names = |name: &str| -> Vec<String> {
            match filter::get_ci(body, name) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Some(Value::String(s)) => split_list(s),
                _ => Vec::new(),
            }
        };
        Self::new(
            filter::get_ci(body, "filter").and_then(Value::as_str),
            int("startIndex")?,
            int("count")?,
            names("attributes"),
            names("excludedAttributes"),
        )
    }
}

/// A ListResponse of resources already rendered.
pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// Keeps the attributes asked for (`attributes`) or drops those not wanted
/// (`excludedAttributes`); `id` and `schemas` always stay (RFC 7643 §7,
/// returned "always"). Paths may carry their schema URN and a
/// sub-attribute (`name.givenName`).
pub fn project(doc: Value, attributes: &[String], excluded: &[String], core: &str) -> Value {
    let Value::Object(all) = doc else {
        return doc;
    };
    let split = |path: &str| -> (Option<String>, String, Option<String>) {
        let lower = path.to_ascii_lowercase();
        let core_prefix = format!("{}:", core.to_ascii_lowercase());
        let ext_prefix = ENTERPRISE_USER.to_ascii_lowercase();
        let (ext, rest) = if let Some(r) = lower.strip_prefix(&core_prefix) {
            (None, r.to_owned())
        } else if let Some(r) = lower.strip_prefix(&ext_prefix) {
            (
                Some(ENTERPRISE_USER.to_owned()),
                r.trim_start_matches(':').to_owned(),
            )
        } else {
            (None, lower)
        };
        match rest.split_once('.') {
            Some((a, s)) => (ext, a.to_owned(), Some(s.to_owned())),
            None => (ext, rest, None),
        }
    };
    let always = |k: &str| k == "id" || k == "schemas";
    if !attributes.is_empty() {
        let mut out = serde_json::Map::new();
        for (k, v) in &all {
            if always(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        for path in attributes {
            let (ext, attr, sub) = split(path);
            let (container_key, source) = match &ext {
                Some(e) => match all.get(e) {
                    Some(Value::Object(o)) => (Some(e.clone()), o),
                    _ => continue,
                },
                None => (None, &all),
            };
            let Some((key, value)) = source
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&attr))
                .map(|(k, v)| (k.clone(), v.clone()))
            else {
                if ext.is_some()
                    && attr.is_empty()
                    && let Some(v) = all.get(ENTERPRISE_USER)
                {
                    out.insert(ENTERPRISE_USER.into(), v.clone());
                }
                continue;
            };
            let picked = match (&sub, &value) {
                (Some(s), Value::Object(o)) => {
                    let mut m = serde_json::Map::new();
                    if let Some((sk, sv)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case(s)) {
                        m.insert(sk.clone(), sv.clone());
                    }
                    Value::Object(m)
                }
                (Some(s), Value::Array(items)) => Value::Array(
                    items
                        .iter()
                        .map(|i| {
                            let mut m = serde_json::Map::new();
                            if let Some((sk, sv)) = i
                                .as_object()
                                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(s)))
                            {
                                m.insert(sk.clone(), sv.clone());
                            }
                            Value::Object(m)
                        })
                        .collect(),
                ),
                _ => value,
            };
            let target = match &container_key {
                Some(c) => out
                    .entry(c.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new())),
                None => {
                    merge_into(&mut out, key, picked);
                    continue;
                }
            };
            if let Value::Object(t) = target {
                merge_into(t, key, picked);
            }
        }
        return Value::Object(out);
    }
    let mut out = all;
    for path in excluded {
        let (ext, attr, sub) = split(path);
        if ext.is_none() && always(&attr) {
            continue;
        }
        let container = match &ext {
            Some(e) => match out.get_mut(e) {
                Some(Value::Object(o)) => o,
                _ => continue,
            },
            None => &mut out,
        };
        let Some(key) = container
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&attr))
            .cloned()
        else {
            continue;
        };
        match sub {
            None => {
                container.remove(&key);
            }
            Some(s) => {
                if let Some(Value::Object(o)) = container.get_mut(&key)
                    && let Some(sk) = o.keys().find(|k| k.eq_ignore_ascii_case(&s)).cloned()
                {
                    o.remove(&sk);
                }
            }
        }
    }
    Value::Object(out)
}

fn merge_into(out: &mut serde_json::Map<String, Value>, key: String, value: Value) {
    match (out.get_mut(&key), value) {
        (Some(Value::Object(existing)), Value::Object(new)) => {
            existing.extend(new);
        }
        (_, value) => {
            out.insert(key, value);
        }
    }
}

/// The router of `/scim/v2/`.
pub fn router(state: ScimState) -> Router {
    Router::new()
        .route("/scim/v2/Users", get(users::list).post(users::create))
        .route("/scim/v2/Users/.search", post(users::search))
        .route(
            "/scim/v2/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::modify)
                .delete(users::delete),
        )
        .route("/scim/v2/Groups", get(groups::list).post(groups::create))
        .route("/scim/v2/Groups/.search", post(groups::search))
        .route(
            "/scim/v2/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::modify)
                .delete(groups::delete),
        )
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(discovery::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/scim/v2/Schemas", get(discovery::schemas))
        .route("/scim/v2/Schemas/{id}", get(discovery::schema))
        .route("/scim/v2/Bulk", post(discovery::bulk))
        .route("/scim/v2/.search", post(discovery::root_search))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(request: Request) -> Response {
    ScimError::not_found(&format!(
        "{} is not a SCIM endpoint of Jalon:",
        request.uri().path()
    ))
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

/// Authenticates a request and builds its context (what it needs of the
/// request is read before the future, which does not hold it).
pub fn ctx(
    state: ScimState,
    request: &Request,
) -> impl Future<Output = Result<Ctx, ScimError>> + Send + 'static {
    let token = bearer(request);
    let base = base_url(request);
    async move {
        let token = token.ok_or_else(ScimError::unauthorized)?;
        let by = jalon_store::provisioning::authenticate(state.store.db(), &token)
            .await?
            .ok_or_else(ScimError::unauthorized)?;
        Ok(Ctx { state, by, base })
    }
}

/// The layer that routes `/scim/` paths to the SCIM router, around the
/// gRPC-Web layer and everything inside it; other paths go on to gRPC.
#[derive(Clone)]
pub struct ScimLayer {
    router: Router,
    timeout: Duration,
}

impl ScimLayer {
    pub fn new(state: ScimState, timeout: Duration) -> Self {
        Self {
            router: router(state),
            timeout,
        }
    }
}

impl<S> tower::Layer<S> for ScimLayer {
    type Service = ScimRouting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScimRouting {
            inner,
            router: self.router.clone(),
            timeout: self.timeout,
        }
    }
}

/// See [`ScimLayer`].
#[derive(Clone)]
pub struct ScimRouting<S> {
    inner: S,
    router: Router,
    timeout: Duration,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ResBody> tower::Service<http::Request<tonic::body::Body>> for ScimRouting<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: hyper::body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path().starts_with("/scim/") || request.uri().path() == "/scim" {
            let router = self.router.clone();
            let timeout = self.timeout;
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let started = std::time::Instant::now();
            return Box::pin(async move {
                let response = match tokio::time::timeout(
                    timeout,
                    tower::ServiceExt::oneshot(router, request),
                )
                .await
                {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => ScimError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        None,
                        "the request took longer than server.request_timeout_secs",
                    )
                    .into_response(),
                };
                tracing::info!(
                    %method,
                    path,
                    status = response.status().as_u16(),
                    latency_ms = format_args!("{:.3}", started.elapsed().as_secs_f64() * 1000.0),
                    "scim request"
                );
                Ok(response.map(tonic::body::Body::new))
            });
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(tonic::body::Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_names_a_version_or_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers), Ok(None));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\""));
        assert_eq!(if_match(&headers), Ok(Some(3)));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&headers), Ok(None));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(
            if_match(&headers).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
    }

    #[test]
    fn paging_follows_rfc_7644() {
        let pairs = |q: &[(&str, &str)]| -> Vec<(String, String)> {
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let p = ListParams::from_query(&pairs(&[])).unwrap();
        assert_eq!((p.start_index, p.count), (1, DEFAULT_COUNT));
        let p = ListParams::from_query(&pairs(&[("startIndex", "0"), ("count", "-5")])).unwrap();
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = ListParams::from_query(&pairs(&[("count", "100000")])).unwrap();
        assert_eq!(p.count, MAX_RESULTS);
        let e = ListParams::from_query(&pairs(&[("count", "ten")])).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        let p = ListParams::from_search(&json!({
            "schemas": [SEARCH_SCHEMA],
            "filter": "userName eq \"a\"",
            "startIndex": 3,
            "attributes": ["userName"],
        }))
        .unwrap();
        assert_eq!(p.start_index, 3);
        assert!(p.filter.is_some());
        assert_eq!(p.attributes, vec!["userName".to_string()]);
        assert!(ListParams::from_search(&json!({"schemas": ["urn:other"]})).is_err());
    }

    #[test]
    fn projection_keeps_id_and_schemas() {
        let doc = json!({
            "schemas": [USER_SCHEMA],
            "id": "1",
            "userName": "a",
            "name": {"givenName": "A", "familyName": "B"},
            ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "2"}},
            "meta": {"version": "W/\"1\""},
        });
        let some = project(
            doc.clone(),
            &[
                "name.familyName".into(),
                format!("{ENTERPRISE_USER}:department"),
            ],
            &[],
            USER_SCHEMA,
        );
        assert_eq!(
            some,
            json!({"schemas": [USER_SCHEMA], "id": "1", "name": {"familyName": "B"}, ENTERPRISE_USER: {"department": "R&D"}})
        );
        let less = project(
            doc,
            &[],
            &["name".into(), "id".into(), "meta".into()],
            USER_SCHEMA,
        );
        assert!(less.get("name").is_none() && less.get("meta").is_none());
        assert_eq!(less["id"], json!("1"));
    }

    #[test]
    fn domain_errors_become_scim_errors() {
        let e = ScimError::from(Error::AlreadyExists("taken".into()));
        assert_eq!(
            (e.status, e.scim_type),
            (StatusCode::CONFLICT, Some("uniqueness"))
        );
        let e = ScimError::from(Error::stale_etag("User"));
        assert_eq!(e.status, StatusCode::PRECONDITION_FAILED);
        let e = ScimError::from(Error::precondition("LAST_ADMIN", "people/1", "last"));
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(e.detail.contains("LAST_ADMIN"));
        let e = ScimError::from(Error::invalid("userName", "is required"));
        assert_eq!(
            (e.status, e.scim_type),
            (StatusCode::BAD_REQUEST, Some("invalidValue"))
        );
        assert!(e.detail.contains("userName"));
        let e = ScimError::from(Error::Internal("secret cause".into()));
        assert!(!e.detail.contains("secret"));
    }
}
