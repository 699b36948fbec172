//! Another organisation's data is invisible: every Organisation and Person
//! RPC called by members of organisation B on organisation A's ids answers
//! NOT_FOUND or PERMISSION_DENIED, and changes nothing.

use jalon_proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::*;

fn drop<T>(_: tonic::Response<T>) {}

/// Everything A has, as A's admin reads it.
async fn snapshot(app: &TestApp, org: &str) -> (pb::Organisation, Vec<pb::Person>) {
    let o = app
        .organisations()
        .get_organisation(authed(
            "alice",
            pb::GetOrganisationRequest { id: org.into() },
        ))
        .await
        .expect("get")
        .into_inner()
        .organisation
        .unwrap();
    let people = app
        .people()
        .list_people(authed(
            "alice",
            pb::ListPeopleRequest {
                organisation_id: org.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .people;
    (o, people)
}

#[tokio::test]
async fn members_of_another_organisation_see_and_change_nothing() {
    on_each_backend(async |app: &TestApp| {
        let (a, _alice) = app.create_org("org-a", "alice").await;
        let a_member = app
            .add_person("alice", &a.id, "anna", pb::Role::Member)
            .await;
        let (b, _) = app.create_org("org-b", "bert").await;
        app.add_person("bert", &b.id, "bob-hr", pb::Role::Integration)
            .await;
        app.add_person("bert", &b.id, "bea", pb::Role::Viewer).await;
        let before = snapshot(app, &a.id).await;

        let mask = |p: &str| {
            Some(FieldMask {
                paths: vec![p.into()],
            })
        };
        for outsider in ["bert", "bob-hr", "bea", "nobody"] {
            let mut orgs = app.organisations();
            let mut people = app.people();
            let hidden = |r: Result<(), tonic::Status>, what: &str| {
                let status = r.expect_err(what);
                assert!(
                    matches!(status.code(), Code::NotFound | Code::PermissionDenied),
                    "{outsider} {what}: {status:?}"
                );
                status
            };
            let s = hidden(
                orgs.get_organisation(authed(
                    outsider,
                    pb::GetOrganisationRequest { id: a.id.clone() },
                ))
                .await
                .map(drop),
                "get org",
            );
            assert_eq!(s.code(), Code::NotFound, "indistinguishable from absent");
            let absent = orgs
                .get_organisation(authed(
                    outsider,
                    pb::GetOrganisationRequest {
                        id: uuid::Uuid::now_v7().to_string(),
                    },
                ))
                .await;
            assert_eq!(
                absent.expect_err("absent").message(),
                s.message(),
                "same answer as an absent id"
            );
            hidden(
                orgs.update_organisation(authed(
                    outsider,
                    pb::UpdateOrganisationRequest {
                        organisation: Some(pb::Organisation {
                            id: a.id.clone(),
                            display_name: "Owned".into(),
                            ..Default::default()
                        }),
                        update_mask: mask("display_name"),
                    },
                ))
                .await
                .map(drop),
                "update org",
            );
            hidden(
                orgs.delete_organisation(authed(
                    outsider,
                    pb::DeleteOrganisationRequest {
                        id: a.id.clone(),
                        etag: String::new(),
                    },
                ))
                .await
                .map(drop),
                "delete org",
            );
            hidden(
                orgs.undelete_organisation(authed(
                    outsider,
                    pb::UndeleteOrganisationRequest {
                        id: a.id.clone(),
                        etag: String::new(),
                    },
                ))
                .await
                .map(drop),
                "undelete org",
            );
            let listed = orgs
                .list_organisations(authed(outsider, pb::ListOrganisationsRequest::default()))
                .await
                .expect("list")
                .into_inner();
            assert!(
                listed.organisations.iter().all(|o| o.id != a.id),
                "{outsider} lists A"
            );

            let s = hidden(
                people
                    .create_person(authed(
                        outsider,
                        pb::CreatePersonRequest {
                            organisation_id: a.id.clone(),
                            person: Some(person("mole", pb::Role::Member)),
                            request_id: String::new(),
                        },
                    ))
                    .await
                    .map(drop),
                "create person",
            );
            assert_eq!(s.code(), Code::NotFound);
            hidden(
                people
                    .get_person(authed(
                        outsider,
                        pb::GetPersonRequest {
                            organisation_id: a.id.clone(),
                            id: a_member.id.clone(),
                        },
                    ))
                    .await
                    .map(drop),
                "get person",
            );
            hidden(
                people
                    .list_people(authed(
                        outsider,
                        pb::ListPeopleRequest {
                            organisation_id: a.id.clone(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop),
                "list people",
            );
            hidden(
                people
                    .update_person(authed(
                        outsider,
                        pb::UpdatePersonRequest {
                            organisation_id: a.id.clone(),
                            person: Some(pb::Person {
                                id: a_member.id.clone(),
                                display_name: "Owned".into(),
                                ..Default::default()
                            }),
                            update_mask: mask("display_name"),
                        },
                    ))
                    .await
                    .map(drop),
                "update person",
            );
            hidden(
                people
                    .deactivate_person(authed(
                        outsider,
                        pb::DeactivatePersonRequest {
                            organisation_id: a.id.clone(),
                            id: a_member.id.clone(),
                            etag: String::new(),
                        },
                    ))
                    .await
                    .map(drop),
                "deactivate",
            );
            hidden(
                people
                    .reactivate_person(authed(
                        outsider,
                        pb::ReactivatePersonRequest {
                            organisation_id: a.id.clone(),
                            id: a_member.id.clone(),
                            etag: String::new(),
                        },
                    ))
                    .await
                    .map(drop),
                "reactivate",
            );

            // Their own organisation's id with A's person id: still nothing.
            hidden(
                people
                    .get_person(authed(
                        outsider,
                        pb::GetPersonRequest {
                            organisation_id: b.id.clone(),
                            id: a_member.id.clone(),
                        },
                    ))
                    .await
                    .map(drop),
                "get A's person through B",
            );
            hidden(
                people
                    .update_person(authed(
                        outsider,
                        pb::UpdatePersonRequest {
                            organisation_id: b.id.clone(),
                            person: Some(pb::Person {
                                id: a_member.id.clone(),
                                display_name: "Owned".into(),
                                ..Default::default()
                            }),
                            update_mask: mask("display_name"),
                        },
                    ))
                    .await
                    .map(drop),
                "update A's person through B",
            );
            hidden(
                people
                    .deactivate_person(authed(
                        outsider,
                        pb::DeactivatePersonRequest {
                            organisation_id: b.id.clone(),
                            id: a_member.id.clone(),
                            etag: String::new(),
                        },
                    ))
                    .await
                    .map(drop),
                "deactivate A's person through B",
            );
        }
        // A person of A cannot be made manager in B.
        let mut spy = person("spy", pb::Role::Member);
        spy.manager_id = a_member.id.clone();
        expect_bad_field(
            app.people()
                .create_person(authed(
                    "bert",
                    pb::CreatePersonRequest {
                        organisation_id: b.id.clone(),
                        person: Some(spy),
                        request_id: String::new(),
                    },
                ))
                .await,
            "person.manager_id",
        );

        assert_eq!(
            snapshot(app, &a.id).await,
            before,
            "organisation A is unchanged"
        );
    })
    .await;
}
