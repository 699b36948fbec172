//! Streamed imports against their time limits and their answer: a stream is
//! not cut by the request timeout but by its client's silence
//! (`server.import_idle_timeout_secs`) or its client's deadline; the batches
//! written before a failure stay written; the answer lists the rows not
//! accepted, up to a cap, and counts the rest.

use std::time::Duration;

use jalon_proto::v1 as pb;
use jalon_server::grpc::import::MAX_RESULTS;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::{helpers::*, kpis::callbot};

/// Rows per transaction of the server of the stalled-import test (not the
/// default: the setting is what the server follows).
const IMPORT_CHUNK: usize = 300;

/// `n` valid costs of the project, refs `{prefix}-0`, `{prefix}-1`...
fn costs(project: &str, prefix: &str, n: usize) -> Vec<pb::Cost> {
    (0..n)
        .map(|i| pb::Cost {
            project_id: project.into(),
            amount: Some(pb::Money {
                currency_code: "EUR".into(),
                amount: format!("{}.25", 100 + i),
            }),
            category: pb::CostCategory::Cloud as i32,
            nature: pb::CostNature::Opex as i32,
            incurred_on: Some(pb::Date {
                year: 2026,
                month: 3,
                day: 1 + i32::try_from(i % 28).unwrap(),
            }),
            cost_centre: "CC-7".into(),
            phase: pb::Phase::Poc as i32,
            external_ref: format!("{prefix}-{i}"),
            ..Default::default()
        })
        .collect()
}

/// A stream the test feeds by hand: the call, and the sender of its
/// messages (the stream stays open while the sender lives).
fn open_stream() -> (
    mpsc::Sender<pb::ImportCostsRequest>,
    ReceiverStream<pb::ImportCostsRequest>,
) {
    let (tx, rx) = mpsc::channel(16);
    (tx, ReceiverStream::new(rx))
}

/// Every page of `ListCosts` under `filter` (its organisation and project
/// are set here), `page_size` at a time.
async fn list_pages(
    app: &TestApp,
    org: &str,
    project: &str,
    filter: pb::ListCostsRequest,
    page_size: i32,
) -> Vec<pb::Cost> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .finance()
            .list_costs(authed(
                "alice",
                pb::ListCostsRequest {
                    organisation_id: org.into(),
                    project_id: project.into(),
                    page_size,
                    page_token: token.clone(),
                    ..filter.clone()
                },
            ))
            .await
            .expect("list costs")
            .into_inner();
        assert!(page.costs.len() <= usize::try_from(page_size).unwrap());
        all.extend(page.costs);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

async fn list_costs(app: &TestApp, org: &str, project: &str) -> Vec<pb::Cost> {
    list_pages(app, org, project, pb::ListCostsRequest::default(), 500).await
}

#[tokio::test]
async fn an_import_longer_than_the_request_timeout_completes() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.server.request_timeout_secs = 1).await;
        let c = callbot(&app).await;
        let rows = costs(&c.project, "slow", 12);
        let (tx, stream) = open_stream();
        let org = c.org.clone();
        let feeder = tokio::spawn(async move {
            // Six messages over about three seconds: three request timeouts.
            for chunk in rows.chunks(2) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let message = pb::ImportCostsRequest {
                    organisation_id: org.clone(),
                    costs: chunk.to_vec(),
                };
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        let imported = app
            .finance()
            .import_costs(authed("erp", stream))
            .await
            .expect("the stream is not cut by the request timeout")
            .into_inner();
        feeder.await.expect("feeder");
        assert_eq!(
            (imported.accepted, imported.duplicates, imported.rejected),
            (12, 0, 0)
        );
        assert!(imported.results.is_empty(), "{:?}", imported.results);
        assert_eq!(imported.omitted_results, 0);
        assert_eq!(list_costs(&app, &c.org, &c.project).await.len(), 12);
        app.cleanup().await;
    }
}

