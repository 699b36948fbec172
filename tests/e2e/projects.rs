//! ProjectService end to end.

use jalon_proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::{
    helpers::*,
    organisations::{Spoiler, futures_join_all},
};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn eur(amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "EUR".into(),
        amount: amount.into(),
    })
}

fn date(year: i32, month: i32, day: i32) -> Option<pb::Date> {
    Some(pb::Date { year, month, day })
}

/// The Vilogia callbot of the white paper, as its director files it.
fn callbot(sponsor: &str, lead: &str) -> pb::Project {
    pb::Project {
        name: "Callbot qualifying tenants' calls".into(),
        description: "A callbot that qualifies calls among 200+ reasons".into(),
        business_unit: "Customer service".into(),
        tags: vec!["Callbot".into(), "nlp".into(), "NLP".into()],
        objective: "Cut waiting time; raise pick-up and automated qualification rates".into(),
        gain_quantified: true,
        expected_gain: eur("250000.5"),
        usage: pb::Usage::Productivity as i32,
        result_type: pb::ResultType::LanguageProcessing as i32,
        data_kinds: vec![
            pb::DataKind::Audio as i32,
            pb::DataKind::Text as i32,
            pb::DataKind::Audio as i32,
        ],
        algorithm_approach: pb::AlgorithmApproach::TransferLearning as i32,
        execution: pb::Execution::RealTime as i32,
        hosting: pb::Hosting::Cloud as i32,
        personal_data: true,
        ai_act_tier: pb::AiActTier::Limited as i32,
        ai_act_reason: "talks to people: transparency duty".into(),
        sponsor_id: sponsor.into(),
        lead_id: lead.into(),
        planned_start_date: date(2026, 1, 5),
        planned_end_date: date(2026, 12, 18),
        ..Default::default()
    }
}

async fn list(app: &TestApp, who: &str, request: pb::ListProjectsRequest) -> Vec<pb::Project> {
    app.projects()
        .list_projects(authed(who, request))
        .await
        .expect("list projects")
        .into_inner()
        .projects
}

/// An organisation with a director, a sponsor, two leads and a viewer.
struct Cast {
    org: String,
    sponsor: String,
    lead: String,
    other_lead: String,
}

async fn cast(app: &TestApp) -> Cast {
    let (org, _) = app.create_org("vilogia", "alice").await;
    app.add_person("alice", &org.id, "dina", pb::Role::Director)
        .await;
    let sponsor = app
        .add_person("alice", &org.id, "sam", pb::Role::Member)
        .await;
    let lead = app
        .add_person("alice", &org.id, "lea", pb::Role::Member)
        .await;
    let other_lead = app
        .add_person("alice", &org.id, "leo", pb::Role::Member)
        .await;
    app.add_person("alice", &org.id, "vic", pb::Role::Viewer)
        .await;
    Cast {
        org: org.id,
        sponsor: sponsor.id,
        lead: lead.id,
        other_lead: other_lead.id,
    }
}

