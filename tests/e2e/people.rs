//! PersonService end to end.

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

fn create(org: &str, p: pb::Person, request_id: &str) -> pb::CreatePersonRequest {
    pb::CreatePersonRequest {
        organisation_id: org.into(),
        person: Some(p),
        request_id: request_id.into(),
    }
}

fn update(org: &str, p: pb::Person, paths: &[&str]) -> pb::UpdatePersonRequest {
    pb::UpdatePersonRequest {
        organisation_id: org.into(),
        person: Some(p),
        update_mask: mask(paths),
    }
}

async fn list(app: &TestApp, who: &str, request: pb::ListPeopleRequest) -> pb::ListPeopleResponse {
    app.people()
        .list_people(authed(who, request))
        .await
        .expect("list people")
        .into_inner()
}

#[tokio::test]
async fn person_lifecycle_create_get_update_deactivate_reactivate() {
    on_each_backend(async |app: &TestApp| {
        let (org, alice) = app.create_org("acme", "alice").await;
        let mut people = app.people();
        let mut new = person("bob", pb::Role::Member);
        new.email = "Bob.Builder@Example.COM".into();
        new.manager_id = alice.id.clone();
        new.external_id = Some("HR-0001".into());
        let bob = people
            .create_person(authed("alice", create(&org.id, new, "")))
            .await
            .expect("create")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(
            bob.email, "bob.builder@example.com",
            "emails are stored lowercase"
        );
        assert_eq!(bob.manager_id, alice.id);
        assert_eq!(bob.role, pb::Role::Member as i32);
        assert!(bob.active);

        // Bob, a member, reads people.
        let got = people
            .get_person(authed(
                "bob",
                pb::GetPersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(got, bob);

        let updated = people
            .update_person(authed(
                "alice",
                update(
                    &org.id,
                    pb::Person {
                        id: bob.id.clone(),
                        job_title: "Project lead".into(),
                        department: "Ops".into(),
                        etag: bob.etag.clone(),
                        display_name: "ignored".into(),
                        ..Default::default()
                    },
                    &["job_title", "department"],
                ),
            ))
            .await
            .expect("update")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(updated.job_title, "Project lead");
        assert_eq!(updated.department, "Ops");
        assert_eq!(updated.display_name, bob.display_name);
        expect_code(
            people
                .update_person(authed(
                    "alice",
                    update(
                        &org.id,
                        pb::Person {
                            id: bob.id.clone(),
                            job_title: "x".into(),
                            etag: bob.etag.clone(),
                            ..Default::default()
                        },
                        &["job_title"],
                    ),
                ))
                .await,
            Code::Aborted,
        );
        // Clearing the manager.
        let unmanaged = people
            .update_person(authed(
                "alice",
                update(
                    &org.id,
                    pb::Person {
                        id: bob.id.clone(),
                        ..Default::default()
                    },
                    &["manager_id"],
                ),
            ))
            .await
            .expect("clear manager")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(unmanaged.manager_id, "");

        let deactivated = people
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: unmanaged.etag.clone(),
                },
            ))
            .await
            .expect("deactivate")
            .into_inner()
            .person
            .unwrap();
        assert!(!deactivated.active);
        assert!(deactivated.deactivate_time.is_some());
        // A deactivated person no longer sees the organisation.
        expect_code(
            people
                .get_person(authed(
                    "bob",
                    pb::GetPersonRequest {
                        organisation_id: org.id.clone(),
                        id: bob.id.clone(),
                    },
                ))
                .await,
            Code::NotFound,
        );
        // A second deactivation (a connector's retry) is OK and changes
        // nothing.
        let again = people
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("deactivate again")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(again, deactivated);
        let reactivated = people
            .reactivate_person(authed(
                "alice",
                pb::ReactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: deactivated.etag.clone(),
                },
            ))
            .await
            .expect("reactivate")
            .into_inner()
            .person
            .unwrap();
        assert!(reactivated.active && reactivated.deactivate_time.is_none());
    })
    .await;
}

