//! Authentication: every crafted bad token is UNAUTHENTICATED, with nothing
//! that helps an attacker; good tokens of each configured kind pass.

use std::path::PathBuf;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jalon_proto::v1 as pb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn sign(alg: Algorithm, kid: Option<&str>, key_file: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key_file)).expect("fixture key");
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("encoding key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("encode")
}

/// A token whose header and payload are whatever we say, with a signature.
fn forge(header: &serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// HS256 over `header.payload` with `key` as the HMAC secret.
fn hmac_sign(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &serde_json::from_value::<Header>(header.clone()).expect("header"),
        claims,
        &EncodingKey::from_secret(key).expect("key"),
    )
    .expect("encode")
}

async fn list_with(
    app: &TestApp,
    token: Option<&str>,
) -> Result<pb::ListOrganisationsResponse, tonic::Status> {
    let request = match token {
        Some(token) => with_token(token, pb::ListOrganisationsRequest::default()),
        None => tonic::Request::new(pb::ListOrganisationsRequest::default()),
    };
    app.organisations()
        .list_organisations(request)
        .await
        .map(|r| r.into_inner())
}

#[track_caller]
fn refused(result: Result<pb::ListOrganisationsResponse, tonic::Status>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: accepted"),
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
            assert_eq!(
                status.message(),
                "missing or invalid credentials",
                "{what}: message gives details"
            );
        }
    }
}

#[tokio::test]
async fn bad_hs256_tokens_are_unauthenticated() {
    on_each_backend(async |app: &TestApp| {
        let now = chrono::Utc::now().timestamp();
        let good = claims("ada");
        assert!(
            list_with(app, Some(&hs256(&good))).await.is_ok(),
            "a good token passes"
        );

        refused(list_with(app, None).await, "no authorization header");
        let mut request = tonic::Request::new(pb::ListOrganisationsRequest::default());
        request.metadata_mut().insert(
            "authorization",
            format!("Basic {}", hs256(&good)).parse().unwrap(),
        );
        refused(
            app.organisations()
                .list_organisations(request)
                .await
                .map(|r| r.into_inner()),
            "not a bearer scheme",
        );
        refused(list_with(app, Some("garbage")).await, "garbage");

        let none = forge(&json!({"alg": "none", "typ": "JWT"}), &good, b"");
        refused(list_with(app, Some(&none)).await, "alg none");
        let none_no_sig = format!("{}.", &none[..none.len() - 1].trim_end_matches('.'));
        refused(
            list_with(app, Some(&none_no_sig)).await,
            "alg none without signature",
        );

        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("someone-else");
        refused(list_with(app, Some(&hs256(&wrong_aud))).await, "wrong aud");
        let mut wrong_iss = good.clone();
        wrong_iss["iss"] = json!("https://evil.example");
        refused(list_with(app, Some(&hs256(&wrong_iss))).await, "wrong iss");
        let mut expired = good.clone();
        expired["exp"] = json!(now - 3600);
        refused(list_with(app, Some(&hs256(&expired))).await, "expired");
        let mut not_yet = good.clone();
        not_yet["nbf"] = json!(now + 3600);
        refused(
            list_with(app, Some(&hs256(&not_yet))).await,
            "nbf in the future",
        );
        let mut mistyped = good.clone();
        mistyped["exp"] = json!("tomorrow");
        refused(
            list_with(app, Some(&hs256(&mistyped))).await,
            "mistyped exp",
        );
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        refused(list_with(app, Some(&hs256(&no_exp))).await, "no exp");
        let mut no_sub = good.clone();
        no_sub.as_object_mut().unwrap().remove("sub");
        refused(list_with(app, Some(&hs256(&no_sub))).await, "no sub");

        // Tampered payload: a valid token whose claims are swapped for
        // others (a platform admin's) keeping the original signature.
        let valid = hs256(&good);
        let parts: Vec<&str> = valid.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims(ROOT).to_string()),
            parts[2]
        );
        refused(list_with(app, Some(&tampered)).await, "tampered payload");

        let other_secret = hmac_sign(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &good,
            b"another-secret-of-at-least-32-bytes!!",
        );
        refused(
            list_with(app, Some(&other_secret)).await,
            "signed with another secret",
        );
        let rs = sign(Algorithm::RS256, None, "rsa1.key", &good);
        refused(
            list_with(app, Some(&rs)).await,
            "RS256 when HS256 is pinned",
        );
    })
    .await;
}

