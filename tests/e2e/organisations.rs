//! OrganisationService end to end.

use jalon_proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::*;

/// A way to make a valid request invalid.
pub type Spoiler<T> = Box<dyn Fn(&mut T)>;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn create_request(slug: &str, admin: &str, request_id: &str) -> pb::CreateOrganisationRequest {
    pb::CreateOrganisationRequest {
        organisation: Some(organisation(slug)),
        initial_admin: Some(person(admin, pb::Role::Unspecified)),
        request_id: request_id.into(),
    }
}

#[tokio::test]
async fn organisation_lifecycle_create_get_update_delete_undelete() {
    on_each_backend(async |app: &TestApp| {
        let mut client = app.organisations();
        let (org, admin) = app.create_org("acme", "alice").await;
        assert_eq!(org.slug, "acme");
        assert_eq!(org.default_currency, "EUR");
        assert_eq!(org.discount_rate, "0.08");
        assert_eq!(org.fiscal_year_start_month, 4);
        assert!(
            org.create_time.is_some() && org.update_time.is_some() && org.delete_time.is_none()
        );
        assert_eq!(admin.role, pb::Role::Admin as i32);
        assert!(admin.active);
        assert_eq!(admin.organisation_id, org.id);

        // The first admin reads it.
        let got = client
            .get_organisation(authed(
                "alice",
                pb::GetOrganisationRequest { id: org.id.clone() },
            ))
            .await
            .expect("get")
            .into_inner()
            .organisation
            .expect("organisation");
        assert_eq!(got, org);

        // Update only what the mask names.
        let updated = client
            .update_organisation(authed(
                "alice",
                pb::UpdateOrganisationRequest {
                    organisation: Some(pb::Organisation {
                        id: org.id.clone(),
                        display_name: "Acme Corporation".into(),
                        slug: "ignored-because-not-in-mask".into(),
                        discount_rate: "0.1".into(),
                        etag: org.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name", "discount_rate"]),
                },
            ))
            .await
            .expect("update")
            .into_inner()
            .organisation
            .expect("organisation");
        assert_eq!(updated.display_name, "Acme Corporation");
        assert_eq!(updated.discount_rate, "0.1");
        assert_eq!(updated.slug, "acme");
        assert_eq!(updated.default_currency, "EUR");
        assert_ne!(updated.etag, org.etag);

        // A stale etag is ABORTED and changes nothing.
        let stale = client
            .update_organisation(authed(
                "alice",
                pb::UpdateOrganisationRequest {
                    organisation: Some(pb::Organisation {
                        id: org.id.clone(),
                        display_name: "Stale".into(),
                        etag: org.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
            ))
            .await;
        expect_code(stale, Code::Aborted);

        // Clearing the optional external_ref and setting it.
        let with_ref = client
            .update_organisation(authed(
                "alice",
                pb::UpdateOrganisationRequest {
                    organisation: Some(pb::Organisation {
                        id: org.id.clone(),
                        external_ref: Some("SAP-0042".into()),
                        ..Default::default()
                    }),
                    update_mask: mask(&["external_ref"]),
                },
            ))
            .await
            .expect("set external_ref")
            .into_inner()
            .organisation
            .expect("organisation");
        assert_eq!(with_ref.external_ref.as_deref(), Some("SAP-0042"));

        // Only platform administrators delete; a soft delete keeps the row.
        let by_admin = client
            .delete_organisation(authed(
                "alice",
                pb::DeleteOrganisationRequest {
                    id: org.id.clone(),
                    etag: String::new(),
                },
            ))
            .await;
        expect_code(by_admin, Code::PermissionDenied);
        let deleted = client
            .delete_organisation(authed(
                ROOT,
                pb::DeleteOrganisationRequest {
                    id: org.id.clone(),
                    etag: with_ref.etag.clone(),
                },
            ))
            .await
            .expect("delete")
            .into_inner()
            .organisation
            .expect("organisation");
        assert!(deleted.delete_time.is_some());
        let again = client
            .delete_organisation(authed(
                ROOT,
                pb::DeleteOrganisationRequest {
                    id: org.id.clone(),
                    etag: String::new(),
                },
            ))
            .await;
        expect_code(again, Code::FailedPrecondition);

        // Hidden from List unless show_deleted; read-only.
        let listed = client
            .list_organisations(authed(ROOT, pb::ListOrganisationsRequest::default()))
            .await
            .expect("list")
            .into_inner();
        assert!(listed.organisations.iter().all(|o| o.id != org.id));
        let listed = client
            .list_organisations(authed(
                ROOT,
                pb::ListOrganisationsRequest {
                    show_deleted: true,
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner();
        assert!(listed.organisations.iter().any(|o| o.id == org.id));
        let write = client
            .update_organisation(authed(
                "alice",
                pb::UpdateOrganisationRequest {
                    organisation: Some(pb::Organisation {
                        id: org.id.clone(),
                        display_name: "X".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["display_name"]),
                },
            ))
            .await;
        let status = expect_code(write, Code::FailedPrecondition);
        assert_eq!(precondition_kinds(&status), vec!["ORGANISATION_DELETED"]);
        let add = app
            .people()
            .create_person(authed(
                "alice",
                pb::CreatePersonRequest {
                    organisation_id: org.id.clone(),
                    person: Some(person("bob", pb::Role::Member)),
                    request_id: String::new(),
                },
            ))
            .await;
        expect_code(add, Code::FailedPrecondition);

        let restored = client
            .undelete_organisation(authed(
                ROOT,
                pb::UndeleteOrganisationRequest {
                    id: org.id.clone(),
                    etag: deleted.etag.clone(),
                },
            ))
            .await
            .expect("undelete")
            .into_inner()
            .organisation
            .expect("organisation");
        assert!(restored.delete_time.is_none());
    })
    .await;
}

#[tokio::test]
async fn only_platform_administrators_create_organisations() {
    on_each_backend(async |app: &TestApp| {
        let (_, _) = app.create_org("acme", "alice").await;
        let refused = app
            .organisations()
            .create_organisation(authed("alice", create_request("other", "alice", "")))
            .await;
        expect_code(refused, Code::PermissionDenied);
        let stranger = app
            .organisations()
            .create_organisation(authed("nobody", create_request("other", "x", "")))
            .await;
        expect_code(stranger, Code::PermissionDenied);
    })
    .await;
}

#[tokio::test]
async fn organisation_uniqueness_is_already_exists() {
    on_each_backend(async |app: &TestApp| {
        app.create_org("acme", "alice").await;
        let dup = app
            .organisations()
            .create_organisation(authed(ROOT, create_request("acme", "bob", "")))
            .await;
        let status = expect_code(dup, Code::AlreadyExists);
        assert!(status.message().contains("slug"), "{status:?}");

        let mut with_ref = create_request("beta", "bob", "");
        with_ref.organisation.as_mut().unwrap().external_ref = Some("ENT-1".into());
        app.organisations()
            .create_organisation(authed(ROOT, with_ref.clone()))
            .await
            .expect("first");
        with_ref.organisation.as_mut().unwrap().slug = "gamma".into();
        let dup = app
            .organisations()
            .create_organisation(authed(ROOT, with_ref))
            .await;
        let status = expect_code(dup, Code::AlreadyExists);
        assert!(status.message().contains("external_ref"), "{status:?}");

        // Nothing half-written: the refused organisation has no admin.
        let listed = app
            .organisations()
            .list_organisations(authed(ROOT, pb::ListOrganisationsRequest::default()))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.organisations.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn bad_organisation_input_names_the_field() {
    on_each_backend(async |app: &TestApp| {
        let mut client = app.organisations();
        let cases: Vec<(&str, Spoiler<pb::CreateOrganisationRequest>)> = vec![
            (
                "organisation.display_name",
                Box::new(|r| r.organisation.as_mut().unwrap().display_name = "   ".into()),
            ),
            (
                "organisation.slug",
                Box::new(|r| r.organisation.as_mut().unwrap().slug = "Not A Slug".into()),
            ),
            (
                "organisation.default_currency",
                Box::new(|r| r.organisation.as_mut().unwrap().default_currency = "EURO".into()),
            ),
            (
                "organisation.default_currency",
                Box::new(|r| r.organisation.as_mut().unwrap().default_currency = "XYZ".into()),
            ),
            (
                "organisation.discount_rate",
                Box::new(|r| r.organisation.as_mut().unwrap().discount_rate = "1.5".into()),
            ),
            (
                "organisation.discount_rate",
                Box::new(|r| {
                    r.organisation.as_mut().unwrap().discount_rate = "eight percent".into()
                }),
            ),
            (
                "organisation.fiscal_year_start_month",
                Box::new(|r| r.organisation.as_mut().unwrap().fiscal_year_start_month = 13),
            ),
            (
                "initial_admin.email",
                Box::new(|r| r.initial_admin.as_mut().unwrap().email = "not-an-email".into()),
            ),
            (
                "initial_admin.subject",
                Box::new(|r| r.initial_admin.as_mut().unwrap().subject = String::new()),
            ),
            ("initial_admin", Box::new(|r| r.initial_admin = None)),
            ("organisation", Box::new(|r| r.organisation = None)),
            (
                "request_id",
                Box::new(|r| r.request_id = "not-a-uuid".into()),
            ),
        ];
        for (field, spoil) in cases {
            let mut request = create_request("acme", "alice", "");
            spoil(&mut request);
            expect_bad_field(
                client.create_organisation(authed(ROOT, request)).await,
                field,
            );
        }
        // Several bad fields are reported together.
        let mut request = create_request("acme", "alice", "");
        request.organisation.as_mut().unwrap().slug = "-".into();
        request.initial_admin.as_mut().unwrap().email = "x".into();
        let status = expect_code(
            client.create_organisation(authed(ROOT, request)).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            bad_fields(&status),
            vec!["organisation.slug", "initial_admin.email"]
        );

        expect_bad_field(
            client
                .get_organisation(authed(ROOT, pb::GetOrganisationRequest { id: "42".into() }))
                .await,
            "id",
        );
        expect_bad_field(
            client
                .get_organisation(authed(
                    ROOT,
                    pb::GetOrganisationRequest { id: String::new() },
                ))
                .await,
            "id",
        );
        for page_size in [-1, 501] {
            let listed = client
                .list_organisations(authed(
                    ROOT,
                    pb::ListOrganisationsRequest {
                        page_size,
                        ..Default::default()
                    },
                ))
                .await;
            expect_bad_field(listed, "page_size");
        }
        let listed = client
            .list_organisations(authed(
                ROOT,
                pb::ListOrganisationsRequest {
                    page_token: "forged".into(),
                    ..Default::default()
                },
            ))
            .await;
        expect_bad_field(listed, "page_token");

        let (org, _) = app.create_org("acme", "alice").await;
        let update = |paths: &[&str], o: pb::Organisation| pb::UpdateOrganisationRequest {
            organisation: Some(pb::Organisation {
                id: org.id.clone(),
                ..o
            }),
            update_mask: mask(paths),
        };
        expect_bad_field(
            client
                .update_organisation(authed("alice", update(&[], pb::Organisation::default())))
                .await,
            "update_mask",
        );
        expect_bad_field(
            client
                .update_organisation(authed(
                    "alice",
                    update(&["id"], pb::Organisation::default()),
                ))
                .await,
            "update_mask",
        );
        expect_bad_field(
            client
                .update_organisation(authed(
                    "alice",
                    update(&["create_time"], pb::Organisation::default()),
                ))
                .await,
            "update_mask",
        );
        expect_bad_field(
            client
                .update_organisation(authed(
                    "alice",
                    update(
                        &["default_currency"],
                        pb::Organisation {
                            default_currency: "eur".into(),
                            ..Default::default()
                        },
                    ),
                ))
                .await,
            "organisation.default_currency",
        );
        expect_bad_field(
            client
                .update_organisation(authed(
                    "alice",
                    update(&["display_name"], pb::Organisation::default()),
                ))
                .await,
            "organisation.display_name",
        );
    })
    .await;
}

#[tokio::test]
async fn create_organisation_retries_with_a_request_id_create_nothing_new() {
    on_each_backend(async |app: &TestApp| {
        let mut client = app.organisations();
        let request_id = uuid::Uuid::now_v7().to_string();
        let first = client
            .create_organisation(authed(ROOT, create_request("acme", "alice", &request_id)))
            .await
            .expect("first")
            .into_inner();
        let retry = client
            .create_organisation(authed(ROOT, create_request("acme", "alice", &request_id)))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(first, retry);

        let different = client
            .create_organisation(authed(ROOT, create_request("other", "alice", &request_id)))
            .await;
        expect_bad_field(different, "request_id");

        // Concurrent retries of one request: one organisation.
        let request_id = uuid::Uuid::now_v7().to_string();
        let calls = (0..4).map(|_| {
            let mut c = app.organisations();
            let request = create_request("concurrent", "bob", &request_id);
            async move { c.create_organisation(authed(ROOT, request)).await }
        });
        let results = futures_join_all(calls).await;
        let ids: Vec<String> = results
            .into_iter()
            .map(|r| {
                r.expect("every retry succeeds")
                    .into_inner()
                    .organisation
                    .unwrap()
                    .id
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");

        let listed = client
            .list_organisations(authed(ROOT, pb::ListOrganisationsRequest::default()))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.organisations.len(), 2);
    })
    .await;
}

/// Runs futures concurrently on the runtime and collects their outputs.
pub async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

#[tokio::test]
async fn list_organisations_shows_each_caller_their_own_and_pages() {
    on_each_backend(async |app: &TestApp| {
        let mut client = app.organisations();
        let mut created = Vec::new();
        for i in 0..5 {
            let (org, _) = app
                .create_org(
                    &format!("org-{i}"),
                    if i % 2 == 0 { "alice" } else { "bob" },
                )
                .await;
            created.push(org.id);
        }
        // Alice is a member of 0, 2, 4.
        let alices: Vec<String> = client
            .list_organisations(authed("alice", pb::ListOrganisationsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .organisations
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(
            alices,
            vec![created[0].clone(), created[2].clone(), created[4].clone()]
        );
        let strangers = client
            .list_organisations(authed("nobody", pb::ListOrganisationsRequest::default()))
            .await
            .expect("list")
            .into_inner();
        assert!(strangers.organisations.is_empty());

        // Pages of two for the platform admin, in creation order.
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_organisations(authed(
                    ROOT,
                    pb::ListOrganisationsRequest {
                        page_size: 2,
                        page_token: token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("page")
                .into_inner();
            assert!(page.organisations.len() <= 2);
            seen.extend(page.organisations.into_iter().map(|o| o.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, created);
        // A token of one filter is refused under another.
        let first = client
            .list_organisations(authed(
                ROOT,
                pb::ListOrganisationsRequest {
                    page_size: 2,
                    ..Default::default()
                },
            ))
            .await
            .expect("page")
            .into_inner();
        let other = client
            .list_organisations(authed(
                ROOT,
                pb::ListOrganisationsRequest {
                    page_size: 2,
                    page_token: first.next_page_token,
                    show_deleted: true,
                },
            ))
            .await;
        expect_bad_field(other, "page_token");
    })
    .await;
}