#[tokio::test]
async fn list_people_filters_and_pages_through_concurrent_inserts() {
    on_each_backend(async |app: &TestApp| {
        let (org, alice) = app.create_org("acme", "alice").await;
        let mut originals = vec![alice.id.clone()];
        for i in 0..6 {
            let role = if i % 2 == 0 {
                pb::Role::Member
            } else {
                pb::Role::Viewer
            };
            originals.push(
                app.add_person("alice", &org.id, &format!("p{i}"), role)
                    .await
                    .id,
            );
        }
        // Page through with size 2 while others are being added.
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut added = 0;
        loop {
            let page = list(
                app,
                "alice",
                pb::ListPeopleRequest {
                    organisation_id: org.id.clone(),
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            )
            .await;
            seen.extend(page.people.into_iter().map(|p| p.id));
            if page.next_page_token.is_empty() {
                break;
            }
            app.add_person("alice", &org.id, &format!("late{added}"), pb::Role::Member)
                .await;
            added += 1;
            token = page.next_page_token;
        }
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no person twice");
        assert_eq!(
            &seen[..originals.len()],
            &originals[..],
            "every original, in order, none skipped"
        );
        assert_eq!(
            seen.len(),
            originals.len() + added,
            "rows inserted behind the cursor show up at the end"
        );

        let viewers = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                role: pb::Role::Viewer as i32,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(viewers.people.len(), 3);
        assert!(
            viewers
                .people
                .iter()
                .all(|p| p.role == pb::Role::Viewer as i32)
        );

        let p0 = &originals[1];
        app.people()
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: p0.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("deactivate");
        let inactive = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                active: Some(false),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            inactive
                .people
                .iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>(),
            vec![p0.clone()]
        );
        let active = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                active: Some(true),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(active.people.len(), seen.len() - 1);

        let mut hr = person("hr-linked", pb::Role::Member);
        hr.department = "Finance".into();
        hr.external_id = Some("HR-77".into());
        app.people()
            .create_person(authed("alice", create(&org.id, hr, "")))
            .await
            .expect("create");
        let by_department = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                department: "Finance".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(by_department.people.len(), 1);
        let by_external = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                external_id: "HR-77".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(by_external.people[0].subject, "hr-linked");

        // Page tokens are bound to their filters.
        let first = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                page_size: 1,
                ..Default::default()
            },
        )
        .await;
        let other = app
            .people()
            .list_people(authed(
                "alice",
                pb::ListPeopleRequest {
                    organisation_id: org.id.clone(),
                    page_size: 1,
                    page_token: first.next_page_token,
                    role: pb::Role::Admin as i32,
                    ..Default::default()
                },
            ))
            .await;
        expect_bad_field(other, "page_token");
    })
    .await;
}

#[tokio::test]
async fn people_uniqueness_is_already_exists() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let mut people = app.people();
        let mut bob = person("bob", pb::Role::Member);
        bob.external_id = Some("HR-1".into());
        people
            .create_person(authed("alice", create(&org.id, bob.clone(), "")))
            .await
            .expect("bob");

        let mut same_subject = person("bob", pb::Role::Member);
        same_subject.email = "other@example.com".into();
        let status = expect_code(
            people
                .create_person(authed("alice", create(&org.id, same_subject, "")))
                .await,
            Code::AlreadyExists,
        );
        assert!(status.message().contains("subject"), "{status:?}");

        let mut same_email = person("bobby", pb::Role::Member);
        same_email.email = "BOB@example.com".into();
        let status = expect_code(
            people
                .create_person(authed("alice", create(&org.id, same_email, "")))
                .await,
            Code::AlreadyExists,
        );
        assert!(status.message().contains("email"), "{status:?}");

        let mut same_hr = person("robert", pb::Role::Member);
        same_hr.external_id = Some("HR-1".into());
        let status = expect_code(
            people
                .create_person(authed("alice", create(&org.id, same_hr, "")))
                .await,
            Code::AlreadyExists,
        );
        assert!(status.message().contains("external_id"), "{status:?}");

        // The same subject and email in another organisation are fine.
        let (other, _) = app.create_org("globex", "gina").await;
        people
            .create_person(authed("gina", create(&other.id, bob, "")))
            .await
            .expect("bob elsewhere");
    })
    .await;
}