#[tokio::test]
async fn a_stalled_import_fails_after_the_idle_timeout_and_keeps_its_written_batches() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.server.import_idle_timeout_secs = 1;
            s.server.import_batch_rows = IMPORT_CHUNK;
        })
        .await;
        let c = callbot(&app).await;
        // One batch and five rows more, then silence.
        let rows = costs(&c.project, "stall", IMPORT_CHUNK + 5);
        let (tx, stream) = open_stream();
        tx.send(pb::ImportCostsRequest {
            organisation_id: c.org.clone(),
            costs: rows.clone(),
        })
        .await
        .expect("send");
        let stalled = app.finance().import_costs(authed("erp", stream)).await;
        let status = expect_code(stalled, Code::DeadlineExceeded);
        assert!(
            status.message().contains("server.import_idle_timeout_secs"),
            "{status:?}"
        );
        // The sender lived until now: the server gave up, not the client.
        drop(tx);

        // The full batch was written as the stream went; the five rows
        // after it were waiting for the next batch and are not.
        let written = list_costs(&app, &c.org, &c.project).await;
        assert_eq!(written.len(), IMPORT_CHUNK);
        let mut refs: Vec<&str> = written.iter().map(|c| c.external_ref.as_str()).collect();
        refs.sort_unstable();
        let mut expected: Vec<&str> = rows[..IMPORT_CHUNK]
            .iter()
            .map(|c| c.external_ref.as_str())
            .collect();
        expected.sort_unstable();
        assert_eq!(refs, expected);

        // Resending the whole file completes it: the written rows come back
        // as duplicates, in row order, with their ids.
        let retried = app
            .finance()
            .import_costs(authed(
                "erp",
                tokio_stream::iter([pb::ImportCostsRequest {
                    organisation_id: c.org.clone(),
                    costs: rows,
                }]),
            ))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(
            (retried.accepted, retried.duplicates, retried.rejected),
            (5, i64::try_from(IMPORT_CHUNK).unwrap(), 0)
        );
        assert_eq!(retried.results.len(), IMPORT_CHUNK);
        for (i, result) in retried.results.iter().enumerate() {
            assert_eq!(result.row, i64::try_from(i).unwrap());
            assert_eq!(result.status, pb::ImportCostStatus::Duplicate as i32);
            let original = written
                .iter()
                .find(|w| w.external_ref == format!("stall-{i}"))
                .expect("written");
            assert_eq!(result.id, original.id);
        }
        assert_eq!(retried.omitted_results, 0);
        assert_eq!(
            list_costs(&app, &c.org, &c.project).await.len(),
            IMPORT_CHUNK + 5
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn the_results_stop_at_the_cap_and_count_the_rows_left_out() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let c = callbot(&app).await;
        let good = costs(&c.project, "cap", 3);
        let mut finance = app.finance();
        let first = finance
            .import_costs(authed(
                "erp",
                tokio_stream::iter([pb::ImportCostsRequest {
                    organisation_id: c.org.clone(),
                    costs: good.clone(),
                }]),
            ))
            .await
            .expect("first import")
            .into_inner();
        assert_eq!(first.accepted, 3);

        // The three again (duplicates), then more refused rows than the cap
        // lists: in another currency, refused before any database work.
        let refused = MAX_RESULTS + 7;
        let mut rows = good;
        rows.extend(costs(&c.project, "usd", refused).into_iter().map(|mut c| {
            c.amount = Some(pb::Money {
                currency_code: "USD".into(),
                amount: "10".into(),
            });
            c
        }));
        let messages: Vec<pb::ImportCostsRequest> = rows
            .chunks(1000)
            .map(|chunk| pb::ImportCostsRequest {
                organisation_id: c.org.clone(),
                costs: chunk.to_vec(),
            })
            .collect();
        let answer = finance
            .import_costs(authed("erp", tokio_stream::iter(messages)))
            .await
            .expect("import")
            .into_inner();
        assert_eq!(
            (answer.accepted, answer.duplicates, answer.rejected),
            (0, 3, i64::try_from(refused).unwrap())
        );
        assert_eq!(answer.results.len(), MAX_RESULTS);
        assert_eq!(
            answer.omitted_results,
            i64::try_from(3 + refused - MAX_RESULTS).unwrap()
        );
        assert_eq!(
            answer.duplicates + answer.rejected,
            i64::try_from(answer.results.len()).unwrap() + answer.omitted_results
        );
        // The first rows not accepted, in row order.
        for (i, result) in answer.results.iter().enumerate() {
            assert_eq!(result.row, i64::try_from(i).unwrap());
        }
        assert!(
            answer.results[..3]
                .iter()
                .all(|r| r.status == pb::ImportCostStatus::Duplicate as i32 && !r.id.is_empty())
        );
        assert!(answer.results[3..].iter().all(|r| {
            r.status == pb::ImportCostStatus::Rejected as i32
                && r.field == "amount"
                && r.reason.contains("USD")
                && r.id.is_empty()
        }));
        app.cleanup().await;
    }
}

