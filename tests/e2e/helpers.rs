//! The harness: each test body runs against the real server, started in this
//! process on 127.0.0.1:0, over a real HTTP/2 connection, once on a fresh
//! SQLite file and once on a fresh, uniquely named PostgreSQL database when
//! `JALON_TEST_POSTGRES_URL` is set.

use std::{path::PathBuf, time::Duration};

use jalon_proto::v1::{
    self as pb, assessment_service_client::AssessmentServiceClient,
    audit_service_client::AuditServiceClient, event_service_client::EventServiceClient,
    finance_service_client::FinanceServiceClient, gate_service_client::GateServiceClient,
    kpi_service_client::KpiServiceClient, organisation_service_client::OrganisationServiceClient,
    person_service_client::PersonServiceClient, portfolio_service_client::PortfolioServiceClient,
    project_service_client::ProjectServiceClient,
};
use jalon_server::{
    Application,
    config::{Secret, Settings},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

pub const ISSUER: &str = "https://idp.test.example";
pub const AUDIENCE: &str = "jalon-e2e";
pub const SECRET: &str = "an-e2e-test-secret-of-at-least-32-bytes";
/// Named as platform administrator in every test configuration.
pub const ROOT: &str = "root";

/// Which database a test runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// SQLite always; PostgreSQL too when `JALON_TEST_POSTGRES_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var("JALON_TEST_POSTGRES_URL")
        && !url.is_empty()
    {
        all.push(Backend::Postgres(url));
    }
    all
}

/// A fresh database of the backend: its URL, and what to drop afterwards.
pub struct FreshDatabase {
    pub url: String,
    pub backend: Backend,
    dir: Option<PathBuf>,
    pg_name: Option<String>,
}