#[tokio::test]
async fn bad_person_input_names_the_field() {
    on_each_backend(async |app: &TestApp| {
        let (org, alice) = app.create_org("acme", "alice").await;
        let (other, gina) = app.create_org("globex", "gina").await;
        let _ = other;
        let mut people = app.people();
        let cases: Vec<(&str, Spoiler<pb::Person>)> = vec![
            (
                "person.email",
                Box::new(|p| p.email = "bob-at-example.com".into()),
            ),
            ("person.email", Box::new(|p| p.email = String::new())),
            (
                "person.display_name",
                Box::new(|p| p.display_name = " ".into()),
            ),
            ("person.subject", Box::new(|p| p.subject = String::new())),
            (
                "person.role",
                Box::new(|p| p.role = pb::Role::Unspecified as i32),
            ),
            ("person.role", Box::new(|p| p.role = 42)),
            (
                "person.manager_id",
                Box::new(|p| p.manager_id = "boss".into()),
            ),
            (
                "person.manager_id",
                Box::new(|p| p.manager_id = uuid::Uuid::now_v7().to_string()),
            ),
            (
                "person.department",
                Box::new(|p| p.department = "d".repeat(201)),
            ),
        ];
        for (field, spoil) in cases {
            let mut p = person("bob", pb::Role::Member);
            spoil(&mut p);
            expect_bad_field(
                people
                    .create_person(authed("alice", create(&org.id, p, "")))
                    .await,
                field,
            );
        }
        // A manager from another organisation is not a person of this one.
        let mut p = person("bob", pb::Role::Member);
        p.manager_id = gina.id.clone();
        expect_bad_field(
            people
                .create_person(authed("alice", create(&org.id, p, "")))
                .await,
            "person.manager_id",
        );
        expect_bad_field(
            people
                .create_person(authed(
                    "alice",
                    pb::CreatePersonRequest {
                        organisation_id: org.id.clone(),
                        person: None,
                        request_id: String::new(),
                    },
                ))
                .await,
            "person",
        );
        expect_bad_field(
            people
                .create_person(authed(
                    "alice",
                    create("not-an-id", person("x", pb::Role::Member), ""),
                ))
                .await,
            "organisation_id",
        );
        expect_bad_field(
            people
                .get_person(authed(
                    "alice",
                    pb::GetPersonRequest {
                        organisation_id: org.id.clone(),
                        id: "7".into(),
                    },
                ))
                .await,
            "id",
        );
        for page_size in [-5, 10_000] {
            expect_bad_field(
                people
                    .list_people(authed(
                        "alice",
                        pb::ListPeopleRequest {
                            organisation_id: org.id.clone(),
                            page_size,
                            ..Default::default()
                        },
                    ))
                    .await,
                "page_size",
            );
        }
        expect_bad_field(
            people
                .list_people(authed(
                    "alice",
                    pb::ListPeopleRequest {
                        organisation_id: org.id.clone(),
                        role: 99,
                        ..Default::default()
                    },
                ))
                .await,
            "role",
        );
        expect_bad_field(
            people
                .update_person(authed(
                    "alice",
                    update(
                        &org.id,
                        pb::Person {
                            id: alice.id.clone(),
                            ..Default::default()
                        },
                        &["active"],
                    ),
                ))
                .await,
            "update_mask",
        );
        expect_bad_field(
            people
                .update_person(authed(
                    "alice",
                    update(
                        &org.id,
                        pb::Person {
                            id: alice.id.clone(),
                            email: "nope".into(),
                            ..Default::default()
                        },
                        &["email"],
                    ),
                ))
                .await,
            "person.email",
        );
        // Management chains cannot loop.
        let bob = app
            .add_person("alice", &org.id, "bob", pb::Role::Member)
            .await;
        let mut carol = person("carol", pb::Role::Member);
        carol.manager_id = bob.id.clone();
        let carol = people
            .create_person(authed("alice", create(&org.id, carol, "")))
            .await
            .expect("carol")
            .into_inner()
            .person
            .unwrap();
        expect_bad_field(
            people
                .update_person(authed(
                    "alice",
                    update(
                        &org.id,
                        pb::Person {
                            id: bob.id.clone(),
                            manager_id: carol.id.clone(),
                            ..Default::default()
                        },
                        &["manager_id"],
                    ),
                ))
                .await,
            "person.manager_id",
        );
        expect_bad_field(
            people
                .update_person(authed(
                    "alice",
                    update(
                        &org.id,
                        pb::Person {
                            id: bob.id.clone(),
                            manager_id: bob.id.clone(),
                            ..Default::default()
                        },
                        &["manager_id"],
                    ),
                ))
                .await,
            "person.manager_id",
        );
    })
    .await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_or_deactivated() {
    on_each_backend(async |app: &TestApp| {
        let (org, alice) = app.create_org("acme", "alice").await;
        let mut people = app.people();
        let demote = people
            .update_person(authed(
                "alice",
                update(
                    &org.id,
                    pb::Person {
                        id: alice.id.clone(),
                        role: pb::Role::Member as i32,
                        ..Default::default()
                    },
                    &["role"],
                ),
            ))
            .await;
        let status = expect_code(demote, Code::FailedPrecondition);
        assert_eq!(precondition_kinds(&status), vec!["LAST_ADMIN"]);
        let deactivate = people
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: alice.id.clone(),
                    etag: String::new(),
                },
            ))
            .await;
        assert_eq!(
            precondition_kinds(&expect_code(deactivate, Code::FailedPrecondition)),
            vec!["LAST_ADMIN"]
        );

        // With a second admin, the first may step down.
        let bob = app
            .add_person("alice", &org.id, "bob", pb::Role::Admin)
            .await;
        let stepped_down = people
            .update_person(authed(
                "alice",
                update(
                    &org.id,
                    pb::Person {
                        id: alice.id.clone(),
                        role: pb::Role::Director as i32,
                        ..Default::default()
                    },
                    &["role"],
                ),
            ))
            .await
            .expect("demote alice")
            .into_inner()
            .person
            .unwrap();
        assert_eq!(stepped_down.role, pb::Role::Director as i32);
        // Now bob is the last one.
        let status = expect_code(
            people
                .deactivate_person(authed(
                    "bob",
                    pb::DeactivatePersonRequest {
                        organisation_id: org.id.clone(),
                        id: bob.id.clone(),
                        etag: String::new(),
                    },
                ))
                .await,
            Code::FailedPrecondition,
        );
        assert_eq!(precondition_kinds(&status), vec!["LAST_ADMIN"]);
        // An inactive admin does not count.
        let carol = app
            .add_person("bob", &org.id, "carol", pb::Role::Admin)
            .await;
        people
            .deactivate_person(authed(
                "bob",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: carol.id.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("deactivate carol");
        expect_code(
            people
                .update_person(authed(
                    "bob",
                    update(
                        &org.id,
                        pb::Person {
                            id: bob.id.clone(),
                            role: pb::Role::Member as i32,
                            ..Default::default()
                        },
                        &["role"],
                    ),
                ))
                .await,
            Code::FailedPrecondition,
        );

        // Two admins demoting each other at once: one of them stays admin.
        let dave = app
            .add_person("bob", &org.id, "dave", pb::Role::Admin)
            .await;
        let calls = [(bob.id.clone(), "dave"), (dave.id.clone(), "bob")].map(|(target, actor)| {
            let mut people = app.people();
            let org_id = org.id.clone();
            async move {
                people
                    .update_person(authed(
                        actor,
                        update(
                            &org_id,
                            pb::Person {
                                id: target,
                                role: pb::Role::Member as i32,
                                ..Default::default()
                            },
                            &["role"],
                        ),
                    ))
                    .await
            }
        });
        let results = futures_join_all(calls).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        let admins = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                role: pb::Role::Admin as i32,
                active: Some(true),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(admins.people.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn roles_decide_who_manages_people() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let mut people = app.people();
        let member = app
            .add_person("alice", &org.id, "mia", pb::Role::Member)
            .await;
        app.add_person("alice", &org.id, "vic", pb::Role::Viewer)
            .await;
        app.add_person("alice", &org.id, "dora", pb::Role::Director)
            .await;
        app.add_person("alice", &org.id, "hr-system", pb::Role::Integration)
            .await;

        for who in ["mia", "vic", "dora"] {
            expect_code(
                people
                    .create_person(authed(
                        who,
                        create(&org.id, person(&format!("new-{who}"), pb::Role::Member), ""),
                    ))
                    .await,
                Code::PermissionDenied,
            );
            expect_code(
                people
                    .deactivate_person(authed(
                        who,
                        pb::DeactivatePersonRequest {
                            organisation_id: org.id.clone(),
                            id: member.id.clone(),
                            etag: String::new(),
                        },
                    ))
                    .await,
                Code::PermissionDenied,
            );
            // Everyone reads.
            assert!(
                !list(
                    app,
                    who,
                    pb::ListPeopleRequest {
                        organisation_id: org.id.clone(),
                        ..Default::default()
                    }
                )
                .await
                .people
                .is_empty()
            );
        }
        expect_code(
            app.organisations()
                .update_organisation(authed(
                    "dora",
                    pb::UpdateOrganisationRequest {
                        organisation: Some(pb::Organisation {
                            id: org.id.clone(),
                            display_name: "X".into(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["display_name"]),
                    },
                ))
                .await,
            Code::PermissionDenied,
        );

        // The HR integration creates members, not admins, and never changes roles.
        let hired = people
            .create_person(authed(
                "hr-system",
                create(&org.id, person("new-hire", pb::Role::Member), ""),
            ))
            .await
            .expect("hr creates a member")
            .into_inner()
            .person
            .unwrap();
        expect_code(
            people
                .create_person(authed(
                    "hr-system",
                    create(&org.id, person("new-boss", pb::Role::Admin), ""),
                ))
                .await,
            Code::PermissionDenied,
        );
        people
            .update_person(authed(
                "hr-system",
                update(
                    &org.id,
                    pb::Person {
                        id: hired.id.clone(),
                        department: "Sales".into(),
                        ..Default::default()
                    },
                    &["department"],
                ),
            ))
            .await
            .expect("hr updates the department");
        expect_code(
            people
                .update_person(authed(
                    "hr-system",
                    update(
                        &org.id,
                        pb::Person {
                            id: hired.id.clone(),
                            role: pb::Role::Admin as i32,
                            ..Default::default()
                        },
                        &["role"],
                    ),
                ))
                .await,
            Code::PermissionDenied,
        );
        people
            .deactivate_person(authed(
                "hr-system",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: hired.id.clone(),
                    etag: String::new(),
                },
            ))
            .await
            .expect("hr deactivates a leaver");
        // Only an admin changes a role.
        people
            .update_person(authed(
                "alice",
                update(
                    &org.id,
                    pb::Person {
                        id: member.id.clone(),
                        role: pb::Role::Director as i32,
                        ..Default::default()
                    },
                    &["role"],
                ),
            ))
            .await
            .expect("admin promotes");
    })
    .await;
}

#[tokio::test]
async fn create_person_retries_with_a_request_id_create_nothing_new() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let mut people = app.people();
        let request_id = uuid::Uuid::now_v7().to_string();
        let first = people
            .create_person(authed(
                "alice",
                create(&org.id, person("bob", pb::Role::Member), &request_id),
            ))
            .await
            .expect("first")
            .into_inner();
        let retry = people
            .create_person(authed(
                "alice",
                create(&org.id, person("bob", pb::Role::Member), &request_id),
            ))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(first, retry);
        expect_bad_field(
            people
                .create_person(authed(
                    "alice",
                    create(&org.id, person("carol", pb::Role::Member), &request_id),
                ))
                .await,
            "request_id",
        );
        let request_id = uuid::Uuid::now_v7().to_string();
        let calls = (0..4).map(|_| {
            let mut people = app.people();
            let request = create(&org.id, person("dan", pb::Role::Member), &request_id);
            async move { people.create_person(authed("alice", request)).await }
        });
        let ids: Vec<String> = futures_join_all(calls)
            .await
            .into_iter()
            .map(|r| r.expect("retry succeeds").into_inner().person.unwrap().id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let everyone = list(
            app,
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.id.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(everyone.people.len(), 3, "alice, bob, dan");
    })
    .await;
}

#[tokio::test]
async fn request_ids_are_forgotten_after_their_retention() {
    on_each_backend(async |app: &TestApp| {
        let (org, _) = app.create_org("acme", "alice").await;
        let mut people = app.people();
        let request_id = uuid::Uuid::now_v7().to_string();
        people
            .create_person(authed(
                "alice",
                create(&org.id, person("bob", pb::Role::Member), &request_id),
            ))
            .await
            .expect("first");
        expect_bad_field(
            people
                .create_person(authed(
                    "alice",
                    create(&org.id, person("carol", pb::Role::Member), &request_id),
                ))
                .await,
            "request_id",
        );
        // The hourly purge, run now with a cutoff past every key.
        let store = jalon_store::Store::connect(&app.db.url, &jalon_store::PoolOptions::default())
            .await
            .unwrap();
        let purged = jalon_store::idempotency::purge(
            store.db(),
            chrono::Utc::now() + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
        store.close().await;
        assert_eq!(purged, 1, "bob's request id");
        let reused = people
            .create_person(authed(
                "alice",
                create(&org.id, person("carol", pb::Role::Member), &request_id),
            ))
            .await;
        assert_eq!(
            reused
                .expect("a forgotten request id creates anew")
                .into_inner()
                .person
                .unwrap()
                .subject,
            "carol"
        );
    })
    .await;
}

/// Every change to a person and to the organisation is in the audit log,
/// with its actor and the fields changed, never an e-mail address; another
/// organisation's changes are not in it.
#[tokio::test]
async fn people_and_organisation_changes_are_audited() {
    on_each_backend(async |app: &TestApp| {
        let (org, alice) = app.create_org("acme", "alice").await;
        let (other, _) = app.create_org("globex", "gina").await;
        app.add_person("gina", &other.id, "gus", pb::Role::Member)
            .await;
        let mut people = app.people();
        let mut new = person("bob", pb::Role::Member);
        new.email = "bob@example.com".into();
        let bob = people
            .create_person(authed("alice", create(&org.id, new, "")))
            .await
            .expect("create")
            .into_inner()
            .person
            .unwrap();
        let mut changed = bob.clone();
        changed.display_name = "Robert Builder".into();
        changed.email = "robert@example.com".into();
        changed.role = pb::Role::Director as i32;
        let bob = people
            .update_person(authed(
                "alice",
                update(&org.id, changed, &["display_name", "email", "role"]),
            ))
            .await
            .expect("update")
            .into_inner()
            .person
            .unwrap();
        let bob = people
            .deactivate_person(authed(
                "alice",
                pb::DeactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: bob.etag.clone(),
                },
            ))
            .await
            .expect("deactivate")
            .into_inner()
            .person
            .unwrap();
        people
            .reactivate_person(authed(
                "alice",
                pb::ReactivatePersonRequest {
                    organisation_id: org.id.clone(),
                    id: bob.id.clone(),
                    etag: bob.etag.clone(),
                },
            ))
            .await
            .expect("reactivate");
        app.organisations()
            .update_organisation(authed(
                "alice",
                pb::UpdateOrganisationRequest {
                    organisation: Some(pb::Organisation {
                        id: org.id.clone(),
                        display_name: "Acme Corporation".into(),
                        etag: org.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
            ))
            .await
            .expect("rename");

        let events = app
            .audit()
            .list_audit_events(authed(
                "alice",
                pb::ListAuditEventsRequest {
                    organisation_id: org.id.clone(),
                    page_size: 500,
                    ..Default::default()
                },
            ))
            .await
            .expect("audit")
            .into_inner()
            .events;
        let summary: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.action.as_str(),
                    e.actor_subject.as_str(),
                    e.resource_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("organisation.created", ROOT, org.id.as_str()),
                ("person.created", ROOT, alice.id.as_str()),
                ("person.created", "alice", bob.id.as_str()),
                ("person.updated", "alice", bob.id.as_str()),
                ("person.role_changed", "alice", bob.id.as_str()),
                ("person.deactivated", "alice", bob.id.as_str()),
                ("person.reactivated", "alice", bob.id.as_str()),
                ("organisation.updated", "alice", org.id.as_str()),
            ]
        );
        for e in &events {
            assert!(
                !e.after_json.contains("@example.com") && !e.before_json.contains("@example.com"),
                "no e-mail address in {}: {} {}",
                e.action,
                e.before_json,
                e.after_json
            );
            if e.actor_subject == "alice" {
                assert_eq!(e.actor_person_id, alice.id, "{}", e.action);
            }
        }
        let updated: serde_json::Value = serde_json::from_str(&events[3].after_json).expect("json");
        assert_eq!(updated["display_name"], "Robert Builder");
        assert_eq!(updated["role"], "DIRECTOR");
        assert_eq!(updated["email_changed"], true);
        let before: serde_json::Value = serde_json::from_str(&events[3].before_json).expect("json");
        assert_eq!(before["role"], "MEMBER");
        let renamed: serde_json::Value = serde_json::from_str(&events[7].after_json).expect("json");
        assert_eq!(
            renamed,
            serde_json::json!({"display_name": "Acme Corporation"})
        );

        // Newest first, filtered by action and resource type, paged.
        let mut token = String::new();
        let mut created = Vec::new();
        loop {
            let page = app
                .audit()
                .list_audit_events(authed(
                    "alice",
                    pb::ListAuditEventsRequest {
                        organisation_id: org.id.clone(),
                        action: "person.created".into(),
                        resource_type: "person".into(),
                        newest_first: true,
                        page_size: 1,
                        page_token: token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("audit")
                .into_inner();
            created.extend(page.events);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let ids: Vec<&str> = created.iter().map(|e| e.resource_id.as_str()).collect();
        assert_eq!(ids, vec![bob.id.as_str(), alice.id.as_str()]);
        assert!(created[0].sequence > created[1].sequence);

        // The other organisation's log holds only its own changes.
        let theirs = app
            .audit()
            .list_audit_events(authed(
                "gina",
                pb::ListAuditEventsRequest {
                    organisation_id: other.id.clone(),
                    page_size: 500,
                    ..Default::default()
                },
            ))
            .await
            .expect("audit")
            .into_inner()
            .events;
        assert_eq!(theirs.len(), 3, "globex created, gina, gus");
        assert!(theirs.iter().all(|e| e.resource_id != bob.id));
    })
    .await;
}
