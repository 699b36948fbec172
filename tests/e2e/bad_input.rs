//! Bad input is never INTERNAL (issue 15): malformed bodies, NUL bytes in
//! free text, links a browser would execute, negative benefits, messages
//! over the size limit; and a seeded fuzz test that sends random and
//! mutated bodies to every method of the descriptor set over a real
//! connection, on each backend.

use std::{collections::HashMap, time::Duration};

use bytes::{Buf, BufMut};
use jalon_proto::v1 as pb;
use prost::Message;
use prost_types::{
    DescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};

use crate::{
    helpers::{
        Backend, ReadyReview, TestApp, authed, bad_fields, expect_code, on_each_backend,
        ready_review, token,
    },
    observability::scrape,
};

// --- Raw bodies over a tonic channel -------------------------------------

/// A codec of raw message bytes: what is sent is exactly the given body
/// (framed by tonic), what comes back is the response's bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A method of the descriptor set.
#[derive(Clone, Debug)]
struct Method {
    path: String,
    input: String,
    client_streaming: bool,
    server_streaming: bool,
}

/// Sends `bodies` to `method` as `subject` (one message for a unary call,
/// each a message of the stream for a client-streaming one) and returns
/// the status: `Ok` when the call answered.
async fn call_raw(
    channel: &Channel,
    method: &Method,
    subject: &str,
    bodies: Vec<Vec<u8>>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
    let path = PathAndQuery::try_from(method.path.as_str())
        .map_err(|e| Status::invalid_argument(format!("path: {e}")))?;
    let call = async {
        match (method.client_streaming, method.server_streaming) {
            (true, _) => {
                let request = authed(subject, tokio_stream::iter(bodies));
                grpc.client_streaming(request, path, RawCodec)
                    .await
                    .map(|_| ())
            }
            (false, true) => {
                let body = bodies.into_iter().next().unwrap_or_default();
                let mut stream = grpc
                    .server_streaming(authed(subject, body), path, RawCodec)
                    .await?
                    .into_inner();
                while let Some(message) = stream.next().await {
                    message?;
                }
                Ok(())
            }
            (false, false) => {
                let body = bodies.into_iter().next().unwrap_or_default();
                grpc.unary(authed(subject, body), path, RawCodec)
                    .await
                    .map(|_| ())
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("the test gave up waiting")))
}

/// Every method of the API's descriptor set, and its messages by full name.
fn descriptors() -> (Vec<Method>, HashMap<String, DescriptorProto>) {
    let set = FileDescriptorSet::decode(jalon_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut messages = HashMap::new();
    fn add(prefix: &str, message: &DescriptorProto, into: &mut HashMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            add(&name, nested, into);
        }
        into.insert(name, message.clone());
    }
    let mut methods = Vec::new();
    for file in &set.file {
        let package = match file.package() {
            "" => String::new(),
            p => format!(".{p}"),
        };
        for message in &file.message_type {
            add(&package, message, &mut messages);
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(Method {
                    path: format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    input: method.input_type().to_owned(),
                    client_streaming: method.client_streaming(),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    (methods, messages)
}

// --- A seeded generator of bodies -----------------------------------------

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| (self.next() & 0xff) as u8).collect()
    }
}

/// Strings worth trying in a string field: real ids (so that calls get past
/// the look-ups), near-misses, and what an attacker sends. Amounts stay well
/// inside the documented maximum (totals at the limits have their own
/// tests).
fn string_pool(ids: &[String]) -> Vec<Vec<u8>> {
    let mut pool: Vec<Vec<u8>> = [
        "",
        " ",
        "a",
        "\0",
        "note\0with a NUL",
        "line\nbreak\ttab",
        "\u{1b}[31mred",
        "javascript:alert(1)",
        "https://example.com/evidence",
        "data:text/html,<script>alert(1)</script>",
        "-3.00",
        "0",
        "12.50",
        "1e40",
        "NaN",
        "EUR",
        "XYZ",
        "00000000-0000-0000-0000-000000000000",
        "not-a-uuid",
        "é漢字🎉",
        "\u{202e}evil",
        "'; DROP TABLE projects; --",
        "%00",
        "name",
        "description,tags",
        "2026-01",
        "ideation",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    pool.push("x".repeat(3_000).into_bytes());
    pool.push("€".repeat(10_001).into_bytes());
    // Not UTF-8: a string field prost refuses.
    pool.push(vec![0xff, 0xfe, b'a']);
    pool.push(vec![b'a', 0xc3]);
    for id in ids {
        pool.push(id.clone().into_bytes());
    }
    pool
}

const INTS: [i64; 12] = [
    0,
    1,
    2,
    3,
    7,
    12,
    -1,
    100,
    i32::MAX as i64,
    i32::MIN as i64,
    i64::MAX,
    i64::MIN,
];

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, number: i32, wire: u64) {
    put_varint(out, (u64::from(number.unsigned_abs()) << 3) | wire);
}

fn put_len(out: &mut Vec<u8>, number: i32, bytes: &[u8]) {
    put_key(out, number, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Generator<'a> {
    messages: &'a HashMap<String, DescriptorProto>,
    strings: Vec<Vec<u8>>,
    /// The fixture's ids, preferred for id fields.
    ids: Vec<String>,
}

impl Generator<'_> {
    /// A message of type `name` whose fields are set at random (each field
    /// of the type about half the time, repeated ones 0 to 3 times).
    fn message(&self, rng: &mut Rng, name: &str, depth: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(descriptor) = self.messages.get(name) else {
            return out;
        };
        for field in &descriptor.field {
            let times = if field.label() == Label::Repeated {
                rng.below(4)
            } else {
                usize::from(rng.chance(75))
            };
            for _ in 0..times {
                self.field(rng, field, depth, &mut out);
            }
        }
        out
    }

    fn field(
        &self,
        rng: &mut Rng,
        field: &prost_types::FieldDescriptorProto,
        depth: usize,
        out: &mut Vec<u8>,
    ) {
        let number = field.number();
        let int = |rng: &mut Rng| INTS[rng.below(INTS.len())];
        match field.r#type() {
            Type::String => {
                // Mostly plausible values, so that calls get past the
                // look-ups to the rules; anything from the pool otherwise.
                let name = field.name();
                let plausible = rng.chance(60);
                let value: Vec<u8> = if plausible && (name == "id" || name.ends_with("_id")) {
                    self.ids[rng.below(self.ids.len())].clone().into_bytes()
                } else if plausible && name.ends_with("currency_code") {
                    b"EUR".to_vec()
                } else if plausible && name == "amount" {
                    [&b"12.50"[..], b"-3.00", b"0", b"0.01"][rng.below(4)].to_vec()
                } else {
                    self.strings[rng.below(self.strings.len())].clone()
                };
                put_len(out, number, &value);
            }
            Type::Enum => {
                put_key(out, number, 0);
                let value = if rng.chance(80) {
                    rng.below(5) as i64
                } else {
                    int(rng)
                };
                put_varint(out, value as u64);
            }
            Type::Bytes => put_len(out, number, &rng.bytes(16)),
            Type::Message | Type::Group => {
                let inner = if depth < 4 {
                    self.message(rng, field.type_name(), depth + 1)
                } else {
                    Vec::new()
                };
                put_len(out, number, &inner);
            }
            Type::Bool => {
                put_key(out, number, 0);
                put_varint(out, rng.next() % 2);
            }
            Type::Sint32 | Type::Sint64 => {
                let v = int(rng);
                put_key(out, number, 0);
                put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
            }
            Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                put_key(out, number, 1);
                let bits = match rng.below(4) {
                    0 => f64::NAN.to_bits(),
                    1 => f64::INFINITY.to_bits(),
                    2 => (int(rng) as f64).to_bits(),
                    _ => rng.next(),
                };
                out.extend_from_slice(&bits.to_le_bytes());
            }
            Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                put_key(out, number, 5);
                out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
            }
            // Varints: ints.
            _ => {
                put_key(out, number, 0);
                put_varint(out, int(rng) as u64);
            }
        }
    }
}

