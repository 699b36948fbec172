//! Authentication: every call but health and reflection carries
//! `authorization: Bearer <JWT>`. The signature, `exp`, `nbf`, `iss` and `aud`
//! are checked with the one algorithm the configuration pins. Whatever is
//! wrong with a token, the answer is the same bare `UNAUTHENTICATED`.

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    jwk::JwkSet,
};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};

use crate::config::{AuthSettings, DatabaseSettings};

/// The subject treated as platform administrator in development mode.
pub const DEV_ADMIN_SUBJECT: &str = "dev-admin";
/// Issuer of development tokens.
pub const DEV_ISSUER: &str = "jalon-dev";
/// Audience of development tokens.
pub const DEV_AUDIENCE: &str = "jalon";
/// Name of the file holding the development secret, beside the database.
pub const DEV_SECRET_FILE: &str = ".jalon-dev-secret";

/// Who is calling: put in every authenticated request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// Named in `auth.platform_admins` (or `dev-admin` in development mode).
    pub platform_admin: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    exp: u64,
    /// Every other claim: `auth.subject_claim` may name one (`oid`).
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// RFC 7519 §4.1.3: `aud` is one string or an array of strings (identity
/// providers such as Keycloak send `["jalon", "account"]`). jsonwebtoken's
/// validation accepts either when one of them is ours; this type only lets
/// the claims be read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

enum Keys {
    One(DecodingKey),
    Jwks(Jwks),
}

/// A JWKS file, checked again at most once per `reload_interval` (when a
/// token arrives): when its content changed, its keys replace the ones held.
/// A key the identity provider rotated out (or that was compromised) stops
/// working within the interval, and a new key works without a restart (the
/// file updated by a Kubernetes Secret or a sidecar). A file that cannot be
/// read or parsed keeps the previous keys (a write in progress); a valid
/// file with no usable key leaves none.
struct Jwks {
    file: PathBuf,
    algorithm: Algorithm,
    reload_interval: Duration,
    state: std::sync::RwLock<JwksState>,
}

struct JwksState {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// The file's content when `keys` were read from it.
    content: Vec<u8>,
    checked: std::time::Instant,
}

impl Jwks {
    fn load(file: &Path, algorithm: Algorithm, reload_interval: Duration) -> Result<Self, String> {
        let content = fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let keys = parse_jwks(file, &content, algorithm)?;
        if keys.is_empty() {
            return Err(format!(
                "{} has no {algorithm:?} key with a kid",
                file.display()
            ));
        }
        Ok(Self {
            file: file.to_path_buf(),
            algorithm,
            reload_interval,
            state: std::sync::RwLock::new(JwksState {
                keys,
                content,
                checked: std::time::Instant::now(),
            }),
        })
    }

    fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let due = self
            .state
            .read()
            .map(|state| state.checked.elapsed() >= self.reload_interval)
            .unwrap_or(true);
        if due {
            self.reload_if_changed();
        }
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys
            .get(kid)
            .cloned()
    }

    fn reload_if_changed(&self) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another call may have checked meanwhile.
        if state.checked.elapsed() < self.reload_interval {
            return;
        }
        state.checked = std::time::Instant::now();
        let content = match fs::read(&self.file) {
            Ok(content) => content,
            Err(e) => {
                tracing::warn!(file = %self.file.display(), error = %e, "cannot read the jwks file: keeping the previous keys");
                return;
            }
        };
        if content == state.content {
            return;
        }
        match parse_jwks(&self.file, &content, self.algorithm) {
            Ok(keys) => {
                let removed = state.keys.keys().filter(|k| !keys.contains_key(*k)).count();
                if keys.is_empty() {
                    tracing::error!(file = %self.file.display(), algorithm = ?self.algorithm, "jwks file changed and holds no usable key: every token is refused");
                } else {
                    tracing::info!(
                        keys = keys.len(),
                        removed,
                        "jwks file changed: keys reloaded"
                    );
                }
                state.keys = keys;
                state.content = content;
            }
            Err(error) => {
                tracing::warn!(%error, "jwks file changed but cannot be used: keeping the previous keys")
            }
        }
    }
}