#[tokio::test]
async fn rs256_pem_pins_the_algorithm() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.auth.hs256_secret = None;
            s.auth.algorithm = Some("RS256".into());
            s.auth.public_key_file = Some(fixture("rsa1.pub"));
        })
        .await;
        let good = claims("ada");
        assert!(
            list_with(&app, Some(&sign(Algorithm::RS256, None, "rsa1.key", &good)))
                .await
                .is_ok()
        );
        refused(
            list_with(&app, Some(&sign(Algorithm::RS256, None, "rsa3.key", &good))).await,
            "untrusted RSA key",
        );
        // The classic confusion attack: HS256 with the public key as secret.
        let public_pem = std::fs::read(fixture("rsa1.pub")).unwrap();
        let confused = hmac_sign(&json!({"alg": "HS256", "typ": "JWT"}), &good, &public_pem);
        refused(
            list_with(&app, Some(&confused)).await,
            "HS256 signed with the RSA public key",
        );
        refused(
            list_with(&app, Some(&hs256(&good))).await,
            "HS256 when RS256 is pinned",
        );
        let mut expired = good.clone();
        expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
        refused(
            list_with(
                &app,
                Some(&sign(Algorithm::RS256, None, "rsa1.key", &expired)),
            )
            .await,
            "expired RS256",
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn es256_pem_is_accepted() {
    let backend = Backend::Sqlite;
    let app = TestApp::spawn_with(&backend, |s| {
        s.auth.hs256_secret = None;
        s.auth.algorithm = Some("ES256".into());
        s.auth.public_key_file = Some(fixture("ec1.pub"));
    })
    .await;
    let good = claims("ada");
    assert!(
        list_with(
            &app,
            Some(&sign(Algorithm::ES256, None, "ec1.pk8.key", &good))
        )
        .await
        .is_ok()
    );
    refused(
        list_with(&app, Some(&sign(Algorithm::RS256, None, "rsa1.key", &good))).await,
        "RS256 when ES256 is pinned",
    );
    app.cleanup().await;
}

#[tokio::test]
async fn jwks_chooses_keys_by_kid_during_rotation() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.auth.hs256_secret = None;
            s.auth.jwks_file = Some(fixture("jwks.json"));
        })
        .await;
        let good = claims("ada");
        // Both keys of the rotation are accepted, each under its own kid.
        assert!(
            list_with(
                &app,
                Some(&sign(
                    Algorithm::RS256,
                    Some("key-2026-01"),
                    "rsa1.key",
                    &good
                ))
            )
            .await
            .is_ok()
        );
        assert!(
            list_with(
                &app,
                Some(&sign(
                    Algorithm::RS256,
                    Some("key-2026-07"),
                    "rsa2.key",
                    &good
                ))
            )
            .await
            .is_ok()
        );
        refused(
            list_with(
                &app,
                Some(&sign(
                    Algorithm::RS256,
                    Some("key-2026-01"),
                    "rsa2.key",
                    &good,
                )),
            )
            .await,
            "a key under another key's kid",
        );
        refused(
            list_with(
                &app,
                Some(&sign(Algorithm::RS256, Some("unknown"), "rsa3.key", &good)),
            )
            .await,
            "unknown kid",
        );
        refused(
            list_with(&app, Some(&sign(Algorithm::RS256, None, "rsa1.key", &good))).await,
            "no kid",
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn development_mode_mints_tokens_with_its_own_secret() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.auth.hs256_secret = None;
        s.auth.issuer = None;
        s.auth.audience = None;
        s.auth.platform_admins = vec![];
    })
    .await;
    // The secret was generated beside the database, owner-only.
    let dir = std::path::Path::new(
        app.db
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap(),
    )
    .parent()
    .unwrap()
    .to_path_buf();
    let secret_file = dir.join(jalon_server::auth::DEV_SECRET_FILE);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secret_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // `jalon token` does what this does: same settings, same secret.
    let mut settings = test_settings(&app.db.url);
    settings.auth.hs256_secret = None;
    settings.auth.issuer = None;
    settings.auth.audience = None;
    let minter =
        jalon_server::auth::Authenticator::from_settings(&settings.auth, &settings.database)
            .unwrap();
    let dev_token = minter
        .mint("dev-admin", std::time::Duration::from_secs(600))
        .unwrap();
    let created = app
        .organisations()
        .create_organisation(with_token(
            &dev_token,
            pb::CreateOrganisationRequest {
                organisation: Some(organisation("dev")),
                initial_admin: Some(person("dev-admin", pb::Role::Unspecified)),
                request_id: String::new(),
            },
        ))
        .await;
    assert!(
        created.is_ok(),
        "dev-admin is a platform administrator: {created:?}"
    );
    refused(
        list_with(&app, Some(&token("dev-admin"))).await,
        "a token of another secret",
    );
    app.cleanup().await;

    // A production key turns development mode off: no minting.
    settings.auth.public_key_file = Some(fixture("rsa1.pub"));
    settings.auth.issuer = Some(ISSUER.into());
    settings.auth.audience = Some(AUDIENCE.into());
    let production =
        jalon_server::auth::Authenticator::from_settings(&settings.auth, &settings.database)
            .unwrap();
    assert!(!production.development);
    let refusal = production
        .mint("dev-admin", std::time::Duration::from_secs(60))
        .unwrap_err();
    assert!(refusal.contains("identity provider"), "{refusal}");
}

#[tokio::test]
async fn a_rotated_jwks_file_is_picked_up_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("jalon-jwks-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    let full: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let only_first = json!({ "keys": [full["keys"][0].clone()] });
    std::fs::write(&file, only_first.to_string()).unwrap();
    let jwks_file = file.clone();
    let app = TestApp::spawn_with(&Backend::Sqlite, move |s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_file = Some(jwks_file);
        s.auth.jwks_reload_interval_secs = 0;
    })
    .await;
    let good = claims("ada");
    let new_key = sign(Algorithm::RS256, Some("key-2026-07"), "rsa2.key", &good);
    refused(
        list_with(&app, Some(&new_key)).await,
        "a kid the file does not hold yet",
    );
    // The identity provider publishes its new key: the file changes.
    std::fs::write(&file, full.to_string()).unwrap();
    assert!(
        list_with(&app, Some(&new_key)).await.is_ok(),
        "the new key is picked up"
    );
    assert!(
        list_with(
            &app,
            Some(&sign(
                Algorithm::RS256,
                Some("key-2026-01"),
                "rsa1.key",
                &good
            ))
        )
        .await
        .is_ok()
    );
    // A broken file keeps the keys that work.
    std::fs::write(&file, "not json").unwrap();
    refused(
        list_with(
            &app,
            Some(&sign(Algorithm::RS256, Some("unknown"), "rsa3.key", &good)),
        )
        .await,
        "unknown kid",
    );
    assert!(
        list_with(&app, Some(&new_key)).await.is_ok(),
        "previous keys are kept"
    );
    app.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