#[tokio::test]
async fn project_create_get_update() {
    on_each_backend(async |app: &TestApp| {
        let c = cast(app).await;
        let p = app
            .try_create_project("dina", &c.org, callbot(&c.sponsor, &c.lead))
            .await
            .expect("create");
        assert_eq!(p.phase, pb::Phase::Ideation as i32);
        assert_eq!(p.status, pb::ProjectStatus::Active as i32);
        assert_eq!(p.phase_history.len(), 1);
        assert_eq!(p.phase_history[0].phase, pb::Phase::Ideation as i32);
        assert!(p.phase_history[0].leave_time.is_none());
        assert_eq!(
            p.tags,
            vec!["callbot", "nlp"],
            "tags are lowercase, sorted, deduplicated"
        );
        assert_eq!(
            p.expected_gain,
            eur("250000.50"),
            "money is exact, in minor units"
        );
        assert_eq!(
            p.data_kinds,
            vec![pb::DataKind::Text as i32, pb::DataKind::Audio as i32]
        );
        assert_eq!(p.ai_act_tier, pb::AiActTier::Limited as i32);
        assert_eq!(p.planned_start_date, date(2026, 1, 5));
        assert_eq!(p.sponsor_id, c.sponsor);

        let got = app
            .projects()
            .get_project(authed(
                "vic",
                pb::GetProjectRequest {
                    organisation_id: c.org.clone(),
                    id: p.id.clone(),
                },
            ))
            .await
            .expect("a viewer reads it")
            .into_inner()
            .project
            .unwrap();
        assert_eq!(got, p);

        let updated = app
            .projects()
            .update_project(authed(
                "lea",
                pb::UpdateProjectRequest {
                    organisation_id: c.org.clone(),
                    project: Some(pb::Project {
                        id: p.id.clone(),
                        etag: p.etag.clone(),
                        ai_act_tier: pb::AiActTier::High as i32,
                        ai_act_reason: "screens tenants: essential private service".into(),
                        tags: vec!["callbot".into(), "pilot".into()],
                        name: "not in the mask".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["ai_act_tier", "ai_act_reason", "tags"]),
                },
            ))
            .await
            .expect("the lead updates")
            .into_inner()
            .project
            .unwrap();
        assert_eq!(updated.ai_act_tier, pb::AiActTier::High as i32);
        assert_eq!(updated.tags, vec!["callbot", "pilot"]);
        assert_eq!(updated.name, p.name);
        assert_ne!(updated.etag, p.etag);

        let stale = app
            .projects()
            .update_project(authed(
                "dina",
                pb::UpdateProjectRequest {
                    organisation_id: c.org.clone(),
                    project: Some(pb::Project {
                        id: p.id.clone(),
                        etag: p.etag.clone(),
                        name: "Stale".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                },
            ))
            .await;
        expect_code(stale, Code::Aborted);

        for lifecycle in ["phase", "status", "phase_history"] {
            let refused = app
                .projects()
                .update_project(authed(
                    "dina",
                    pb::UpdateProjectRequest {
                        organisation_id: c.org.clone(),
                        project: Some(pb::Project {
                            id: p.id.clone(),
                            phase: pb::Phase::Deployment as i32,
                            status: pb::ProjectStatus::InProduction as i32,
                            ..Default::default()
                        }),
                        update_mask: mask(&[lifecycle]),
                    },
                ))
                .await;
            expect_bad_field(refused, "update_mask");
        }
        let unchanged = app
            .projects()
            .get_project(authed(
                "dina",
                pb::GetProjectRequest {
                    organisation_id: c.org.clone(),
                    id: p.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        assert_eq!(unchanged.phase, pb::Phase::Ideation as i32);
        assert_eq!(unchanged.status, pb::ProjectStatus::Active as i32);
    })
    .await;
}

#[tokio::test]
async fn bad_project_input_names_the_field() {
    on_each_backend(async |app: &TestApp| {
        let c = cast(app).await;
        let (other, stranger) = app.create_org("elsewhere", "olga").await;
        let _ = other;
        let gone = app
            .add_person("alice", &c.org, "gone", pb::Role::Member)
            .await;
        app.people()
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: c.org.clone(),
                    id: gone.id.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .unwrap();
        let cases: Vec<(&str, Spoiler<pb::Project>)> = vec![
            ("project.name", Box::new(|p| p.name = "  ".into())),
            (
                "project.expected_gain",
                Box::new(|p| {
                    p.expected_gain = Some(pb::Money {
                        currency_code: "USD".into(),
                        amount: "10".into(),
                    })
                }),
            ),
            (
                "project.expected_gain",
                Box::new(|p| p.expected_gain = eur("10.001")),
            ),
            (
                "project.expected_gain",
                Box::new(|p| p.expected_gain = eur("ten")),
            ),
            (
                "project.expected_gain",
                Box::new(|p| p.gain_quantified = false),
            ),
            (
                "project.ai_act_reason",
                Box::new(|p| {
                    p.ai_act_tier = pb::AiActTier::Prohibited as i32;
                    p.ai_act_reason = String::new();
                }),
            ),
            (
                "project.planned_end_date",
                Box::new(|p| p.planned_end_date = date(2025, 1, 1)),
            ),
            (
                "project.planned_start_date",
                Box::new(|p| p.planned_start_date = date(2026, 2, 30)),
            ),
            (
                "project.tags",
                Box::new(|p| p.tags = vec!["no spaces".into()]),
            ),
            ("project.data_kinds", Box::new(|p| p.data_kinds = vec![0])),
            ("project.usage", Box::new(|p| p.usage = 99)),
            (
                "project.sponsor_id",
                Box::new(|p| p.sponsor_id = "sam".into()),
            ),
            (
                "project.sponsor_id",
                Box::new(|p| p.sponsor_id = p.lead_id.clone()),
            ),
        ];
        for (field, spoil) in cases {
            let mut p = callbot(&c.sponsor, &c.lead);
            spoil(&mut p);
            expect_bad_field(app.try_create_project("dina", &c.org, p).await, field);
        }
        let mut p = callbot(&stranger.id, &c.lead);
        expect_bad_field(
            app.try_create_project("dina", &c.org, p.clone()).await,
            "project.sponsor_id",
        );
        p.sponsor_id = gone.id.clone();
        expect_bad_field(
            app.try_create_project("dina", &c.org, p).await,
            "project.sponsor_id",
        );
        expect_bad_field(
            app.projects()
                .create_project(authed(
                    "dina",
                    pb::CreateProjectRequest {
                        organisation_id: c.org.clone(),
                        project: None,
                        request_id: String::new(),
                    },
                ))
                .await,
            "project",
        );
        for (field, request) in [
            (
                "page_size",
                pb::ListProjectsRequest {
                    page_size: 501,
                    ..Default::default()
                },
            ),
            (
                "phase",
                pb::ListProjectsRequest {
                    phase: 9,
                    ..Default::default()
                },
            ),
            (
                "sponsor_id",
                pb::ListProjectsRequest {
                    sponsor_id: "x".into(),
                    ..Default::default()
                },
            ),
            (
                "tag",
                pb::ListProjectsRequest {
                    tag: "a b".into(),
                    ..Default::default()
                },
            ),
        ] {
            let request = pb::ListProjectsRequest {
                organisation_id: c.org.clone(),
                ..request
            };
            expect_bad_field(
                app.projects().list_projects(authed("dina", request)).await,
                field,
            );
        }
    })
    .await;
}

#[tokio::test]
async fn list_projects_filters_and_pages() {
    on_each_backend(async |app: &TestApp| {
        let c = cast(app).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut p = callbot(&c.sponsor, if i % 2 == 0 { &c.lead } else { &c.other_lead });
            p.name = format!("Project {i}");
            p.business_unit = if i < 2 {
                "Retail".into()
            } else {
                "Housing".into()
            };
            p.tags = vec![format!("wave-{}", i % 2)];
            if i == 4 {
                p.ai_act_tier = pb::AiActTier::High as i32;
                p.ai_act_reason = "recruitment".into();
            }
            ids.push(
                app.try_create_project("dina", &c.org, p)
                    .await
                    .expect("create")
                    .id,
            );
        }
        let all = |r: pb::ListProjectsRequest| pb::ListProjectsRequest {
            organisation_id: c.org.clone(),
            ..r
        };
        let names = |ps: Vec<pb::Project>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(names(list(app, "dina", all(Default::default())).await), ids);
        assert_eq!(
            names(
                list(
                    app,
                    "dina",
                    all(pb::ListProjectsRequest {
                        lead_id: c.lead.clone(),
                        ..Default::default()
                    })
                )
                .await
            ),
            vec![ids[0].clone(), ids[2].clone(), ids[4].clone()]
        );
        assert_eq!(
            list(
                app,
                "dina",
                all(pb::ListProjectsRequest {
                    sponsor_id: c.sponsor.clone(),
                    ..Default::default()
                })
            )
            .await
            .len(),
            5
        );
        assert_eq!(
            names(
                list(
                    app,
                    "dina",
                    all(pb::ListProjectsRequest {
                        business_unit: "Retail".into(),
                        ..Default::default()
                    })
                )
                .await
            ),
            ids[..2].to_vec()
        );
        assert_eq!(
            names(
                list(
                    app,
                    "dina",
                    all(pb::ListProjectsRequest {
                        tag: "WAVE-1".into(),
                        ..Default::default()
                    })
                )
                .await
            ),
            vec![ids[1].clone(), ids[3].clone()]
        );
        assert_eq!(
            names(
                list(
                    app,
                    "dina",
                    all(pb::ListProjectsRequest {
                        ai_act_tier: pb::AiActTier::High as i32,
                        ..Default::default()
                    })
                )
                .await
            ),
            vec![ids[4].clone()]
        );
        assert_eq!(
            list(
                app,
                "dina",
                all(pb::ListProjectsRequest {
                    phase: pb::Phase::Ideation as i32,
                    status: pb::ProjectStatus::Active as i32,
                    ..Default::default()
                })
            )
            .await
            .len(),
            5
        );
        assert!(
            list(
                app,
                "dina",
                all(pb::ListProjectsRequest {
                    phase: pb::Phase::Poc as i32,
                    ..Default::default()
                })
            )
            .await
            .is_empty()
        );
        assert!(
            list(
                app,
                "dina",
                all(pb::ListProjectsRequest {
                    status: pb::ProjectStatus::Stopped as i32,
                    ..Default::default()
                })
            )
            .await
            .is_empty()
        );
        assert_eq!(
            names(
                list(
                    app,
                    "dina",
                    all(pb::ListProjectsRequest {
                        lead_id: c.lead.clone(),
                        tag: "wave-0".into(),
                        business_unit: "Housing".into(),
                        ..Default::default()
                    })
                )
                .await
            ),
            vec![ids[2].clone(), ids[4].clone()]
        );

        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = app
                .projects()
                .list_projects(authed(
                    "dina",
                    all(pb::ListProjectsRequest {
                        page_size: 2,
                        page_token: token.clone(),
                        ..Default::default()
                    }),
                ))
                .await
                .expect("page")
                .into_inner();
            seen.extend(page.projects.into_iter().map(|p| p.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, ids);
    })
    .await;
}

#[tokio::test]
async fn members_see_and_change_only_their_projects() {
    on_each_backend(async |app: &TestApp| {
        let c = cast(app).await;
        let leas = app
            .try_create_project("dina", &c.org, callbot(&c.sponsor, &c.lead))
            .await
            .expect("lea's");
        let leos = app
            .try_create_project("dina", &c.org, callbot(&c.sponsor, &c.other_lead))
            .await
            .expect("leo's");

        // Lea sees what she leads; Sam what he sponsors; the viewer everything.
        assert_eq!(
            list(
                app,
                "lea",
                pb::ListProjectsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                }
            )
            .await
            .len(),
            1
        );
        assert_eq!(
            list(
                app,
                "sam",
                pb::ListProjectsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                }
            )
            .await
            .len(),
            2
        );
        assert_eq!(
            list(
                app,
                "vic",
                pb::ListProjectsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                }
            )
            .await
            .len(),
            2
        );
        let hidden = app
            .projects()
            .get_project(authed(
                "lea",
                pb::GetProjectRequest {
                    organisation_id: c.org.clone(),
                    id: leos.id.clone(),
                },
            ))
            .await;
        expect_code(hidden, Code::NotFound);
        let update = |who: &str, id: &str| {
            let mut projects = app.projects();
            let request = authed(
                who,
                pb::UpdateProjectRequest {
                    organisation_id: c.org.clone(),
                    project: Some(pb::Project {
                        id: id.into(),
                        name: format!("Renamed by {who}"),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                },
            );
            async move { projects.update_project(request).await }
        };
        expect_code(update("lea", &leos.id).await, Code::NotFound);
        expect_code(update("sam", &leas.id).await, Code::PermissionDenied);
        expect_code(update("vic", &leas.id).await, Code::PermissionDenied);
        assert!(update("lea", &leas.id).await.is_ok());
        assert!(update("dina", &leos.id).await.is_ok());

        // A member who proposes a project leads it by default.
        let mut own = callbot(&c.sponsor, "");
        own.lead_id = String::new();
        let proposed = app
            .try_create_project("leo", &c.org, own)
            .await
            .expect("a member proposes");
        assert_eq!(proposed.lead_id, c.other_lead);
        let mut for_others = callbot(&c.sponsor, &c.lead);
        for_others.name = "Someone else's".into();
        expect_code(
            app.try_create_project("leo", &c.org, for_others).await,
            Code::PermissionDenied,
        );
        expect_code(
            app.try_create_project("vic", &c.org, callbot(&c.sponsor, &c.lead))
                .await,
            Code::PermissionDenied,
        );
    })
    .await;
}

#[tokio::test]
async fn another_organisation_sees_no_project() {
    on_each_backend(async |app: &TestApp| {
        let c = cast(app).await;
        let p = app
            .try_create_project("dina", &c.org, callbot(&c.sponsor, &c.lead))
            .await
            .expect("create");
        let (b, _) = app.create_org("other", "bert").await;
        for outsider in ["bert", "nobody"] {
            let got = app
                .projects()
                .get_project(authed(
                    outsider,
                    pb::GetProjectRequest {
                        organisation_id: c.org.clone(),
                        id: p.id.clone(),
                    },
                ))
                .await;
            expect_code(got, Code::NotFound);
            let through_b = app
                .projects()
                .get_project(authed(
                    outsider,
                    pb::GetProjectRequest {
                        organisation_id: b.id.clone(),
                        id: p.id.clone(),
                    },
                ))
                .await;
            assert!(matches!(
                through_b.map(drop).unwrap_err().code(),
                Code::NotFound
            ));
            let listed = app
                .projects()
                .list_projects(authed(
                    outsider,
                    pb::ListProjectsRequest {
                        organisation_id: c.org.clone(),
                        ..Default::default()
                    },
                ))
                .await;
            expect_code(listed, Code::NotFound);
            let updated = app
                .projects()
                .update_project(authed(
                    outsider,
                    pb::UpdateProjectRequest {
                        organisation_id: c.org.clone(),
                        project: Some(pb::Project {
                            id: p.id.clone(),
                            name: "Owned".into(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["name"]),
                    },
                ))
                .await;
            expect_code(updated, Code::NotFound);
            expect_code(
                app.try_create_project(outsider, &c.org, callbot(&c.sponsor, &c.lead))
                    .await,
                Code::NotFound,
            );
        }
        let unchanged = app
            .projects()
            .get_project(authed(
                "dina",
                pb::GetProjectRequest {
                    organisation_id: c.org.clone(),
                    id: p.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap();
        assert_eq!(unchanged, p);
        assert_eq!(
            list(
                app,
                "dina",
                pb::ListProjectsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                }
            )
            .await
            .len(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn create_project_retries_with_a_request_id_create_nothing_new() {
    on_each_backend(async |app: &TestApp| {
        let c = cast(app).await;
        let request_id = uuid::Uuid::now_v7().to_string();
        let calls = (0..3).map(|_| {
            let mut projects = app.projects();
            let request = pb::CreateProjectRequest {
                organisation_id: c.org.clone(),
                project: Some(callbot(&c.sponsor, &c.lead)),
                request_id: request_id.clone(),
            };
            async move { projects.create_project(authed("dina", request)).await }
        });
        let ids: Vec<String> = futures_join_all(calls)
            .await
            .into_iter()
            .map(|r| r.expect("ok").into_inner().project.unwrap().id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        assert_eq!(
            list(
                app,
                "dina",
                pb::ListProjectsRequest {
                    organisation_id: c.org.clone(),
                    ..Default::default()
                }
            )
            .await
            .len(),
            1
        );
    })
    .await;
}
