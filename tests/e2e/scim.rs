//! SCIM 2.0 provisioning (issue 13), over real HTTP/1.1 (and HTTP/2)
//! connections to the server's gRPC port: provisioning tokens, Users and
//! Groups, the quirks of Entra ID and Okta, roles following group
//! mappings with the last-ADMIN rule, tokens confined to their
//! organisation, the audit trail of SCIM changes, 1,000 users and 5 groups
//! provisioned then partly deprovisioned (timed), and the scim2-tester
//! conformance suite.

use std::{net::SocketAddr, time::Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jalon_proto::v1::{self as pb, provisioning_service_client::ProvisioningServiceClient};
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::Mutex};
use tonic::{Code, transport::Channel};

use crate::helpers::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A reply: status, headers, JSON body (null when empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[track_caller]
    fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        self.body
    }
}

/// A SCIM client on one keep-alive HTTP/1.1 connection.
struct Scim {
    addr: SocketAddr,
    token: String,
    sender: Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Scim {
    async fn connect(addr: SocketAddr, token: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self {
            addr,
            token: token.into(),
            sender: Mutex::new(sender),
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> http::request::Builder {
        let builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{}/scim/v2{path}", self.addr))
            .header("host", self.addr.to_string())
            .header("accept", "application/scim+json");
        let builder = if self.token.is_empty() {
            builder
        } else {
            builder.header("authorization", format!("Bearer {}", self.token))
        };
        if body.is_some() {
            builder.header("content-type", "application/scim+json")
        } else {
            builder
        }
    }

    async fn send(&self, request: http::Request<Full<Bytes>>) -> Reply {
        let mut sender = self.sender.lock().await;
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        if !body.is_null() {
            assert!(
                headers
                    .get("content-type")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("application/scim+json")),
                "content type of {body}"
            );
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, body, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut builder = self.request(method, path, body.as_ref());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(builder.body(Full::new(Bytes::from(payload))).unwrap())
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body)).await
    }

    async fn patch(&self, path: &str, ops: Value) -> Reply {
        self.call(
            "PATCH",
            path,
            Some(json!({"schemas": [PATCH_OP], "Operations": ops})),
        )
        .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// `GET /Users?filter=…`, the filter URL-encoded.
    async fn filter(&self, resource: &str, filter: &str) -> Value {
        let encoded: String = form_encode(filter);
        self.get(&format!("/{resource}?filter={encoded}"))
            .await
            .expect(200)
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn provisioning(app: &TestApp) -> ProvisioningServiceClient<Channel> {
    ProvisioningServiceClient::new(app.channel.clone())
}

/// A provisioning token of `org`, created by its admin: (id, secret).
async fn new_token(app: &TestApp, admin: &str, org: &str, name: &str) -> (String, String) {
    let reply = provisioning(app)
        .create_provisioning_token(authed(
            admin,
            pb::CreateProvisioningTokenRequest {
                organisation_id: org.into(),
                display_name: name.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (reply.token.unwrap().id, reply.secret)
}

async fn map_group(app: &TestApp, admin: &str, org: &str, group: &str, role: pb::Role) -> i32 {
    provisioning(app)
        .set_group_role_mapping(authed(
            admin,
            pb::SetGroupRoleMappingRequest {
                organisation_id: org.into(),
                mapping: Some(pb::GroupRoleMapping {
                    group_name: group.into(),
                    role: role as i32,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .roles_changed
}

fn new_user(user_name: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"value": format!("{}@example.com", user_name.split('@').next().unwrap()), "type": "work", "primary": true}],
        "active": true,
    })
}

async fn get_person(app: &TestApp, admin: &str, org: &str, id: &str) -> pb::Person {
    app.people()
        .get_person(authed(
            admin,
            pb::GetPersonRequest {
                organisation_id: org.into(),
                id: id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap()
}

async fn audit(app: &TestApp, admin: &str, org: &str) -> Vec<pb::AuditEvent> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .audit()
            .list_audit_events(authed(
                admin,
                pb::ListAuditEventsRequest {
                    organisation_id: org.into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.events);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn scim_users_follow_the_identity_provider_with_entra_and_okta_quirks() {
    on_each_backend(async |app| {
        let (org, _) = app.create_org("acme", "alice").await;
        let (token_id, secret) = new_token(app, "alice", &org.id, "Entra ID").await;
        assert!(secret.starts_with("jsp_"), "{secret}");
        let scim = Scim::connect(app.addr, &secret).await;

        // POST: 201, Location, meta, ETag; the person exists over gRPC.
        let mut body = new_user("bjensen@example.com", "Barbara", "Jensen");
        body["externalId"] = json!("0f8fad5b-d9cb-469f-a165-70867728950e");
        body["title"] = json!("Portfolio analyst");
        body[ENTERPRISE] = json!({"department": "Innovation"});
        let reply = scim.post("/Users", body.clone()).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        let location = reply.header("location").to_owned();
        let etag = reply.header("etag").to_owned();
        let created = reply.body;
        let id = id_of(&created);
        assert_eq!(location, format!("http://{}/scim/v2/Users/{id}", app.addr));
        assert_eq!(created["meta"]["location"], json!(location));
        assert_eq!(created["meta"]["version"], json!(etag));
        assert_eq!(etag, "W/\"1\"");
        assert_eq!(created["displayName"], Value::Null, "not sent, not shown");
        let p = get_person(app, "alice", &org.id, &id).await;
        assert_eq!(p.subject, "bjensen@example.com");
        assert_eq!(p.display_name, "Barbara Jensen");
        assert_eq!(p.email, "bjensen@example.com");
        assert_eq!(p.job_title, "Portfolio analyst");
        assert_eq!(p.department, "Innovation");
        assert_eq!(
            p.external_id.as_deref(),
            Some("0f8fad5b-d9cb-469f-a165-70867728950e")
        );
        assert_eq!(p.role, pb::Role::Member as i32);

        // userName is unique regardless of case: 409 uniqueness.
        let mut twin = new_user("BJensen@Example.com", "B", "J");
        twin["emails"] = json!([{"value": "other@example.com"}]);
        let conflict = scim.post("/Users", twin).await.expect(409);
        assert_eq!(conflict["scimType"], json!("uniqueness"));
        assert_eq!(conflict["status"], json!("409"));

        // Bad input names the field: 400 invalidValue.
        let bad = scim
            .post("/Users", json!({"schemas": [USER], "userName": "x", "emails": [{"value": "not-an-address"}]}))
            .await
            .expect(400);
        assert_eq!(bad["scimType"], json!("invalidValue"));
        assert!(bad["detail"].as_str().unwrap().contains("emails[0].value"), "{bad}");

        // Filters: userName (any case), externalId, emails.value, and, or.
        let second = scim
            .post("/Users", new_user("jsmith@example.com", "John", "Smith"))
            .await
            .expect(201);
        for (filter, expected) in [
            (r#"userName eq "BJENSEN@example.COM""#, 1),
            (r#"externalId eq "0f8fad5b-d9cb-469f-a165-70867728950e""#, 1),
            (r#"emails.value eq "jsmith@example.com""#, 1),
            (r#"emails[value eq "JSmith@example.com"]"#, 1),
            (r#"userName eq "bjensen@example.com" and title eq "Portfolio analyst""#, 1),
            (r#"userName eq "bjensen@example.com" or userName eq "jsmith@example.com""#, 2),
            (r#"userName sw "j""#, 1),
            (r#"userName eq "nobody""#, 0),
        ] {
            let list = scim.filter("Users", filter).await;
            assert_eq!(list["totalResults"], json!(expected), "{filter}: {list}");
            assert_eq!(list["Resources"].as_array().unwrap().len(), expected, "{filter}");
        }
        let empty = scim.filter("Users", r#"userName eq "nobody""#).await;
        assert_eq!(empty["totalResults"], json!(0));
        assert_eq!(empty["Resources"], json!([]));
        let bad = scim.get("/Users?filter=userName%20eq").await.expect(400);
        assert_eq!(bad["scimType"], json!("invalidFilter"));

        // Paging: startIndex is 1-based.
        let page = scim.get("/Users?startIndex=2&count=1").await.expect(200);
        assert_eq!(page["totalResults"], json!(2));
        assert_eq!(page["startIndex"], json!(2));
        assert_eq!(page["itemsPerPage"], json!(1));
        assert_eq!(page["Resources"][0]["id"], second["id"]);
        let counted = scim.get("/Users?count=0").await.expect(200);
        assert_eq!(counted["totalResults"], json!(2));
        assert_eq!(counted["Resources"], json!([]));

        // attributes / excludedAttributes.
        let slim = scim
            .get(&format!("/Users/{id}?attributes=userName,name.givenName"))
            .await
            .expect(200);
        assert_eq!(slim["userName"], json!("bjensen@example.com"));
        assert_eq!(slim["name"], json!({"givenName": "Barbara"}));
        assert_eq!(slim["id"], json!(id));
        assert!(slim.get("emails").is_none(), "{slim}");

        // Okta: a PUT of the whole user; omitting active suspends no one.
        let mut okta = created.clone();
        okta.as_object_mut().unwrap().remove("active");
        okta.as_object_mut().unwrap().remove("meta");
        okta["name"]["givenName"] = json!("Barb");
        okta["title"] = json!("Head of portfolio");
        let put = scim.put(&format!("/Users/{id}"), okta).await.expect(200);
        assert_eq!(put["active"], json!(true));
        assert_eq!(put["title"], json!("Head of portfolio"));
        assert_eq!(put["meta"]["version"], json!("W/\"2\""));
        let p = get_person(app, "alice", &org.id, &id).await;
        assert!(p.active);
        assert_eq!(p.display_name, "Barb Jensen");

        // If-Match with a stale version: 412, nothing written.
        let stale = scim
            .call_with(
                "PATCH",
                &format!("/Users/{id}"),
                Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "x"}]})),
                &[("if-match", "W/\"1\"")],
            )
            .await;
        assert_eq!(stale.status, 412, "{stale:?}");
        let ok = scim
            .call_with(
                "PATCH",
                &format!("/Users/{id}"),
                Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Director of AI"}]})),
                &[("if-match", "W/\"2\"")],
            )
            .await
            .expect(200);
        assert_eq!(ok["title"], json!("Director of AI"));

        // Entra: capitalised ops, string booleans, replace without a path
        // with dotted keys.
        let replaced = scim
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "Replace", "value": {"name.givenName": "Barbara", "name.familyName": "Jensen-Smith", "displayName": "Babs Jensen"}}]),
            )
            .await
            .expect(200);
        assert_eq!(replaced["name"]["familyName"], json!("Jensen-Smith"));
        assert_eq!(replaced["displayName"], json!("Babs Jensen"));
        assert_eq!(get_person(app, "alice", &org.id, &id).await.display_name, "Babs Jensen");
        let suspended = scim
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            )
            .await
            .expect(200);
        assert_eq!(suspended["active"], json!(false));
        let p = get_person(app, "alice", &org.id, &id).await;
        assert!(!p.active, "deactivated at once");
        // The person lost access: their token reaches nothing.
        expect_code(
            app.organisations()
                .get_organisation(authed(
                    "bjensen@example.com",
                    pb::GetOrganisationRequest { id: org.id.clone() },
                ))
                .await,
            Code::NotFound,
        );
        let back = scim
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "Replace", "path": "active", "value": "True"}]),
            )
            .await
            .expect(200);
        assert_eq!(back["active"], json!(true));

        // Entra's periodic active:true PATCH changes nothing: same version,
        // no audit event.
        let before_events = audit(app, "alice", &org.id).await.len();
        let version = back["meta"]["version"].clone();
        for _ in 0..3 {
            let again = scim
                .patch(
                    &format!("/Users/{id}"),
                    json!([{"op": "Replace", "path": "active", "value": true}]),
                )
                .await
                .expect(200);
            assert_eq!(again["meta"]["version"], version);
        }
        assert_eq!(audit(app, "alice", &org.id).await.len(), before_events);

        // Entra's enterprise extension: manager and department by URN path.
        let managed = scim
            .patch(
                &format!("/Users/{}", id_of(&second)),
                json!([
                    {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": id},
                    {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "R&D"}
                ]),
            )
            .await
            .expect(200);
        assert_eq!(managed[ENTERPRISE]["manager"]["value"], json!(id));
        let p2 = get_person(app, "alice", &org.id, &id_of(&second)).await;
        assert_eq!(p2.manager_id, id);
        assert_eq!(p2.department, "R&D");
        // A manager who is no User here: 400 naming the field.
        let bad = scim
            .patch(
                &format!("/Users/{}", id_of(&second)),
                json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": {"value": uuid::Uuid::now_v7().to_string()}}]),
            )
            .await
            .expect(400);
        assert!(bad["detail"].as_str().unwrap().contains("manager"), "{bad}");

        // A PATCH is all or nothing: a bad operation after a good one
        // leaves the user as it was.
        let before = scim.get(&format!("/Users/{id}")).await.expect(200);
        let refused = scim
            .patch(
                &format!("/Users/{id}"),
                json!([
                    {"op": "replace", "path": "title", "value": "Changed"},
                    {"op": "replace", "path": "emails", "value": [{"value": "broken"}]}
                ]),
            )
            .await
            .expect(400);
        assert!(refused["detail"].as_str().unwrap().contains("emails"), "{refused}");
        assert_eq!(scim.get(&format!("/Users/{id}")).await.expect(200), before);

        // DELETE: deactivated and unlinked, then 404; the person stays.
        scim.delete(&format!("/Users/{}", id_of(&second)))
            .await
            .expect(204);
        let gone = scim.get(&format!("/Users/{}", id_of(&second))).await.expect(404);
        assert_eq!(gone["status"], json!("404"));
        scim.delete(&format!("/Users/{}", id_of(&second)))
            .await
            .expect(404);
        let kept = get_person(app, "alice", &org.id, &id_of(&second)).await;
        assert!(!kept.active);
        assert_eq!(
            scim.filter("Users", r#"userName eq "jsmith@example.com""#).await["totalResults"],
            json!(0)
        );
        // Provisioned again, the person is adopted back, active.
        let back_again = scim
            .post("/Users", new_user("jsmith@example.com", "John", "Smith"))
            .await
            .expect(201);
        assert_eq!(id_of(&back_again), id_of(&second));
        assert!(get_person(app, "alice", &org.id, &id_of(&second)).await.active);
        scim.delete(&format!("/Users/{}", id_of(&second)))
            .await
            .expect(204);

        // The audit trail names the token as the actor of every change.
        let events = audit(app, "alice", &org.id).await;
        let actor = format!("scim-token:{token_id}");
        let by_token: Vec<&pb::AuditEvent> =
            events.iter().filter(|e| e.actor_subject == actor).collect();
        for action in [
            "person.created",
            "person.linked",
            "person.updated",
            "person.deactivated",
            "person.reactivated",
            "person.unlinked",
        ] {
            assert!(
                by_token.iter().any(|e| e.action == action),
                "no {action} by {actor}: {:?}",
                events.iter().map(|e| (&e.action, &e.actor_subject)).collect::<Vec<_>>()
            );
        }
        let unlinked = by_token.iter().find(|e| e.action == "person.unlinked").unwrap();
        assert_eq!(unlinked.resource_id, id_of(&second));

        // A wrong token and a revoked token: 401 with a SCIM error body.
        let wrong = Scim::connect(app.addr, &format!("{}x", &secret[..secret.len() - 1])).await;
        let denied = wrong.get("/Users").await;
        assert_eq!(denied.status, 401);
        assert_eq!(denied.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
        assert!(denied.header("www-authenticate").starts_with("Bearer"));
        let anonymous = Scim::connect(app.addr, "").await;
        assert_eq!(anonymous.get("/ServiceProviderConfig").await.status, 401);
        let revoked = provisioning(app)
            .revoke_provisioning_token(authed(
                "alice",
                pb::RevokeProvisioningTokenRequest {
                    organisation_id: org.id.clone(),
                    id: token_id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .token
            .unwrap();
        assert!(revoked.revoke_time.is_some());
        let after = scim.get(&format!("/Users/{id}")).await;
        assert_eq!(after.status, 401, "{after:?}");
        assert_eq!(after.body["status"], json!("401"));
        let listed = provisioning(app)
            .list_provisioning_tokens(authed(
                "alice",
                pb::ListProvisioningTokensRequest {
                    organisation_id: org.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .tokens;
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_time.is_some());
    })
    .await;
}

#[tokio::test]
async fn scim_groups_give_roles_and_keep_an_admin() {
    on_each_backend(async |app| {
        let (org, alice) = app.create_org("acme", "alice").await;
        let (token_id, secret) = new_token(app, "alice", &org.id, "Okta").await;
        let scim = Scim::connect(app.addr, &secret).await;
        assert_eq!(
            map_group(app, "alice", &org.id, "AI portfolio directors", pb::Role::Director).await,
            0
        );
        map_group(app, "alice", &org.id, "Jalon admins", pb::Role::Admin).await;
        map_group(app, "alice", &org.id, "Readers", pb::Role::Viewer).await;
        // Only ADMINs set up provisioning; INTEGRATION is not a group's.
        app.add_person("alice", &org.id, "dan", pb::Role::Director).await;
        expect_code(
            provisioning(app)
                .create_provisioning_token(authed(
                    "dan",
                    pb::CreateProvisioningTokenRequest {
                        organisation_id: org.id.clone(),
                        display_name: "x".into(),
                    },
                ))
                .await,
            Code::PermissionDenied,
        );
        expect_bad_field(
            provisioning(app)
                .set_group_role_mapping(authed(
                    "alice",
                    pb::SetGroupRoleMappingRequest {
                        organisation_id: org.id.clone(),
                        mapping: Some(pb::GroupRoleMapping {
                            group_name: "Bots".into(),
                            role: pb::Role::Integration as i32,
                            ..Default::default()
                        }),
                    },
                ))
                .await,
            "mapping.role",
        );

        let u1 = id_of(&scim.post("/Users", new_user("grace", "Grace", "Hopper")).await.expect(201));
        let u2 = id_of(&scim.post("/Users", new_user("ada", "Ada", "Lovelace")).await.expect(201));
        // Alice, created over gRPC, is adopted by her userName (her subject).
        let adopted = scim
            .post("/Users", new_user("alice", "Alice", "Admin"))
            .await
            .expect(201);
        assert_eq!(id_of(&adopted), alice.id);

        // A group's members take its role; the highest of their groups wins.
        let directors = scim
            .post(
                "/Groups",
                json!({"schemas": [GROUP], "displayName": "AI Portfolio Directors", "members": [{"value": u1}]}),
            )
            .await
            .expect(201);
        let gid = id_of(&directors);
        assert_eq!(directors["members"][0]["value"], json!(u1));
        assert_eq!(get_person(app, "alice", &org.id, &u1).await.role, pb::Role::Director as i32);
        let readers = id_of(
            &scim
                .post("/Groups", json!({"schemas": [GROUP], "displayName": "Readers", "members": [{"value": u1}, {"value": u2}]}))
                .await
                .expect(201),
        );
        assert_eq!(get_person(app, "alice", &org.id, &u1).await.role, pb::Role::Director as i32);
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Viewer as i32);
        let dup = scim
            .post("/Groups", json!({"schemas": [GROUP], "displayName": "readers"}))
            .await
            .expect(409);
        assert_eq!(dup["scimType"], json!("uniqueness"));

        // Okta: add members with a path; Entra: remove by value filter.
        scim.patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": [{"value": u2}]}]),
        )
        .await
        .expect(200);
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Director as i32);
        let filtered = scim
            .filter("Groups", &format!(r#"displayName eq "ai portfolio directors" and members eq "{u2}""#))
            .await;
        assert_eq!(filtered["totalResults"], json!(1));
        scim.patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "Remove", "path": format!("members[value eq \"{u1}\"]")}]),
        )
        .await
        .expect(200);
        assert_eq!(get_person(app, "alice", &org.id, &u1).await.role, pb::Role::Viewer as i32);
        // Entra's other form: remove with the members in the value.
        scim.patch(
            &format!("/Groups/{readers}"),
            json!([{"op": "Remove", "path": "members", "value": [{"value": u1}]}]),
        )
        .await
        .expect(200);
        assert_eq!(get_person(app, "alice", &org.id, &u1).await.role, pb::Role::Member as i32);
        // Members outside the organisation's Users are refused.
        let bad = scim
            .patch(
                &format!("/Groups/{gid}"),
                json!([{"op": "add", "path": "members", "value": [{"value": uuid::Uuid::now_v7().to_string()}]}]),
            )
            .await
            .expect(400);
        assert_eq!(bad["scimType"], json!("invalidValue"));

        // The admins' group: alice and ada; taking ada out keeps an ADMIN,
        // taking alice out too would leave none: 409 with the reason, and
        // nothing changes.
        let admins = id_of(
            &scim
                .post("/Groups", json!({"schemas": [GROUP], "displayName": "Jalon admins", "members": [{"value": alice.id}, {"value": u2}]}))
                .await
                .expect(201),
        );
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Admin as i32);
        assert_eq!(get_person(app, "alice", &org.id, &alice.id).await.role, pb::Role::Admin as i32);
        scim.patch(
            &format!("/Groups/{admins}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}]),
        )
        .await
        .expect(200);
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Director as i32);
        let last = scim
            .patch(
                &format!("/Groups/{admins}"),
                json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", alice.id)}]),
            )
            .await
            .expect(409);
        assert!(last["detail"].as_str().unwrap().contains("LAST_ADMIN"), "{last}");
        assert_eq!(get_person(app, "alice", &org.id, &alice.id).await.role, pb::Role::Admin as i32);
        let group = scim.get(&format!("/Groups/{admins}")).await.expect(200);
        assert_eq!(group["members"].as_array().unwrap().len(), 1);
        let suspend = scim
            .patch(
                &format!("/Users/{}", alice.id),
                json!([{"op": "replace", "path": "active", "value": false}]),
            )
            .await
            .expect(409);
        assert!(suspend["detail"].as_str().unwrap().contains("LAST_ADMIN"), "{suspend}");
        scim.delete(&format!("/Groups/{admins}")).await.expect(409);
        // A mapping change moves the roles of the group's members at once.
        assert_eq!(
            map_group(app, "alice", &org.id, "AI portfolio directors", pb::Role::Viewer).await,
            1
        );
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Viewer as i32);
        // A deleted group's members lose its role: ada keeps the readers'.
        scim.delete(&format!("/Groups/{gid}")).await.expect(204);
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Viewer as i32);
        scim.delete(&format!("/Groups/{readers}")).await.expect(204);
        assert_eq!(get_person(app, "alice", &org.id, &u2).await.role, pb::Role::Member as i32);
        scim.get(&format!("/Groups/{gid}")).await.expect(404);
        // excludedAttributes=members, as Entra asks.
        let slim = scim
            .get(&format!("/Groups?excludedAttributes=members&filter={}", form_encode(r#"displayName eq "jalon admins""#)))
            .await
            .expect(200);
        assert_eq!(slim["totalResults"], json!(1));
        assert!(slim["Resources"][0].get("members").is_none(), "{slim}");

        // The audit trail: groups and role changes, by the token.
        let events = audit(app, "alice", &org.id).await;
        let actor = format!("scim-token:{token_id}");
        for action in ["group.created", "group.updated", "group.deleted", "person.role_changed"] {
            assert!(
                events.iter().any(|e| e.action == action && e.actor_subject == actor),
                "no {action} by {actor}"
            );
        }
        assert!(events.iter().any(|e| e.action == "group_mapping.set" && e.actor_subject == "alice"));
        assert!(events.iter().any(|e| e.action == "provisioning_token.created"));
    })
    .await;
}

#[tokio::test]
async fn a_provisioning_token_reaches_its_own_organisation_only() {
    on_each_backend(async |app| {
        let (a, _) = app.create_org("org-a", "alice").await;
        let (b, _) = app.create_org("org-b", "bob").await;
        let (_, secret_a) = new_token(app, "alice", &a.id, "A's IdP").await;
        let (_, secret_b) = new_token(app, "bob", &b.id, "B's IdP").await;
        let scim_a = Scim::connect(app.addr, &secret_a).await;
        let scim_b = Scim::connect(app.addr, &secret_b).await;
        let theirs = id_of(&scim_b.post("/Users", new_user("carol", "Carol", "B")).await.expect(201));
        let their_group = id_of(
            &scim_b
                .post("/Groups", json!({"schemas": [GROUP], "displayName": "B team", "members": [{"value": theirs}]}))
                .await
                .expect(201),
        );
        // The same userName in another organisation is no conflict.
        let ours = id_of(&scim_a.post("/Users", new_user("carol", "Carol", "A")).await.expect(201));
        assert_ne!(ours, theirs);

        scim_a.get(&format!("/Users/{theirs}")).await.expect(404);
        scim_a.get(&format!("/Groups/{their_group}")).await.expect(404);
        scim_a
            .patch(&format!("/Users/{theirs}"), json!([{"op": "replace", "path": "active", "value": false}]))
            .await
            .expect(404);
        scim_a
            .put(&format!("/Users/{theirs}"), new_user("carol", "X", "Y"))
            .await
            .expect(404);
        scim_a.delete(&format!("/Users/{theirs}")).await.expect(404);
        scim_a.delete(&format!("/Groups/{their_group}")).await.expect(404);
        let listed = scim_a.get("/Users").await.expect(200);
        assert_eq!(listed["totalResults"], json!(1));
        assert_eq!(listed["Resources"][0]["id"], json!(ours));
        assert_eq!(scim_a.get("/Groups").await.expect(200)["totalResults"], json!(0));
        assert_eq!(
            scim_a.filter("Users", &format!(r#"id eq "{theirs}""#)).await["totalResults"],
            json!(0)
        );
        // B's user cannot join A's group.
        let bad = scim_a
            .post("/Groups", json!({"schemas": [GROUP], "displayName": "A team", "members": [{"value": theirs}]}))
            .await
            .expect(400);
        assert_eq!(bad["scimType"], json!("invalidValue"));
        // B's user is untouched.
        let carol = scim_b.get(&format!("/Users/{theirs}")).await.expect(200);
        assert_eq!(carol["active"], json!(true));
        assert_eq!(carol["name"]["familyName"], json!("B"));
        // A provisioning token is no gRPC credential.
        expect_code(
            app.people()
                .list_people(with_token(
                    &secret_a,
                    pb::ListPeopleRequest {
                        organisation_id: a.id.clone(),
                        ..Default::default()
                    },
                ))
                .await,
            Code::Unauthenticated,
        );
        // A's ADMIN sees none of B's tokens, and cannot revoke them.
        let b_tokens = provisioning(app)
            .list_provisioning_tokens(authed("bob", pb::ListProvisioningTokensRequest { organisation_id: b.id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .tokens;
        expect_code(
            provisioning(app)
                .list_provisioning_tokens(authed("alice", pb::ListProvisioningTokensRequest { organisation_id: b.id.clone() }))
                .await,
            Code::NotFound,
        );
        expect_code(
            provisioning(app)
                .revoke_provisioning_token(authed(
                    "alice",
                    pb::RevokeProvisioningTokenRequest {
                        organisation_id: a.id.clone(),
                        id: b_tokens[0].id.clone(),
                    },
                ))
                .await,
            Code::NotFound,
        );
    })
    .await;
}

#[tokio::test]
async fn scim_is_served_over_http2_on_the_grpc_port() {
    on_each_backend(async |app| {
        let (org, _) = app.create_org("acme", "alice").await;
        let (_, secret) = new_token(app, "alice", &org.id, "h2").await;
        let stream = TcpStream::connect(app.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method("GET")
            .uri(format!("http://{}/scim/v2/ServiceProviderConfig", app.addr))
            .header("authorization", format!("Bearer {secret}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(body["patch"]["supported"], json!(true));
        assert_eq!(body["bulk"]["supported"], json!(false));
        assert_eq!(body["sort"]["supported"], json!(false));
        // gRPC still answers on the same connection's port.
        app.organisations()
            .get_organisation(authed(
                "alice",
                pb::GetOrganisationRequest { id: org.id.clone() },
            ))
            .await
            .unwrap();
        // The discovery endpoints over HTTP/1.1.
        let scim = Scim::connect(app.addr, &secret).await;
        let types = scim.get("/ResourceTypes").await.expect(200);
        assert_eq!(types["totalResults"], json!(2));
        let schemas = scim.get("/Schemas").await.expect(200);
        assert_eq!(schemas["totalResults"], json!(3));
        scim.get(&format!("/Schemas/{USER}")).await.expect(200);
        scim.get("/Schemas/urn:nothing").await.expect(404);
        scim.post("/Bulk", json!({})).await.expect(501);
        scim.get("/Nothing").await.expect(404);
    })
    .await;
}

#[tokio::test]
async fn provisioning_1000_users_and_5_groups_then_deprovisioning_some() {
    on_each_backend(async |app| {
        let (org, _) = app.create_org("acme", "alice").await;
        let (_, secret) = new_token(app, "alice", &org.id, "bulk").await;
        let groups = ["Directors", "Admins", "Readers", "Engineering", "Finance"];
        map_group(app, "alice", &org.id, "Directors", pb::Role::Director).await;
        map_group(app, "alice", &org.id, "Admins", pb::Role::Admin).await;
        map_group(app, "alice", &org.id, "Readers", pb::Role::Viewer).await;
        let scim = Scim::connect(app.addr, &secret).await;

        let started = Instant::now();
        let mut ids = Vec::with_capacity(1000);
        for i in 0..1000 {
            let user = new_user(&format!("user{i:04}@example.com"), &format!("User{i}"), "Test");
            ids.push(id_of(&scim.post("/Users", user).await.expect(201)));
        }
        let users_time = started.elapsed();
        let group_started = Instant::now();
        let mut group_ids = Vec::new();
        for (g, name) in groups.iter().enumerate() {
            let gid = id_of(
                &scim
                    .post("/Groups", json!({"schemas": [GROUP], "displayName": name}))
                    .await
                    .expect(201),
            );
            // Members as Entra sends them: PATCH add, 100 per request.
            let members: Vec<&String> = ids.iter().skip(g).step_by(5).collect();
            for chunk in members.chunks(100) {
                let value: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
                scim.patch(&format!("/Groups/{gid}"), json!([{"op": "Add", "path": "members", "value": value}]))
                    .await
                    .expect(200);
            }
            group_ids.push(gid);
        }
        let groups_time = group_started.elapsed();
        let provisioned = started.elapsed();

        // Deprovision 100: 50 suspended by PATCH, 50 deleted.
        let deprovision_started = Instant::now();
        for id in &ids[..50] {
            scim.patch(&format!("/Users/{id}"), json!([{"op": "Replace", "path": "active", "value": "False"}]))
                .await
                .expect(200);
        }
        for id in &ids[50..100] {
            scim.delete(&format!("/Users/{id}")).await.expect(204);
        }
        let deprovision_time = deprovision_started.elapsed();
        println!(
            "scim on {:?}: 1000 users in {:.2} s ({:.1} ms each), 5 groups with 200 members each in {:.2} s, \
             provisioned in {:.2} s; 100 deprovisioned (50 suspended, 50 deleted) in {:.2} s ({:.1} ms each)",
            app.db.backend,
            users_time.as_secs_f64(),
            users_time.as_secs_f64() * 1000.0 / 1000.0,
            groups_time.as_secs_f64(),
            provisioned.as_secs_f64(),
            deprovision_time.as_secs_f64(),
            deprovision_time.as_secs_f64() * 1000.0 / 100.0,
        );

        // What the identity provider sees, and what Jalon does with it.
        let all = scim.get("/Users?count=1").await.expect(200);
        assert_eq!(all["totalResults"], json!(950));
        assert_eq!(
            scim.filter("Users", "active eq false").await["totalResults"],
            json!(50)
        );
        let directors = scim.get(&format!("/Groups/{}", group_ids[0])).await.expect(200);
        // 200 members, of whom the 10 deleted among the first hundred left.
        assert_eq!(directors["members"].as_array().unwrap().len(), 190);
        let people = app
            .people()
            .list_people(authed(
                "alice",
                pb::ListPeopleRequest {
                    organisation_id: org.id.clone(),
                    role: pb::Role::Director as i32,
                    page_size: 500,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .people;
        assert_eq!(people.len(), 200, "deleted people keep their last role");
        let inactive = app
            .people()
            .list_people(authed(
                "alice",
                pb::ListPeopleRequest {
                    organisation_id: org.id.clone(),
                    active: Some(false),
                    page_size: 500,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .people;
        assert_eq!(inactive.len(), 100);
    })
    .await;
}

/// The scim2-tester suite (PyPI, installed by `.ci/tools.sh`) against a
/// live server: every check passes.
#[tokio::test]
async fn scim2_tester_conformance_passes() {
    let python = std::env::var("JALON_TEST_SCIM_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/tools/bin/scim-python").to_owned()
    });
    if !std::path::Path::new(&python).exists()
        && std::env::var_os("JALON_TEST_REQUIRE_VERIFIERS").is_none()
    {
        println!(
            "scim2-tester skipped: {python} is missing (bash .ci/tools.sh installs it; CI requires it)"
        );
        return;
    }
    on_each_backend(async |app| {
        let (org, _) = app.create_org("acme", "alice").await;
        let (_, secret) = new_token(app, "alice", &org.id, "scim2-tester").await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/scim_conformance.py");
        let base = format!("http://{}/scim/v2", app.addr);
        // On the blocking pool: the server runs on this test's runtime.
        let output = {
            let python = python.clone();
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(&python)
                    .arg(script)
                    .arg(&base)
                    .arg(&secret)
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
            })
            .await
            .unwrap()
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        println!("{stdout}");
        assert!(
            output.status.success(),
            "scim2-tester failed on {:?}:\n{stdout}\n{}",
            app.db.backend,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("0 failed"), "{stdout}");
    })
    .await;
}

/// Entra: the person is the token's `oid` (`auth.subject_claim = "oid"`),
/// provisioned from the SCIM externalId (`auth.scim_subject_attribute =
/// "externalId"`, objectId mapped to externalId in Entra).
#[tokio::test]
async fn the_subject_claim_names_the_person_provisioned_from_external_id() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.auth.subject_claim = "oid".into();
            s.auth.scim_subject_attribute = "externalId".into();
        })
        .await;
        let oid_token = |oid: &str| {
            let mut claims = claims("per-application-sub");
            claims["oid"] = json!(oid);
            hs256(&claims)
        };
        // The platform admin and the first admin are named by their oid.
        let (org, _) = {
            let response = app
                .organisations()
                .create_organisation(with_token(
                    &oid_token(ROOT),
                    pb::CreateOrganisationRequest {
                        organisation: Some(organisation("entra")),
                        initial_admin: Some(person("admin-oid", pb::Role::Unspecified)),
                        request_id: String::new(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            (
                response.organisation.unwrap(),
                response.initial_admin.unwrap(),
            )
        };
        let reply = provisioning(&app)
            .create_provisioning_token(with_token(
                &oid_token("admin-oid"),
                pb::CreateProvisioningTokenRequest {
                    organisation_id: org.id.clone(),
                    display_name: "Entra ID".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let scim = Scim::connect(app.addr, &reply.secret).await;
        // Without an externalId there is no subject: 400 naming it.
        let refused = scim
            .post("/Users", new_user("grace@example.com", "Grace", "Hopper"))
            .await
            .expect(400);
        assert!(
            refused["detail"].as_str().unwrap().contains("externalId"),
            "{refused}"
        );
        let mut user = new_user("grace@example.com", "Grace", "Hopper");
        user["externalId"] = json!("6a1f0c3e-oid-of-grace");
        let id = id_of(&scim.post("/Users", user).await.expect(201));
        let p = app
            .people()
            .get_person(with_token(
                &oid_token("admin-oid"),
                pb::GetPersonRequest {
                    organisation_id: org.id.clone(),
                    id: id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .person
            .unwrap();
        assert_eq!(p.subject, "6a1f0c3e-oid-of-grace");
        // Grace's token: her oid is who she is, whatever its sub.
        let read = app
            .organisations()
            .get_organisation(with_token(
                &oid_token("6a1f0c3e-oid-of-grace"),
                pb::GetOrganisationRequest { id: org.id.clone() },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.organisation.unwrap().id, org.id);
        // A token without the claim is refused.
        expect_code(
            app.organisations()
                .get_organisation(authed(
                    "6a1f0c3e-oid-of-grace",
                    pb::GetOrganisationRequest { id: org.id.clone() },
                ))
                .await,
            Code::Unauthenticated,
        );
        app.cleanup().await;
    }
}