/// A few random edits of `body`: flipped, inserted and removed bytes, a cut.
fn mutate(rng: &mut Rng, mut body: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(3) {
        match rng.below(4) {
            0 if !body.is_empty() => {
                let i = rng.below(body.len());
                body[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(body.len() + 1);
                body.insert(i, (rng.next() & 0xff) as u8);
            }
            2 if !body.is_empty() => {
                let i = rng.below(body.len());
                body.remove(i);
            }
            _ => {
                let keep = rng.below(body.len() + 1);
                body.truncate(keep);
            }
        }
    }
    body
}

/// The ids of a project ready for its gate review (so that generated calls
/// reach the handlers' rules, not only their look-ups).
async fn fixture(app: &TestApp) -> (ReadyReview, Vec<String>) {
    let ready = ready_review(app, "fuzz").await;
    let ids = vec![
        ready.org.clone(),
        ready.project.id.clone(),
        ready.project.sponsor_id.clone(),
        ready.project.lead_id.clone(),
        ready.review.clone(),
    ];
    (ready, ids)
}

/// Calls per method: random bytes, generated messages, mutated messages.
const RANDOM: usize = 6;
const GENERATED: usize = 10;
const MUTATED: usize = 8;

#[tokio::test]
async fn fuzzed_bodies_never_answer_internal_or_unknown() {
    let (methods, messages) = descriptors();
    assert!(methods.len() > 40, "the descriptor set: {methods:?}");
    on_each_backend(async |app: &TestApp| {
        let (_, ids) = fixture(app).await;
        let generator = Generator {
            messages: &messages,
            strings: string_pool(&ids),
            ids: ids.clone(),
        };
        let mut rng = Rng(0x15_15_15);
        let mut failures = Vec::new();
        let mut by_code: HashMap<Code, usize> = HashMap::new();
        for method in &methods {
            let mut bodies: Vec<Vec<u8>> = Vec::new();
            for _ in 0..RANDOM {
                bodies.push(rng.bytes(48));
            }
            for i in 0..GENERATED + MUTATED {
                let body = generator.message(&mut rng, &method.input, 0);
                bodies.push(if i < GENERATED {
                    body
                } else {
                    mutate(&mut rng, body)
                });
            }
            for body in bodies {
                // The platform administrator sometimes, the organisation's
                // administrator mostly: both reach the handlers.
                let subject = if rng.chance(15) { "root" } else { "alice" };
                let stream = if method.client_streaming {
                    vec![body.clone(), mutate(&mut rng, body.clone())]
                } else {
                    vec![body.clone()]
                };
                let code = match call_raw(&app.channel, method, subject, stream).await {
                    Ok(()) => Code::Ok,
                    Err(status) => {
                        let message = status.message().to_lowercase();
                        let leaks = [
                            "protobuf",
                            "wire type",
                            "decode",
                            "sqlx",
                            "sqlite",
                            "syntax",
                        ]
                        .iter()
                        .any(|w| message.contains(w));
                        // The database's safety net (a value it refused)
                        // means the edge missed a field; with one caller at
                        // a time, the database is never busy.
                        let net = bad_fields(&status).iter().any(|f| f == "request")
                            || message.contains("busy");
                        // An answer the client could not read (a status
                        // too large for the HTTP/2 headers).
                        let broken = message.contains("protocol error");
                        if matches!(status.code(), Code::Internal | Code::Unknown)
                            || leaks
                            || net
                            || broken
                        {
                            failures.push(format!(
                                "{} as {subject} with {:02x?}: {:?} {}",
                                method.path,
                                body,
                                status.code(),
                                status.message()
                            ));
                        }
                        status.code()
                    }
                };
                *by_code.entry(code).or_default() += 1;
            }
        }
        assert!(
            failures.is_empty(),
            "{:?}: {} calls failed badly:\n{}",
            app.db.backend,
            failures.len(),
            failures.join("\n")
        );
        // The calls reached the handlers: some answered, some named a bad
        // argument, some found nothing.
        for code in [Code::Ok, Code::InvalidArgument, Code::NotFound] {
            assert!(
                by_code.get(&code).copied().unwrap_or(0) > 0,
                "no {code:?} among {by_code:?}"
            );
        }
    })
    .await;
}

// --- Malformed bodies ------------------------------------------------------

fn create_project_method() -> Method {
    Method {
        path: "/jalon.v1.ProjectService/CreateProject".into(),
        input: ".jalon.v1.CreateProjectRequest".into(),
        client_streaming: false,
        server_streaming: false,
    }
}

#[tokio::test]
async fn malformed_bodies_are_invalid_arguments_counted_as_such() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("garbled", "alice").await;
        let method = create_project_method();
        // A wire type 7 does not exist.
        let garbage = vec![0x0f, 0xff, 0xff, 0x01];
        let status = call_raw(&app.channel, &method, "alice", vec![garbage])
            .await
            .expect_err("garbage is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            !status.message().to_lowercase().contains("protobuf"),
            "{status:?}"
        );
        // A truncated message: a length that runs past the end.
        let mut truncated = Vec::new();
        put_len(&mut truncated, 1, org.id.as_bytes());
        truncated.truncate(10);
        let status = call_raw(&app.channel, &method, "alice", vec![truncated])
            .await
            .expect_err("a truncated body is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        // A project name that is not UTF-8: the field is named.
        let mut project = Vec::new();
        put_len(&mut project, 3, &[b'a', 0xff, 0xfe]);
        let mut body = Vec::new();
        put_len(&mut body, 1, org.id.as_bytes());
        put_len(&mut body, 2, &project);
        let status = call_raw(&app.channel, &method, "alice", vec![body])
            .await
            .expect_err("invalid UTF-8 is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(bad_fields(&status), ["project.name"], "{status:?}");

        let metrics = scrape(app).await;
        assert!(
            metrics.contains(
                r#"jalon_grpc_requests_total{service="jalon.v1.ProjectService",method="CreateProject",code="INVALID_ARGUMENT"} 3"#
            ),
            "{metrics}"
        );
        assert!(
            !metrics.contains(r#"method="CreateProject",code="INTERNAL""#),
            "{metrics}"
        );
    })
    .await;
}

/// An HTTP/1.1 gRPC-Web call of `frame` to `path`: the lowercase answer.
async fn grpc_web(addr: std::net::SocketAddr, path: &str, frame: &[u8]) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: jalon\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token("alice"),
        frame.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(frame).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test]