/// How tokens are checked, and what the configuration resolved to.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    platform_admins: HashSet<String>,
    /// The HS256 secret when tokens can be minted here (development mode or
    /// a configured shared secret).
    minting_secret: Option<Vec<u8>>,
    /// Where the HS256 secret was read from, for messages.
    secret_source: String,
    /// True in development mode.
    pub development: bool,
    /// The claim that names the person (`auth.subject_claim`).
    subject_claim: String,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(format!(
            "auth.algorithm '{other}' is not supported: use HS256, RS256 or ES256"
        )),
    }
}

/// Whether the development secret may be created when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevSecret {
    /// `jalon serve`: the first start creates it.
    CreateIfMissing,
    /// `jalon token` and other tools: a secret made here would sign tokens
    /// that no server accepts.
    MustExist,
}

/// The development secret's file for a database directory, made absolute
/// when it can be (for messages).
pub fn dev_secret_path(directory: &Path) -> PathBuf {
    let path = directory.join(DEV_SECRET_FILE);
    std::path::absolute(&path).unwrap_or(path)
}

/// Reads the development secret beside the database, creating it (random,
/// owner-only permissions) the first time when `mode` allows it.
pub fn dev_secret(directory: &Path, mode: DevSecret) -> Result<Vec<u8>, String> {
    let path = dev_secret_path(directory);
    match fs::read_to_string(&path) {
        Ok(text) => STANDARD
            .decode(text.trim())
            .map_err(|_| format!("{} is corrupt: delete it to get a new one", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match mode {
            DevSecret::CreateIfMissing => create_dev_secret(&path),
            DevSecret::MustExist => Err(format!(
                "no development secret at {}: `jalon serve` creates it beside its database on \
                 its first start. Run this command in the server's directory, or with the \
                 server's --database-url or --config, so that it finds the same secret",
                path.display()
            )),
        },
        Err(e) => Err(format!(
            "cannot read the development secret {}: {e}",
            path.display()
        )),
    }
}

fn create_dev_secret(path: &Path) -> Result<Vec<u8>, String> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness available: {e}"))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(STANDARD.encode(&secret).as_bytes())
                .map_err(|e| {
                    format!(
                        "cannot write the development secret {}: {e}",
                        path.display()
                    )
                })?;
            tracing::info!(file = %path.display(), "development secret created");
            Ok(secret)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => dev_secret(
            path.parent().unwrap_or(Path::new(".")),
            DevSecret::MustExist,
        ),
        Err(e) => Err(format!(
            "cannot create the development secret {} (beside the database): {e}",
            path.display()
        )),
    }
}

impl Authenticator {
    /// Builds the authenticator the settings describe, creating the
    /// development secret when it is missing (`jalon serve`).
    pub fn from_settings(auth: &AuthSettings, database: &DatabaseSettings) -> Result<Self, String> {
        Self::load(auth, database, DevSecret::CreateIfMissing)
    }