impl FreshDatabase {
    pub async fn create(backend: &Backend) -> Self {
        let tag = Uuid::now_v7().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("jalon-e2e-{tag}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                Self {
                    url: format!("sqlite://{}/jalon.db?mode=rwc", dir.display()),
                    backend: backend.clone(),
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("jalon_e2e_{tag}");
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .expect("connect to JALON_TEST_POSTGRES_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                Self {
                    url: replace_database(admin_url, &name),
                    backend: backend.clone(),
                    dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A direct connection, for tests that look under the API.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.url.as_str())
            .await
            .expect("connect to the test database")
    }

    /// The same database for a second server (a replica): dropping it is
    /// left to this one.
    pub fn shared(&self) -> Self {
        Self {
            url: self.url.clone(),
            backend: self.backend.clone(),
            dir: None,
            pg_name: None,
        }
    }

    pub async fn drop_database(&self) {
        if let (Backend::Postgres(admin_url), Some(name)) = (&self.backend, &self.pg_name)
            && let Ok(admin) = Database::connect(admin_url.as_str()).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            admin.close().await.ok();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `postgres://u@h:p/db?x` with the database replaced.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Settings of a test server: port 0, HS256 with the test secret.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.server.drain_timeout_secs = 10;
    settings.metrics.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.url = Secret::new(database_url);
    settings.database.max_connections = 8;
    settings.database.migrate = Some(true);
    settings.auth.hs256_secret = Some(Secret::new(SECRET));
    settings.auth.issuer = Some(ISSUER.into());
    settings.auth.audience = Some(AUDIENCE.into());
    settings.auth.platform_admins = vec![ROOT.into()];
    settings
}

/// A running server.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// Where `/metrics` is served, when metrics are enabled.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub channel: Channel,
    pub db: FreshDatabase,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl TestApp {
    /// A server on a fresh database of `backend`, with the default test
    /// settings.
    pub async fn spawn(backend: &Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server whose settings `configure` adjusts.
    pub async fn spawn_with(backend: &Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        let db = FreshDatabase::create(backend).await;
        let mut settings = test_settings(&db.url);
        configure(&mut settings);
        Self::start(db, settings).await
    }

    /// Starts a server on an existing database.
    pub async fn start(db: FreshDatabase, settings: Settings) -> Self {
        let app = Application::build(settings)
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect to the test server");
        Self {
            addr,
            metrics_addr,
            channel,
            db,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn organisations(&self) -> OrganisationServiceClient<Channel> {
        OrganisationServiceClient::new(self.channel.clone())
    }

    pub fn people(&self) -> PersonServiceClient<Channel> {
        PersonServiceClient::new(self.channel.clone())
    }

    pub fn projects(&self) -> ProjectServiceClient<Channel> {
        ProjectServiceClient::new(self.channel.clone())
    }

    pub fn assessments(&self) -> AssessmentServiceClient<Channel> {
        AssessmentServiceClient::new(self.channel.clone())
    }

    pub fn gates(&self) -> GateServiceClient<Channel> {
        GateServiceClient::new(self.channel.clone())
    }

    pub fn finance(&self) -> FinanceServiceClient<Channel> {
        FinanceServiceClient::new(self.channel.clone())
    }

    pub fn kpis(&self) -> KpiServiceClient<Channel> {
        KpiServiceClient::new(self.channel.clone())
    }

    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    pub fn portfolio(&self) -> PortfolioServiceClient<Channel> {
        PortfolioServiceClient::new(self.channel.clone())
    }

    pub fn events(&self) -> EventServiceClient<Channel> {
        EventServiceClient::new(self.channel.clone())
    }

    /// Sends the shutdown signal and waits for the server to stop.
    pub async fn stop(&mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(handle) => handle.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for a server already signalled to stop.
    pub async fn wait_stopped(&mut self) -> Result<(), String> {
        match self.handle.take() {
            Some(handle) => handle.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }

    /// Stops the server and drops its database.
    pub async fn cleanup(mut self) {
        let _ = self.stop().await;
        self.db.drop_database().await;
    }

    /// Creates an organisation (as the platform admin) whose first admin has
    /// the subject `admin_subject`.
    pub async fn create_org(
        &self,
        slug: &str,
        admin_subject: &str,
    ) -> (pb::Organisation, pb::Person) {
        let response = self
            .organisations()
            .create_organisation(authed(
                ROOT,
                pb::CreateOrganisationRequest {
                    organisation: Some(organisation(slug)),
                    initial_admin: Some(person(admin_subject, pb::Role::Unspecified)),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create organisation")
            .into_inner();
        (
            response.organisation.expect("organisation"),
            response.initial_admin.expect("admin"),
        )
    }

    /// Adds a person with `role` to `org`, as `admin`.
    pub async fn add_person(
        &self,
        admin: &str,
        org: &str,
        subject: &str,
        role: pb::Role,
    ) -> pb::Person {
        self.people()
            .create_person(authed(
                admin,
                pb::CreatePersonRequest {
                    organisation_id: org.into(),
                    person: Some(person(subject, role)),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create person")
            .into_inner()
            .person
            .expect("person")
    }
}

impl TestApp {
    /// Creates `project` in `org` as `who`.
    pub async fn create_project(&self, who: &str, org: &str, project: pb::Project) -> pb::Project {
        self.try_create_project(who, org, project)
            .await
            .expect("create project")
    }

    /// Asks to create `project` in `org` as `who`: the project, or why not.
    pub async fn try_create_project(
        &self,
        who: &str,
        org: &str,
        project: pb::Project,
    ) -> Result<pb::Project, tonic::Status> {
        self.projects()
            .create_project(authed(
                who,
                pb::CreateProjectRequest {
                    organisation_id: org.into(),
                    project: Some(project),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().project.expect("project"))
    }
}

/// A project of minimal AI Act tier named `name`, the rest unset.
pub fn minimal_project(name: &str) -> pb::Project {
    pb::Project {
        name: name.into(),
        ai_act_tier: pb::AiActTier::Minimal as i32,
        ..Default::default()
    }
}

/// Runs `body` once per backend, each time on a fresh server and database.
pub async fn on_each_backend(body: impl AsyncFn(&TestApp)) {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        body(&app).await;
        app.cleanup().await;
    }
}

/// A valid organisation with this slug.
pub fn organisation(slug: &str) -> pb::Organisation {
    pb::Organisation {
        display_name: format!("Org {slug}"),
        slug: slug.into(),
        default_currency: "EUR".into(),
        discount_rate: "0.08".into(),
        fiscal_year_start_month: 4,
        ..Default::default()
    }
}

/// A valid person with this subject (email derived from it).
pub fn person(subject: &str, role: pb::Role) -> pb::Person {
    pb::Person {
        subject: subject.into(),
        email: format!("{subject}@example.com"),
        display_name: format!("Person {subject}"),
        department: "Innovation".into(),
        job_title: "Lead".into(),
        role: role as i32,
        ..Default::default()
    }
}

/// Claims of a good token for `subject`, valid for an hour.
pub fn claims(subject: &str) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 3600 })
}

/// An HS256 token of the test secret for these claims.
pub fn hs256(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
    .expect("encode")
}

/// A good token for `subject`.
pub fn token(subject: &str) -> String {
    hs256(&claims(subject))
}

/// A request carrying a bearer token.
pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("header"),
    );
    request
}

/// A request authenticated as `subject`.
pub fn authed<T>(subject: &str, message: T) -> Request<T> {
    with_token(&token(subject), message)
}

/// Asserts the call failed with `code` and returns the status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// The fields named by a status' `google.rpc.BadRequest`.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Asserts INVALID_ARGUMENT naming `field`.
#[track_caller]
pub fn expect_bad_field<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let status = expect_code(result, Code::InvalidArgument);
    let fields = bad_fields(&status);
    assert!(
        fields.iter().any(|f| f == field),
        "{field} not in {fields:?} ({status:?})"
    );
}

/// The `google.rpc.PreconditionFailure` kinds of a status.
pub fn precondition_kinds(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .precondition_failure()
        .map(|p| p.violations.iter().map(|v| v.r#type.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(
        replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        replace_database("postgres://postgres@127.0.0.1:5432", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        replace_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
}

/// A TCP proxy in front of the database, whose link can be cut and restored:
/// a database that goes away and comes back, as seen by the server.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    enabled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    kill: tokio::sync::watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let enabled = Arc::new(AtomicBool::new(true));
        let (kill, _) = tokio::sync::watch::channel(0u64);
        let (on, killer) = (enabled.clone(), kill.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !on.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = killer.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            enabled,
            kill,
            task,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.enabled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.kill.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.enabled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a PostgreSQL URL.
pub fn pg_host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// A gate review ready to be decided: the organisation `slug` (admin
/// `alice`, director `dina`, sponsor `sam`, lead `lea`, all MEMBERs but
/// `dina`), one project in IDEATION led by `lea` and sponsored by `sam`, its
/// MUST items answered DONE by the lead, its review requested by the lead and
/// approved by the sponsor: ready for a HOLD, RECYCLE or KILL (a GO also
/// needs the KPI criteria).
pub struct ReadyReview {
    pub org: String,
    pub project: pb::Project,
    pub review: String,
    /// How many assessment items the lead answered.
    pub answers: usize,
}

pub async fn ready_review(app: &TestApp, slug: &str) -> ReadyReview {
    let (org, _) = app.create_org(slug, "alice").await;
    let org = org.id;
    app.add_person("alice", &org, "dina", pb::Role::Director)
        .await;
    let sponsor = app.add_person("alice", &org, "sam", pb::Role::Member).await;
    let lead = app.add_person("alice", &org, "lea", pb::Role::Member).await;
    let project = app
        .projects()
        .create_project(authed(
            "dina",
            pb::CreateProjectRequest {
                organisation_id: org.clone(),
                project: Some(pb::Project {
                    name: "Callbot".into(),
                    sponsor_id: sponsor.id,
                    lead_id: lead.id,
                    ai_act_tier: pb::AiActTier::Minimal as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create project")
        .into_inner()
        .project
        .expect("project");
    let items = app
        .assessments()
        .list_assessment_items(authed(
            "lea",
            pb::ListAssessmentItemsRequest {
                organisation_id: org.clone(),
                project_id: project.id.clone(),
                phase: pb::Phase::Ideation as i32,
                concern: 0,
            },
        ))
        .await
        .expect("items")
        .into_inner()
        .items;
    let mut answers = 0;
    for item in items
        .iter()
        .filter(|i| i.kind == pb::QuestionKind::Must as i32)
    {
        app.assessments()
            .answer_assessment_item(authed(
                "lea",
                pb::AnswerAssessmentItemRequest {
                    organisation_id: org.clone(),
                    project_id: project.id.clone(),
                    key: item.key.clone(),
                    status: pb::AnswerStatus::Done as i32,
                    risk: pb::RiskLevel::Low as i32,
                    note: "checked with the business".into(),
                    evidence_uri: "https://wiki.example/evidence".into(),
                    justification: String::new(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("answer");
        answers += 1;
    }
    let review = app
        .gates()
        .request_gate_review(authed(
            "lea",
            pb::RequestGateReviewRequest {
                organisation_id: org.clone(),
                project_id: project.id.clone(),
            },
        ))
        .await
        .expect("request the review")
        .into_inner()
        .review
        .expect("review")
        .id;
    app.gates()
        .sign_gate(authed(
            "sam",
            pb::SignGateRequest {
                organisation_id: org.clone(),
                review_id: review.clone(),
                verdict: pb::Verdict::Approve as i32,
                comment: "approved".into(),
            },
        ))
        .await
        .expect("the sponsor signs");
    ReadyReview {
        org,
        project,
        review,
        answers,
    }
}
