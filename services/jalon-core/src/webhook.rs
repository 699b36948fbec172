//! Webhooks: the rules of an endpoint's URL, of the addresses a delivery may
//! reach (no server-side request forgery), of the retry schedule and of a
//! delivery's state. Pure: the store keeps endpoints and deliveries, the
//! server signs and sends.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
    time::Duration,
};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint's URL, checked: `https://` (or `http://` when the operator
/// allows it), a host, no user information, no fragment, no whitespace or
/// control character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    raw: String,
    https: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

impl EndpointUrl {
    /// Parses and checks `raw`; `allow_http` admits `http://`.
    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("is required".into());
        }
        if raw.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain whitespace or control characters".into());
        }
        let (https, rest) = if let Some(rest) = strip_prefix_ci(raw, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(raw, "http://") {
            if !allow_http {
                return Err("must be an https:// URL".into());
            }
            (false, rest)
        } else {
            return Err(if allow_http {
                "must be an https:// or http:// URL".into()
            } else {
                "must be an https:// URL".into()
            });
        };
        if rest.contains('#') {
            return Err("must not have a fragment (#...)".into());
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("must not carry user information (user@host)".into());
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        let path_and_query = match tail {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        Ok(Self {
            raw: raw.to_owned(),
            https,
            host: host.to_ascii_lowercase(),
            port,
            path_and_query,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn https(&self) -> bool {
        self.https
    }

    /// The host: a DNS name, or an IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query, `/` at least.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// `Host` header value: the host, bracketed when IPv6, and the port
    /// when not the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| "has an unclosed IPv6 address".to_owned())?;
        let host = &rest[..close];
        host.parse::<Ipv6Addr>()
            .map_err(|_| "has an invalid IPv6 address".to_owned())?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| "has an invalid authority".to_owned())?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("must name a host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err("has a host with characters a host name cannot have".into());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| "has an invalid port".to_owned())?,
        ),
    };
    Ok((host, port))
}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network (a.b.c.d/n)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Network {
    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why a delivery may not reach an address: it is not a public one
/// (loopback, private, link-local, unique-local, cloud metadata,
/// unspecified, multicast, reserved, shared address space). `None` for a
/// public address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("cloud metadata")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space (carrier-grade NAT)")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignments")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        Some("cloud metadata")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique-local")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xff00 == 0xff00 {
        Some("multicast or reserved")
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the IPv4 address it stands for decides.
        let [.., hi, lo] = ip.segments();
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        forbidden_v4(v4)
    } else {
        None
    }
}

/// Whether a delivery may connect to `ip`: a public address, or one in a
/// network the operator allows. `Err` says why not.
pub fn check_address(ip: IpAddr, allowed: &[Network]) -> Result<(), String> {
    if allowed.iter().any(|n| n.contains(ip)) {
        return Ok(());
    }
    match forbidden_reason(ip) {
        None => Ok(()),
        Some(why) => Err(format!(
            "{ip} is a {why} address (not in webhooks.allowed_networks)"
        )),
    }
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Given up: the retry window passed, or the endpoint answered 410.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [Self::Pending, Self::Succeeded, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown delivery state {s:?}"))
    }
}

/// When to try again: exponential backoff (`initial`, times 4 after each
/// failure, at most `max`), with jitter (`jitter` in [0, 1) spreads the
/// delay over ±20%), unless the endpoint asked for a later time
/// (`Retry-After`, at most `max`).
pub fn retry_delay(
    attempts: u32,
    initial: Duration,
    max: Duration,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let base = initial
        .saturating_mul(4_u32.saturating_pow(exponent))
        .min(max);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    let jittered = base.mul_f64(factor).min(max);
    match retry_after {
        Some(asked) => jittered.max(asked.min(max)),
        None => jittered,
    }
}

/// Whether an HTTP status is worth honouring `Retry-After` for.
pub fn honours_retry_after(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The organisation-level alert kind raised when the delivery worker
/// disables an endpoint (a 410, or every attempt failing for
/// `disable_after`); cleared when the endpoint is re-enabled or deleted.
pub const DISABLED_ALERT: &str = "WEBHOOK_DISABLED";

/// Whether a role sees organisation-level alerts (in `ListAlerts` and as
/// events): those who run the organisation, not members, viewers or
/// integrations (the endpoints are an ADMIN's business; a DIRECTOR follows
/// the portfolio's health).
pub fn sees_organisation_alerts(role: crate::authz::Role) -> bool {
    matches!(
        role,
        crate::authz::Role::Admin | crate::authz::Role::Director
    )
}

/// The human reason of a [`DISABLED_ALERT`]: the endpoint's host (never its
/// path or query, which may carry a token) and why it was disabled.
pub fn disabled_alert_reason(url: &str, why: &str) -> String {
    let host = EndpointUrl::parse(url, true)
        .map(|u| u.host().to_owned())
        .unwrap_or_else(|_| "an endpoint".to_owned());
    format!("webhook endpoint {host} disabled: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_unless_http_is_allowed() {
        let url = EndpointUrl::parse("https://Hooks.Example.com/in?x=1", false).unwrap();
        assert!(url.https());
        assert_eq!(url.host(), "hooks.example.com");
        assert_eq!(url.port(), 443);
        assert_eq!(url.path_and_query(), "/in?x=1");
        assert_eq!(url.authority(), "hooks.example.com");
        assert!(EndpointUrl::parse("http://example.com/", false).is_err());
        let http = EndpointUrl::parse("http://127.0.0.1:8080", true).unwrap();
        assert_eq!((http.host(), http.port()), ("127.0.0.1", 8080));
        assert_eq!(http.path_and_query(), "/");
        assert_eq!(http.authority(), "127.0.0.1:8080");
        let v6 = EndpointUrl::parse("https://[::1]:9/x", false).unwrap();
        assert_eq!((v6.host(), v6.port()), ("::1", 9));
        assert_eq!(v6.authority(), "[::1]:9");
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "",
            "ftp://example.com",
            "https://",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com/",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://[::1/",
            "https://ex\u{0}ample.com",
        ] {
            assert!(EndpointUrl::parse(bad, true).is_err(), "{bad:?}");
        }
        assert!(EndpointUrl::parse(&format!("https://a.b/{}", "x".repeat(3000)), false).is_err());
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(forbidden_reason(ip).is_some(), "{ip}");
            assert!(check_address(ip, &[]).is_err(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden_reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn allowed_networks_open_forbidden_addresses() {
        let allowed: Vec<Network> =
            vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        assert!(check_address("127.0.0.1".parse().unwrap(), &allowed).is_ok());
        assert!(check_address("::ffff:127.0.0.1".parse().unwrap(), &allowed).is_ok());
        assert!(check_address("10.200.0.1".parse().unwrap(), &allowed).is_ok());
        assert!(check_address("127.0.0.2".parse().unwrap(), &allowed).is_err());
        assert!(check_address("192.168.0.1".parse().unwrap(), &allowed).is_err());
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.168.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nope".parse::<Network>().is_err());
        assert_eq!(
            "fc00::/7".parse::<Network>().unwrap().to_string(),
            "fc00::/7"
        );
    }

    #[test]
    fn retries_back_off_exponentially_within_bounds() {
        let initial = Duration::from_secs(10);
        let max = Duration::from_secs(12 * 3600);
        let mid = |n| retry_delay(n, initial, max, 0.5, None);
        assert_eq!(mid(1), Duration::from_secs(10));
        assert_eq!(mid(2), Duration::from_secs(40));
        assert_eq!(mid(3), Duration::from_secs(160));
        assert_eq!(mid(20), max);
        assert_eq!(mid(u32::MAX), max);
        let low = retry_delay(2, initial, max, 0.0, None);
        let high = retry_delay(2, initial, max, 0.999, None);
        assert!(low >= Duration::from_secs(32) && high < Duration::from_secs(49));
        // Retry-After wins when later, and is bounded.
        let asked = retry_delay(1, initial, max, 0.5, Some(Duration::from_secs(120)));
        assert_eq!(asked, Duration::from_secs(120));
        let huge = retry_delay(1, initial, max, 0.5, Some(Duration::from_secs(10_000_000)));
        assert_eq!(huge, max);
        // About three days of attempts with the defaults.
        let mut total = Duration::ZERO;
        let mut attempts = 0;
        while total < Duration::from_secs(3 * 24 * 3600) {
            attempts += 1;
            total += mid(attempts);
        }
        assert!((10..=16).contains(&attempts), "{attempts}");
    }

    #[test]
    fn delivery_states_round_trip() {
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(s));
        }
        assert!("DONE".parse::<DeliveryState>().is_err());
        assert!(honours_retry_after(503) && !honours_retry_after(500));
    }

    #[test]
    fn a_disabled_alert_names_the_host_not_the_path() {
        let reason = disabled_alert_reason(
            "https://hooks.example.com:8443/jalon?token=secret",
            "the endpoint answered 410 Gone",
        );
        assert_eq!(
            reason,
            "webhook endpoint hooks.example.com disabled: the endpoint answered 410 Gone"
        );
        assert!(sees_organisation_alerts(crate::authz::Role::Director));
        assert!(!sees_organisation_alerts(crate::authz::Role::Member));
    }
}