    /// Builds the authenticator the settings describe; `dev_secret` says
    /// whether a missing development secret may be created.
    pub fn load(
        auth: &AuthSettings,
        database: &DatabaseSettings,
        dev_secret_mode: DevSecret,
    ) -> Result<Self, String> {
        let development = auth.development_mode();
        let mut platform_admins: HashSet<String> = auth.platform_admins.iter().cloned().collect();
        if auth.public_key_file.is_some() && auth.jwks_file.is_some() {
            return Err("set auth.public_key_file or auth.jwks_file, not both".into());
        }
        let (issuer, audience) = if development {
            platform_admins.insert(DEV_ADMIN_SUBJECT.to_owned());
            (
                auth.issuer.clone().unwrap_or_else(|| DEV_ISSUER.into()),
                auth.audience.clone().unwrap_or_else(|| DEV_AUDIENCE.into()),
            )
        } else {
            match (&auth.issuer, &auth.audience) {
                (Some(iss), Some(aud)) => (iss.clone(), aud.clone()),
                _ => {
                    return Err(
                        "auth.issuer and auth.audience are required when a key is configured"
                            .into(),
                    );
                }
            }
        };

        let mut secret_source = String::new();
        let (algorithm, keys, minting_secret) = if development || auth.hs256_secret.is_some() {
            let algorithm = parse_algorithm(auth.algorithm.as_deref().unwrap_or("HS256"))?;
            if algorithm != Algorithm::HS256 {
                return Err("a shared secret only works with auth.algorithm = HS256".into());
            }
            let secret = match &auth.hs256_secret {
                Some(secret) => {
                    secret_source = "auth.hs256_secret".to_owned();
                    secret.expose().as_bytes().to_vec()
                }
                None => {
                    let directory = database.directory();
                    secret_source = format!(
                        "the development secret {}",
                        dev_secret_path(&directory).display()
                    );
                    dev_secret(&directory, dev_secret_mode)?
                }
            };
            if secret.len() < 32 {
                return Err("auth.hs256_secret must be at least 32 bytes".into());
            }
            let key =
                DecodingKey::from_secret(&secret).map_err(|e| format!("bad HS256 secret: {e}"))?;
            (algorithm, Keys::One(key), Some(secret))
        } else {
            let algorithm = parse_algorithm(auth.algorithm.as_deref().unwrap_or("RS256"))?;
            if algorithm == Algorithm::HS256 {
                return Err(
                    "auth.algorithm = HS256 needs auth.hs256_secret, not a public key".into(),
                );
            }
            let keys = if let Some(file) = &auth.public_key_file {
                let pem =
                    fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let key = match algorithm {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    _ => DecodingKey::from_ec_pem(&pem),
                }
                .map_err(|e| {
                    format!("{} is not a {algorithm:?} public key: {e}", file.display())
                })?;
                Keys::One(key)
            } else {
                let file = auth.jwks_file.as_ref().ok_or("no key configured")?;
                Keys::Jwks(Jwks::load(
                    file,
                    algorithm,
                    Duration::from_secs(auth.jwks_reload_interval_secs),
                )?)
            };
            (algorithm, keys, None)
        };

        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        if auth.subject_claim == "sub" {
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        } else {
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        }
        validation.validate_nbf = true;
        validation.leeway = auth.leeway_secs;
        Ok(Self {
            keys,
            validation,
            platform_admins,
            minting_secret,
            secret_source,
            development,
            subject_claim: auth.subject_claim.clone(),
        })
    }

    /// Where the HS256 secret comes from (`auth.hs256_secret`, or the
    /// development secret's file), empty with a public key.
    pub fn secret_source(&self) -> &str {
        &self.secret_source
    }

    /// Checks a bearer token; `None` for a bad one, whatever the reason.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        let from_jwks;
        let key = match &self.keys {
            Keys::One(key) => key,
            Keys::Jwks(jwks) => {
                let kid = decode_header(token).ok()?.kid?;
                from_jwks = jwks.get(&kid)?;
                from_jwks.as_ref()
            }
        };
        let claims = match decode::<Claims>(token, key, &self.validation) {
            Ok(data) => data.claims,
            Err(e) => {
                let reason = refusal(e.kind());
                if self.development && reason == "bad signature" {
                    // The usual cause: a token minted with another
                    // directory's secret (`jalon token` run elsewhere).
                    tracing::info!(
                        reason,
                        secret = %self.secret_source,
                        "token refused: in development mode tokens are signed with this secret; \
                         run `jalon token` with the server's --database-url or --config"
                    );
                } else {
                    tracing::debug!(reason, "token refused");
                }
                return None;
            }
        };
        let subject = if self.subject_claim == "sub" {
            claims.sub?
        } else {
            match claims.other.get(&self.subject_claim) {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => {
                    tracing::debug!(claim = %self.subject_claim, "token refused: no subject claim");
                    return None;
                }
            }
        };
        if subject.is_empty() {
            return None;
        }
        Some(Caller {
            platform_admin: self.platform_admins.contains(&subject),
            subject,
        })
    }

    /// Mints a token for `subject`, valid for `ttl`, when this configuration
    /// has a shared secret.
    pub fn mint(&self, subject: &str, ttl: Duration) -> Result<String, String> {
        let secret = self.minting_secret.as_ref().ok_or(
            "`jalon token` only works in development mode (or with auth.hs256_secret): \
             with a PEM or JWKS key configured, tokens come from your identity provider",
        )?;
        let now = jsonwebtoken::get_current_timestamp();
        let mut other = serde_json::Map::new();
        if self.subject_claim != "sub" {
            other.insert(
                self.subject_claim.clone(),
                serde_json::Value::String(subject.to_owned()),
            );
        }
        let claims = Claims {
            sub: Some(subject.to_owned()),
            iss: self
                .validation
                .iss
                .as_ref()
                .and_then(|s| s.iter().next().cloned()),
            aud: self
                .validation
                .aud
                .as_ref()
                .and_then(|s| s.iter().next().cloned())
                .map(Audience::One),
            iat: Some(now),
            nbf: Some(now),
            exp: now + ttl.as_secs(),
            other,
        };
        let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|e| e.to_string())
    }
}

