//! Webhook deliveries: the Standard Webhooks signature, the HTTP client
//! that refuses non-public addresses after resolving them (and connects to
//! the address it checked), and the delivery worker each replica runs.
//!
//! The worker follows the outbox: woken by every commit (this process's,
//! and other replicas' through PostgreSQL NOTIFY) and every
//! `webhooks.poll_interval_ms` for due retries, it turns new events into
//! deliveries (`jalon_store::webhooks::fan_out`), claims due deliveries
//! under a lease, sends them, and records each attempt. See
//! `jalon_store::webhooks` for why each delivery is sent by one replica at a
//! time and none is lost when a replica dies.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use jalon_core::webhook::{EndpointUrl, Network, check_address, honours_retry_after, retry_delay};
use jalon_store::{
    Store,
    webhooks::{Attempt, Claimed, Recorded, Verdict},
};
use tokio::{net::TcpStream, sync::Semaphore, task::JoinSet};
use tokio_rustls::{
    TlsConnector,
    rustls::{self, pki_types::ServerName},
};

use crate::{config::WebhookSettings, metrics::Metrics};

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new signing secret: `whsec_` and the base64 of random bytes.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0_u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a secret: {e}"))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The signature of a message, `v1,` and the base64 of the HMAC-SHA256 of
/// `id.timestamp.body` keyed with the secret's decoded bytes.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key_bytes = STANDARD
        .decode(encoded)
        .map_err(|e| format!("a webhook secret is not base64: {e}"))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key_bytes);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body.as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// The `webhook-signature` header: one signature per secret, separated by
/// spaces (two during a rotation's grace period).
pub fn signature_header(
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, String> {
    let signatures = secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// Why an attempt got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The address is not allowed (SSRF rules), or the host did not
    /// resolve to one that is.
    Refused(String),
    /// Resolution, connection, TLS or protocol error.
    Network(String),
    /// No answer within the timeout.
    Timeout(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(why) => write!(f, "refused: {why}"),
            Failure::Network(why) => f.write_str(why),
            Failure::Timeout(after) => write!(f, "no answer within {} s", after.as_secs()),
        }
    }
}

/// An endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
}

/// How deliveries reach endpoints.
#[derive(Clone)]
pub struct Client {
    allowed: Arc<Vec<Network>>,
    allow_http: bool,
    timeout: Duration,
    tls: TlsConnector,
}

impl Client {
    pub fn new(settings: &WebhookSettings) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for path in &settings.extra_root_certificates {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!("invalid configuration: webhooks.extra_root_certificates: {path}: {e}")
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "invalid configuration: webhooks.extra_root_certificates: {path} holds no certificate"
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    format!("invalid configuration: webhooks.extra_root_certificates: {path}: {e}")
                })?;
            }
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("webhook TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            allowed: Arc::new(settings.networks()?),
            allow_http: settings.allow_http,
            timeout: Duration::from_secs(settings.timeout_secs),
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// POSTs `body` with `headers` to `url`, within the timeout: resolves the
    /// host, keeps the first address the rules allow (refusing when none
    /// is), connects to that very address, and reads the answer's status
    /// (a redirect is an answer like any other: never followed).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, Failure> {
        let url = EndpointUrl::parse(url, self.allow_http)
            .map_err(|e| Failure::Refused(format!("the URL {e}")))?;
        match tokio::time::timeout(self.timeout, self.send(&url, headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(self.timeout)),
        }
    }

    async fn send(
        &self,
        url: &EndpointUrl,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, Failure> {
        let addr = self.resolve(url).await?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| Failure::Network(format!("cannot connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if url.https() {
            let name = ServerName::try_from(url.host().to_owned())
                .map_err(|e| Failure::Network(format!("invalid TLS server name: {e}")))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Network(format!("TLS with {addr}: {e}")))?;
            exchange(TokioIo::new(tls), url, headers, body).await
        } else {
            exchange(TokioIo::new(tcp), url, headers, body).await
        }
    }

    /// The first resolved address of the URL's host that the rules allow.
    async fn resolve(&self, url: &EndpointUrl) -> Result<SocketAddr, Failure> {
        let addrs: Vec<SocketAddr> = match url.host().parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, url.port())],
            Err(_) => tokio::net::lookup_host((url.host(), url.port()))
                .await
                .map_err(|e| Failure::Network(format!("cannot resolve {}: {e}", url.host())))?
                .collect(),
        };
        let mut refusal = None;
        for addr in addrs {
            match check_address(addr.ip(), &self.allowed) {
                Ok(()) => return Ok(addr),
                Err(why) => {
                    refusal.get_or_insert(why);
                }
            }
        }
        Err(Failure::Refused(refusal.unwrap_or_else(|| {
            format!("{} resolved to no address", url.host())
        })))
    }
}