async fn grpc_web_calls_get_the_same_invalid_argument() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    app.create_org("web", "alice").await;
    let path = "/jalon.v1.ProjectService/CreateProject";
    // An undecodable message, a frame with an invalid compression flag, a
    // frame whose length runs past the body.
    let frames: [&[u8]; 3] = [
        &[0, 0, 0, 0, 4, 0x0f, 0xff, 0xff, 0x01],
        &[7, 0, 0, 0, 1, 0],
        &[0, 0, 0, 0, 50, 0x0a, 0x01],
    ];
    for frame in frames {
        let answer = grpc_web(app.addr, path, frame).await;
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(
            answer.contains("grpc-status: 3") || answer.contains("grpc-status:3"),
            "{frame:?}: {answer}"
        );
        assert!(!answer.contains("protobuf"), "{answer}");
    }
    app.cleanup().await;
}

// --- Free text, links, benefits --------------------------------------------

#[tokio::test]
async fn nul_bytes_in_free_text_are_refused_naming_the_field() {
    on_each_backend(async |app: &TestApp| {
        let ready = ready_review(app, "nul").await;
        let (org, project) = (ready.org.clone(), ready.project.id.clone());

        let refused = app
            .projects()
            .create_project(authed(
                "dina",
                pb::CreateProjectRequest {
                    organisation_id: org.clone(),
                    project: Some(pb::Project {
                        name: "Nul".into(),
                        description: "before\0after".into(),
                        sponsor_id: ready.project.sponsor_id.clone(),
                        lead_id: ready.project.lead_id.clone(),
                        ai_act_tier: pb::AiActTier::Minimal as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await;
        let status = expect_code(refused, Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["project.description"], "{status:?}");
        assert!(status.message().contains("NUL"), "{status:?}");

        let refused = app
            .finance()
            .record_cost(authed(
                "alice",
                pb::RecordCostRequest {
                    organisation_id: org.clone(),
                    cost: Some(pb::Cost {
                        project_id: project.clone(),
                        amount: Some(pb::Money {
                            currency_code: "EUR".into(),
                            amount: "10.00".into(),
                        }),
                        category: pb::CostCategory::People as i32,
                        nature: pb::CostNature::Capex as i32,
                        incurred_on: Some(pb::Date {
                            year: 2026,
                            month: 1,
                            day: 5,
                        }),
                        description: "licence\0".into(),
                        ..Default::default()
                    }),
                },
            ))
            .await;
        let status = expect_code(refused, Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["cost.description"], "{status:?}");

        let key = first_item_key(app, &org, &project).await;
        let refused = app
            .assessments()
            .answer_assessment_item(authed(
                "lea",
                answer(&org, &project, &key, "checked\0", "https://wiki.example/e"),
            ))
            .await;
        let status = expect_code(refused, Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["note"], "{status:?}");

        // A filter too: PostgreSQL cannot even compare with a NUL.
        let refused = app
            .people()
            .list_people(authed(
                "alice",
                pb::ListPeopleRequest {
                    organisation_id: org.clone(),
                    department: "Innovation\0".into(),
                    ..Default::default()
                },
            ))
            .await;
        let status = expect_code(refused, Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["department"], "{status:?}");
        let refused = app
            .projects()
            .list_projects(authed(
                "alice",
                pb::ListProjectsRequest {
                    organisation_id: org.clone(),
                    business_unit: "Sales\0".into(),
                    ..Default::default()
                },
            ))
            .await;
        let status = expect_code(refused, Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["business_unit"], "{status:?}");
        let refused = app
            .portfolio()
            .get_portfolio_summary(authed(
                "alice",
                pb::GetPortfolioSummaryRequest {
                    organisation_id: org.clone(),
                    filter: Some(pb::PortfolioFilter {
                        business_unit: "Sales\0".into(),
                        ..Default::default()
                    }),
                    include_cost_centres: false,
                },
            ))
            .await;
        let status = expect_code(refused, Code::InvalidArgument);
        assert_eq!(bad_fields(&status), ["filter.business_unit"], "{status:?}");

        // Nothing was stored: the project's description is still empty.
        let got = app
            .projects()
            .get_project(authed(
                "alice",
                pb::GetProjectRequest {
                    organisation_id: org.clone(),
                    id: project.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        assert!(!got.description.contains('\0'));
    })
    .await;
}

async fn first_item_key(app: &TestApp, org: &str, project: &str) -> String {
    app.assessments()
        .list_assessment_items(authed(
            "lea",
            pb::ListAssessmentItemsRequest {
                organisation_id: org.into(),
                project_id: project.into(),
                phase: pb::Phase::Ideation as i32,
                concern: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items
        .into_iter()
        .next()
        .unwrap()
        .key
}

fn answer(
    org: &str,
    project: &str,
    key: &str,
    note: &str,
    evidence_uri: &str,
) -> pb::AnswerAssessmentItemRequest {
    pb::AnswerAssessmentItemRequest {
        organisation_id: org.into(),
        project_id: project.into(),
        key: key.into(),
        status: pb::AnswerStatus::Done as i32,
        risk: pb::RiskLevel::Low as i32,
        note: note.into(),
        evidence_uri: evidence_uri.into(),
        justification: String::new(),
        etag: String::new(),
    }
}

#[tokio::test]
async fn evidence_links_are_http_or_https_only() {
    on_each_backend(async |app: &TestApp| {
        let ready = ready_review(app, "links").await;
        let (org, project) = (ready.org.clone(), ready.project.id.clone());
        let key = first_item_key(app, &org, &project).await;
        for link in [
            "javascript:alert(1)",
            " JAVASCRIPT:alert(document.cookie)",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "//evil.example/x",
        ] {
            let refused = app
                .assessments()
                .answer_assessment_item(authed("lea", answer(&org, &project, &key, "ok", link)))
                .await;
            let status = expect_code(refused, Code::InvalidArgument);
            assert_eq!(bad_fields(&status), ["evidence_uri"], "{link}: {status:?}");
        }
        for link in [
            "https://wiki.example/evidence?id=3#s2",
            "http://intranet/doc.pdf",
            "",
        ] {
            app.assessments()
                .answer_assessment_item(authed("lea", answer(&org, &project, &key, "ok", link)))
                .await
                .unwrap_or_else(|s| panic!("{link}: {s:?}"));
        }
    })
    .await;
}

#[tokio::test]
async fn negative_benefits_are_refused_and_leave_the_roi_alone() {
    on_each_backend(async |app: &TestApp| {
        let ready = ready_review(app, "benefit").await;
        let (org, project) = (ready.org.clone(), ready.project.id.clone());
        let benefit = |amount: &str| pb::RecordBenefitRequest {
            organisation_id: org.clone(),
            benefit: Some(pb::Benefit {
                project_id: project.clone(),
                kind: pb::BenefitKind::Savings as i32,
                amount: Some(pb::Money {
                    currency_code: "EUR".into(),
                    amount: amount.into(),
                }),
                date: Some(pb::Date {
                    year: 2026,
                    month: 2,
                    day: 1,
                }),
                description: "saved hours".into(),
                ..Default::default()
            }),
        };
        for amount in ["-3.00", "-0.01"] {
            let refused = app
                .finance()
                .record_benefit(authed("alice", benefit(amount)))
                .await;
            let status = expect_code(refused, Code::InvalidArgument);
            assert_eq!(bad_fields(&status), ["benefit.amount"], "{status:?}");
        }
        app.finance()
            .record_benefit(authed("alice", benefit("3.00")))
            .await
            .unwrap();
        let benefits = app
            .finance()
            .list_benefits(authed(
                "alice",
                pb::ListBenefitsRequest {
                    organisation_id: org.clone(),
                    project_id: project.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .recorded;
        let recorded: Vec<_> = benefits
            .iter()
            .filter_map(|b| b.amount.as_ref().map(|a| a.amount.clone()))
            .collect();
        assert_eq!(recorded, ["3.00"]);
    })
    .await;
}

// --- Messages over the limit -----------------------------------------------

#[tokio::test]
async fn messages_over_the_limit_exhaust_a_resource_and_are_recorded_as_the_client_saw_them() {
    // Small enough that the question bank does not fit in one response.
    let app =
        TestApp::spawn_with(&Backend::Sqlite, |s| s.server.max_message_bytes = 4 * 1024).await;
    let (org, _) = app.create_org("limits", "alice").await;

    let refused = app
        .projects()
        .create_project(authed(
            "alice",
            pb::CreateProjectRequest {
                organisation_id: org.id.clone(),
                project: Some(pb::Project {
                    name: "Big".into(),
                    description: "x".repeat(8 * 1024),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await;
    let status = expect_code(refused, Code::ResourceExhausted);
    assert!(
        status.message().contains("limit of 4096 bytes"),
        "{status:?}"
    );

    let refused = app
        .assessments()
        .list_questions(authed(
            "alice",
            pb::ListQuestionsRequest {
                organisation_id: org.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    let status = expect_code(refused, Code::ResourceExhausted);
    assert!(status.message().contains("response"), "{status:?}");

    let metrics = scrape(&app).await;
    for (method, code) in [
        (
            "ProjectService\",method=\"CreateProject",
            "RESOURCE_EXHAUSTED",
        ),
        (
            "AssessmentService\",method=\"ListQuestions",
            "RESOURCE_EXHAUSTED",
        ),
    ] {
        let series =
            format!(r#"jalon_grpc_requests_total{{service="jalon.v1.{method}",code="{code}"}} 1"#);
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
    assert!(
        !metrics.contains(r#"method="ListQuestions",code="OK""#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"code="OUT_OF_RANGE""#), "{metrics}");
    assert!(
        metrics.contains("jalon_grpc_requests_in_flight 0"),
        "{metrics}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_without_credentials_is_refused_before_its_body_is_read() {
    // The decoder never sees an unauthenticated body: garbage from a caller
    // without a token is UNAUTHENTICATED, not INVALID_ARGUMENT.
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let refused = grpc
        .unary(
            Request::new(vec![0x0f, 0xff]),
            PathAndQuery::from_static("/jalon.v1.ProjectService/CreateProject"),
            RawCodec,
        )
        .await;
    expect_code(refused, Code::Unauthenticated);
    app.cleanup().await;
}