/// The usable keys of a JWKS document (possibly none): those with a `kid`,
/// of the pinned algorithm's family, declaring no other algorithm.
fn parse_jwks(
    file: &Path,
    content: &[u8],
    algorithm: Algorithm,
) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    let set: JwkSet = serde_json::from_slice(content)
        .map_err(|e| format!("{} is not a JWKS document: {e}", file.display()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        // A key that declares another algorithm is not usable here.
        if let Some(alg) = jwk.common.key_algorithm
            && format!("{alg:?}") != format!("{algorithm:?}")
        {
            continue;
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(key) if key.family() == algorithm.family() => {
                keys.insert(kid, Arc::new(key));
            }
            _ => {}
        }
    }
    Ok(keys)
}

/// Parses a duration such as `90s`, `30m`, `12h`, `7d` (or plain seconds).
pub fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration like 30m, 12h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("'{raw}' is not a duration like 30m, 12h or 7d")),
    };
    if secs == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// The tonic interceptor that authenticates every call of the API services.
#[derive(Clone)]
pub struct AuthInterceptor(pub Arc<Authenticator>);

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .and_then(|token| self.0.authenticate(token))
            .ok_or_else(|| Status::unauthenticated("missing or invalid credentials"))?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Why a token was refused, for the log: the kind only. The errors