async fn exchange<T>(
    io: TokioIo<T>,
    url: &EndpointUrl,
    headers: &[(&'static str, String)],
    body: Bytes,
) -> Result<Answer, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Failure::Network(format!("HTTP handshake: {e}")))?;
    // Drives the connection until the answer is read; dropped with it.
    let driver = tokio::spawn(connection);
    let mut request = http::Request::post(url.path_and_query())
        .header(http::header::HOST, url.authority())
        .header(http::header::CONTENT_TYPE, "application/cloudevents+json")
        .header(
            http::header::USER_AGENT,
            concat!("jalon-webhooks/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| Failure::Network(format!("cannot build the request: {e}")))?;
    let result = sender.send_request(request).await;
    driver.abort();
    let response = result.map_err(|e| Failure::Network(format!("HTTP: {e}")))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    Ok(Answer {
        status,
        retry_after,
    })
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

/// The delivery worker of one replica.
pub struct Worker {
    pub store: Store,
    pub settings: WebhookSettings,
    pub client: Client,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Runs until the task is dropped (deliveries in flight are dropped
    /// with it; their leases expire and another replica sends them).
    pub async fn run(self) {
        let this = Arc::new(self);
        let mut wake = jalon_store::events::subscribe();
        let slots = Arc::new(Semaphore::new(this.settings.concurrency));
        let mut in_flight = JoinSet::new();
        let poll = Duration::from_millis(this.settings.poll_interval_ms);
        let window = Duration::from_secs(this.settings.retry_window_secs);
        let lease = Duration::from_secs(this.settings.lease_secs);
        tracing::info!("webhook delivery worker started");
        loop {
            while in_flight.try_join_next().is_some() {}
            if let Err(error) =
                jalon_store::webhooks::fan_out(this.store.db(), window, &this.settings.source).await
            {
                tracing::warn!(%error, "cannot turn new events into webhook deliveries");
            }
            let free = slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match jalon_store::webhooks::claim_due(this.store.db(), free as u64, lease).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(%error, "cannot claim webhook deliveries");
                        Vec::new()
                    }
                }
            };
            let full = free > 0 && claimed.len() == free;
            for delivery in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let this = this.clone();
                in_flight.spawn(async move {
                    this.attempt(delivery).await;
                    drop(permit);
                });
            }
            if full {
                // More may be due: claim again as soon as a slot frees.
                tokio::select! {
                    _ = in_flight.join_next() => {}
                    () = tokio::time::sleep(poll) => {}
                }
                continue;
            }
            tokio::select! {
                _ = wake.recv() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Sends one claimed delivery and records what happened.
    async fn attempt(&self, claimed: Claimed) {
        let start_time = Utc::now();
        let timestamp = start_time.timestamp();
        let id = claimed.event_id.to_string();
        let signature = match signature_header(&claimed.secrets, &id, timestamp, &claimed.body) {
            Ok(signature) => signature,
            Err(error) => {
                tracing::error!(%error, endpoint_id = %claimed.endpoint_id, "cannot sign a webhook delivery");
                return;
            }
        };
        let headers = [
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        let started = Instant::now();
        let result = self
            .client
            .post(&claimed.url, &headers, Bytes::from(claimed.body.clone()))
            .await;
        let elapsed = started.elapsed();
        let latency_ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        let attempts = u32::try_from(claimed.attempts)
            .unwrap_or(0)
            .saturating_add(1);
        let retry = |retry_after: Option<Duration>| {
            let delay = retry_delay(
                attempts,
                Duration::from_millis(self.settings.retry_initial_delay_ms),
                Duration::from_secs(self.settings.retry_max_delay_secs),
                jitter(),
                retry_after,
            );
            let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            if at > claimed.give_up_time {
                Verdict::GiveUp
            } else {
                Verdict::Retry(at)
            }
        };
        let (verdict, status_code, error, outcome, reached) = match &result {
            Ok(answer) if (200..300).contains(&answer.status) => (
                Verdict::Succeeded,
                Some(answer.status),
                None,
                "succeeded",
                true,
            ),
            Ok(answer) if answer.status == 410 => (
                Verdict::Gone,
                Some(answer.status),
                Some("410 Gone: the endpoint is disabled".to_owned()),
                "gone",
                true,
            ),
            Ok(answer) => {
                let asked = honours_retry_after(answer.status)
                    .then_some(answer.retry_after)
                    .flatten();
                (
                    retry(asked),
                    Some(answer.status),
                    Some(format!("HTTP {}", answer.status)),
                    "failed",
                    true,
                )
            }
            Err(failure) => (
                retry(None),
                None,
                Some(failure.to_string()),
                if matches!(failure, Failure::Refused(_)) {
                    "refused"
                } else {
                    "failed"
                },
                false,
            ),
        };
        let outcome = if verdict == Verdict::GiveUp {
            "gave_up"
        } else {
            outcome
        };
        let attempt = Attempt {
            start_time,
            status_code,
            latency_ms,
            error: error.clone(),
        };
        let recorded = jalon_store::webhooks::record_attempt(
            self.store.db(),
            &claimed,
            &attempt,
            &verdict,
            Duration::from_secs(self.settings.disable_after_secs),
        )
        .await;
        let span_fields = (claimed.endpoint_id, claimed.event_id, &claimed.event_type);
        match recorded {
            Ok(Recorded::LeaseLost) => {
                self.metrics
                    .webhook_attempted("lease_lost", reached.then_some(elapsed));
                tracing::warn!(endpoint_id = %span_fields.0, event_id = %span_fields.1, "webhook delivery lease lost: another replica took it over");
                return;
            }
            Ok(Recorded::Disabled(reason)) => {
                self.metrics.webhook_endpoint_disabled();
                tracing::warn!(endpoint_id = %span_fields.0, organisation_id = %claimed.organisation_id, %reason, "webhook endpoint disabled");
            }
            Ok(Recorded::Done) => {}
            Err(error) => {
                tracing::warn!(%error, endpoint_id = %span_fields.0, "cannot record a webhook attempt; its lease will expire and it will be sent again");
            }
        }
        self.metrics
            .webhook_attempted(outcome, reached.then_some(elapsed));
        tracing::info!(
            endpoint_id = %span_fields.0,
            event_id = %span_fields.1,
            event_type = %span_fields.2,
            attempt = attempts,
            status = status_code.map_or(0, i32::from),
            latency_ms,
            outcome,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery attempted"
        );
    }
}

/// A uniform number in [0, 1) for the retry jitter.
fn jitter() -> f64 {
    getrandom::u32().map_or(0.5, |r| f64::from(r) / (f64::from(u32::MAX) + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification (and of its
    /// reference libraries' tests).
    #[test]
    fn signs_the_specification_test_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signature = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .expect("signs");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // The prefix is optional for the key.
        assert_eq!(
            sign(
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            Ok(signature)
        );
    }

    #[test]
    fn a_rotation_signs_twice() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(
            STANDARD
                .decode(a.trim_start_matches("whsec_"))
                .expect("base64")
                .len(),
            SECRET_BYTES
        );
        let header = signature_header(&[a.clone(), b.clone()], "id", 1, "{}").expect("signs");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&a, "id", 1, "{}").expect("signs"));
        assert_eq!(parts[1], sign(&b, "id", 1, "{}").expect("signs"));
        assert!(sign("whsec_not base64!", "id", 1, "{}").is_err());
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (Utc::now() + chrono::Duration::seconds(600)).to_rfc2822();
        let parsed = parse_retry_after(&later).expect("date");
        assert!(parsed > Duration::from_secs(590) && parsed <= Duration::from_secs(600));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn private_addresses_are_refused_before_connecting() {
        let settings = WebhookSettings {
            allow_http: true,
            ..WebhookSettings::default()
        };
        let client = Client::new(&settings).expect("client");
        for url in [
            "http://127.0.0.1:9/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9/",
            "http://localhost:9/",
        ] {
            match client.post(url, &[], Bytes::new()).await {
                Err(Failure::Refused(why)) => assert!(why.contains("address"), "{url}: {why}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        let https_only = Client::new(&WebhookSettings::default()).expect("client");
        assert!(matches!(
            https_only
                .post("http://93.184.216.34/", &[], Bytes::new())
                .await,
            Err(Failure::Refused(_))
        ));
    }
}