#[tokio::test]
async fn the_clients_deadline_still_bounds_a_stream() {
    // A raw HTTP/1.1 gRPC-Web call: the client enforces no deadline of its
    // own, so an answer can only come from the server.
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /jalon.v1.FinanceService/ImportCosts HTTP/1.1\r\nHost: jalon\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\ngrpc-timeout: 1S\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        token("erp")
    );
    socket.write_all(head.as_bytes()).await.expect("write head");
    // No message, and the body stays open: the stream is neither finished
    // nor idle for 60 s (the default) when the 1 s deadline passes.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&answer).contains("grpc-status") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(read.is_ok(), "no answer within 10 s: {answer}");
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("grpc-status: 1\r\n"), "CANCELLED: {answer}");
    assert!(answer.contains("timeout"), "{answer}");
    app.cleanup().await;
}

/// Paging through thousands of costs, with filters, returns each exactly
/// once in date order, while costs keep arriving; a token is bound to its
/// filters.
#[tokio::test]
async fn list_costs_pages_through_every_cost_once_with_filters() {
    on_each_backend(async |app: &TestApp| {
        let c = callbot(app).await;
        let mut rows = costs(&c.project, "page", 3_000);
        for (i, row) in rows.iter_mut().enumerate() {
            if i % 3 == 0 {
                row.category = pb::CostCategory::People as i32;
                row.cost_centre = "CC-9".into();
            }
        }
        let messages: Vec<pb::ImportCostsRequest> = rows
            .chunks(500)
            .map(|chunk| pb::ImportCostsRequest {
                organisation_id: c.org.clone(),
                costs: chunk.to_vec(),
            })
            .collect();
        let imported = app
            .finance()
            .import_costs(authed("erp", tokio_stream::iter(messages)))
            .await
            .expect("import")
            .into_inner();
        assert_eq!(imported.accepted, 3_000);

        let all = list_pages(
            app,
            &c.org,
            &c.project,
            pb::ListCostsRequest::default(),
            137,
        )
        .await;
        assert_eq!(all.len(), 3_000);
        let ids: std::collections::BTreeSet<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 3_000, "each cost exactly once");
        let key = |c: &pb::Cost| {
            let d = c.incurred_on.as_ref().unwrap();
            (d.year, d.month, d.day, c.id.clone())
        };
        assert!(
            all.windows(2).all(|w| key(&w[0]) < key(&w[1])),
            "by date, then id"
        );

        // Filters: a date range, a category, a cost centre.
        let day = |d: i32| {
            Some(pb::Date {
                year: 2026,
                month: 3,
                day: d,
            })
        };
        let ranged = list_pages(
            app,
            &c.org,
            &c.project,
            pb::ListCostsRequest {
                incurred_from: day(10),
                incurred_to: day(12),
                ..Default::default()
            },
            50,
        )
        .await;
        let expected = all
            .iter()
            .filter(|c| (10..=12).contains(&c.incurred_on.as_ref().unwrap().day))
            .count();
        assert_eq!(ranged.len(), expected);
        let people = list_pages(
            app,
            &c.org,
            &c.project,
            pb::ListCostsRequest {
                category: pb::CostCategory::People as i32,
                cost_centre: "CC-9".into(),
                ..Default::default()
            },
            500,
        )
        .await;
        assert_eq!(people.len(), 1_000);
        assert!(people.iter().all(|c| c.cost_centre == "CC-9"));

        // A token is bound to its filters; bad filters name the field.
        let first = app
            .finance()
            .list_costs(authed(
                "alice",
                pb::ListCostsRequest {
                    organisation_id: c.org.clone(),
                    project_id: c.project.clone(),
                    page_size: 10,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        expect_bad_field(
            app.finance()
                .list_costs(authed(
                    "alice",
                    pb::ListCostsRequest {
                        organisation_id: c.org.clone(),
                        project_id: c.project.clone(),
                        page_token: first.next_page_token,
                        category: pb::CostCategory::People as i32,
                        ..Default::default()
                    },
                ))
                .await,
            "page_token",
        );
        expect_bad_field(
            app.finance()
                .list_costs(authed(
                    "alice",
                    pb::ListCostsRequest {
                        organisation_id: c.org.clone(),
                        project_id: c.project.clone(),
                        incurred_from: day(12),
                        incurred_to: day(10),
                        ..Default::default()
                    },
                ))
                .await,
            "incurred_to",
        );
        expect_bad_field(
            app.finance()
                .list_costs(authed(
                    "alice",
                    pb::ListCostsRequest {
                        organisation_id: c.org.clone(),
                        project_id: c.project.clone(),
                        page_size: 501,
                        ..Default::default()
                    },
                ))
                .await,
            "page_size",
        );
    })
    .await;
}