/// themselves quote the token (a base64 error its bytes, a JSON error the
/// claim it choked on, which may be an e-mail address).
fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidToken | K::Base64(_) | K::Utf8(_) => "malformed token",
        K::Json(_) | K::InvalidClaimFormat(_) => "malformed claims",
        K::MissingRequiredClaim(_) => "missing claim",
        K::InvalidSignature => "bad signature",
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSubject => "wrong subject",
        K::InvalidAlgorithm | K::MissingAlgorithm | K::UnsupportedAlgorithm => "wrong algorithm",
        _ => "unusable key or token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn hs256_settings() -> (AuthSettings, DatabaseSettings) {
        let auth = AuthSettings {
            hs256_secret: Some(Secret::new("x".repeat(32))),
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            platform_admins: vec!["root".into()],
            ..Default::default()
        };
        (auth, DatabaseSettings::default())
    }

    #[test]
    fn minted_tokens_authenticate() {
        let (auth, db) = hs256_settings();
        let authn = Authenticator::from_settings(&auth, &db).unwrap();
        let token = authn.mint("root", Duration::from_secs(60)).unwrap();
        assert_eq!(
            authn.authenticate(&token),
            Some(Caller {
                subject: "root".into(),
                platform_admin: true
            })
        );
        let other = authn.mint("ada", Duration::from_secs(60)).unwrap();
        assert_eq!(
            authn.authenticate(&other).map(|c| c.platform_admin),
            Some(false)
        );
        assert_eq!(authn.authenticate("not.a.token"), None);
    }

    #[test]
    fn short_secrets_and_missing_issuer_are_refused() {
        let (mut auth, db) = hs256_settings();
        auth.hs256_secret = Some(Secret::new("short"));
        assert!(Authenticator::from_settings(&auth, &db).is_err());
        let (mut auth, db) = hs256_settings();
        auth.issuer = None;
        assert!(Authenticator::from_settings(&auth, &db).is_err());
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("abc").is_err());
    }

    fn hs256_token(claims: &serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret("x".repeat(32).as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn claims_with_aud(aud: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "sub": "ada",
            "iss": "iss",
            "aud": aud,
            "exp": jsonwebtoken::get_current_timestamp() + 600,
        })
    }

    #[test]
    fn aud_may_be_a_string_or_an_array_holding_ours() {
        let (auth, db) = hs256_settings();
        let authn = Authenticator::from_settings(&auth, &db).unwrap();
        for aud in [
            serde_json::json!("aud"),
            serde_json::json!(["aud"]),
            serde_json::json!(["aud", "account"]),
            serde_json::json!(["account", "aud"]),
        ] {
            let caller = authn.authenticate(&hs256_token(&claims_with_aud(aud.clone())));
            assert_eq!(caller.map(|c| c.subject), Some("ada".into()), "{aud}");
        }
        for aud in [
            serde_json::json!("account"),
            serde_json::json!(["account"]),
            serde_json::json!(["account", "other"]),
            serde_json::json!([]),
            serde_json::json!(42),
        ] {
            let caller = authn.authenticate(&hs256_token(&claims_with_aud(aud.clone())));
            assert_eq!(caller, None, "{aud}");
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name)
    }

    fn rs256_token(kid: &str, key_file: &str) -> String {
        let pem = fs::read(fixture(key_file)).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = claims_with_aud(serde_json::json!("aud"));
        encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "jalon-auth-{tag}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_key_removed_from_the_jwks_file_stops_working_after_the_interval() {
        let dir = temp_dir("jwks");
        let file = dir.join("jwks.json");
        let full: serde_json::Value =
            serde_json::from_slice(&fs::read(fixture("jwks.json")).unwrap()).unwrap();
        fs::write(&file, full.to_string()).unwrap();
        let auth = AuthSettings {
            jwks_file: Some(file.clone()),
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            jwks_reload_interval_secs: 1,
            ..Default::default()
        };
        let authn = Authenticator::from_settings(&auth, &DatabaseSettings::default()).unwrap();
        let old = rs256_token("key-2026-01", "rsa1.key");
        let new = rs256_token("key-2026-07", "rsa2.key");
        assert!(authn.authenticate(&old).is_some());
        assert!(authn.authenticate(&new).is_some());
        // The old key is rotated out: its kid is one the file no longer
        // holds, and no unknown kid is ever presented.
        let only_new = serde_json::json!({ "keys": [full["keys"][1].clone()] });
        fs::write(&file, only_new.to_string()).unwrap();
        // Within the interval the keys held are used as they are...
        assert!(authn.authenticate(&new).is_some());
        // ...after it, the file is read again and the old key is gone.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(authn.authenticate(&new).is_some());
        assert_eq!(authn.authenticate(&old), None);
        // A file left with no usable key refuses every token.
        fs::write(&file, r#"{"keys": []}"#).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(authn.authenticate(&new), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn tools_never_create_the_development_secret() {
        let dir = temp_dir("dev");
        let database = DatabaseSettings {
            url: Secret::new(format!("sqlite://{}/jalon.db?mode=rwc", dir.display())),
            ..Default::default()
        };
        let auth = AuthSettings::default();
        let e = Authenticator::load(&auth, &database, DevSecret::MustExist)
            .err()
            .expect("refused");
        let path = dir.join(DEV_SECRET_FILE);
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("jalon serve"), "{e}");
        assert!(!path.exists(), "nothing was created");
        // The server creates it; the tool then reads the same one.
        let server = Authenticator::from_settings(&auth, &database).unwrap();
        assert!(path.exists());
        let tool = Authenticator::load(&auth, &database, DevSecret::MustExist).unwrap();
        assert!(tool.secret_source().contains(&path.display().to_string()));
        let token = tool.mint("dev-admin", Duration::from_secs(60)).unwrap();
        assert!(
            server
                .authenticate(&token)
                .is_some_and(|c| c.platform_admin)
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
