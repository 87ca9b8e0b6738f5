//! The HTTP capability: what an extension's request and response are, the
//! provider trait, and the rules every provider shares: host patterns
//! (`allowed_hosts`, with optional ports), which addresses are public, and
//! which methods and headers an extension may send.
//!
//! A URL is checked twice: its host and port against the allow-list
//! ([`check_url`], before any provider runs) and every address the host
//! name resolves to against [`non_public`] (by the provider, before it
//! connects, on every redirect hop). Loopback, private, link-local and the
//! other special-purpose addresses are reachable only when the host's
//! policy grants private networks to the extension
//! ([`HttpLimits::private_network`]); the manifest alone never opens them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::{MorphError, Result};

/// A request from an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header pairs (checked by [`validate_request`]: no `Host`, framing,
    /// hop-by-hop or proxy headers, visible ASCII values only).
    pub headers: Vec<(String, String)>,
    /// Body bytes, if any.
    pub body: Option<Vec<u8>>,
}

/// A response to an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code (redirects already followed).
    pub status: u16,
    /// Header pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// What one request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Host patterns ([`HostPattern`]): exact names or IPs, or
    /// `*.example.com` (subdomains), each optionally with `:port`.
    pub allowed_hosts: Vec<String>,
    /// Whether the host's policy lets this extension reach loopback,
    /// private, link-local and other non-public addresses
    /// ([`non_public`]). Never taken from the manifest.
    pub private_network: bool,
    /// Total time of the whole request: name resolution, every redirect
    /// hop and reading the body (already capped to what is left of the
    /// execution's `max_execution_ms`).
    pub timeout: Duration,
    /// Largest response body in bytes (`max_http_response_bytes`); a larger
    /// one is refused with [`response_too_large`].
    pub max_response_bytes: u64,
}

/// Performs HTTP requests for extensions.
pub trait HttpProvider: Send + Sync {
    /// Performs `request` within `limits`. The capability host has already
    /// applied [`validate_request`] and [`check_url`]; a provider must check
    /// every redirect hop with [`check_url`] and every resolved address
    /// with [`address_allowed`] before connecting, stop at
    /// `limits.timeout` with `timeout`, and refuse a body above
    /// `limits.max_response_bytes` with [`response_too_large`].
    fn fetch(&self, request: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse>;
}

/// The host part of one `allowed_hosts` entry or of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternHost {
    /// Exactly this name or address.
    Exact(Host),
    /// `*.domain`: any strict subdomain of `domain` (never an IP address).
    Subdomains(String),
}

/// One `allowed_hosts` entry, parsed: `name`, `*.domain`, `a.b.c.d`, an
/// IPv6 address (bare or in brackets), each optionally followed by
/// `:port` (an IPv6 address with a port needs brackets: `[::1]:8080`).
/// Without a port it matches any port; with one, the URL's port or, when
/// the URL has none, its scheme's default (80, 443). Names compare
/// case-insensitively and without a trailing dot; a wildcard only matches
/// names, never IP addresses. The one parser behind the manifest check,
/// the host's policy and every provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: PatternHost,
    port: Option<u16>,
}

/// Longest `allowed_hosts` entry accepted.
const MAX_PATTERN_LEN: usize = 260;

impl HostPattern {
    /// Parses one entry; the error says what a valid entry looks like.
    pub fn parse(text: &str) -> std::result::Result<HostPattern, String> {
        let shape = "must be a host name, an IP address or `*.domain`, optionally with `:port` \
                     (an IPv6 address with a port in brackets, `[::1]:8080`)";
        let bad = |why: &str| format!("`{}` {shape}: {why}", text.escape_debug());
        if text.is_empty() || text.len() > MAX_PATTERN_LEN {
            return Err(bad("empty or longer than 260 characters"));
        }
        if let Some(c) = text.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']' | '*'))
        }) {
            return Err(bad(&format!("{c:?} is not allowed")));
        }
        if let Ok(v6) = text.parse::<Ipv6Addr>() {
            return Ok(HostPattern {
                host: PatternHost::Exact(Host::Ip(IpAddr::V6(v6))),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
            let v6: Ipv6Addr = inside
                .parse()
                .map_err(|_| bad("not an IPv6 address in the brackets"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("only `:port` may follow `]`"))?,
                ),
            };
            (PatternHost::Exact(Host::Ip(IpAddr::V6(v6))), port)
        } else {
            let (host, port) = match text.split_once(':') {
                None => (text, None),
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad("not an IPv6 address")),
            };
            let host = match host.strip_prefix("*.") {
                Some(domain) => {
                    let domain = dns_name(domain).map_err(|why| bad(&why))?;
                    if ends_numeric(&domain) {
                        return Err(bad("`*.` needs a domain name, not an IP address"));
                    }
                    PatternHost::Subdomains(domain)
                }
                None => match host.parse::<Ipv4Addr>() {
                    Ok(v4) => PatternHost::Exact(Host::Ip(IpAddr::V4(v4))),
                    Err(_) => {
                        let name = dns_name(host).map_err(|why| bad(&why))?;
                        if ends_numeric(&name) {
                            return Err(bad(
                                "an IPv4 address must be four decimal numbers (a.b.c.d)",
                            ));
                        }
                        PatternHost::Exact(Host::Name(name))
                    }
                },
            };
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&n| n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
            ),
        };
        Ok(HostPattern { host, port })
    }

    /// Whether a request to the URL host `host` (as in the URL: a name, an
    /// IPv4 address or a bracketed IPv6 address) on `port` (explicit, or
    /// the scheme's default) matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let Some(host) = url_host(host) else {
            return false;
        };
        match (&self.host, &host) {
            (PatternHost::Exact(p), h) => p == h,
            (PatternHost::Subdomains(d), Host::Name(n)) => {
                n.len() > d.len() + 1
                    && n.ends_with(d.as_str())
                    && n.as_bytes()[n.len() - d.len() - 1] == b'.'
            }
            (PatternHost::Subdomains(_), Host::Ip(_)) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PatternHost::Exact(Host::Ip(IpAddr::V6(v6))) => write!(f, "[{v6}]")?,
            PatternHost::Exact(Host::Ip(IpAddr::V4(v4))) => write!(f, "{v4}")?,
            PatternHost::Exact(Host::Name(n)) => f.write_str(n)?,
            PatternHost::Subdomains(d) => write!(f, "*.{d}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// A DNS name, checked and canonical (lowercase, no trailing dot): labels
/// of 1 to 63 letters, digits and inner hyphens, 253 characters at most.
fn dns_name(text: &str) -> std::result::Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "label `{label}`: 1 to 63 letters, digits and inner hyphens"
            ));
        }
    }
    Ok(name)
}

/// Whether the last label of a name starts with a digit: URL parsers and
/// resolvers read such names as IPv4 addresses (`127.1`, `0x7f.1`), so they
/// are never matched as names.
fn ends_numeric(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .and_then(|l| l.bytes().next())
        .is_some_and(|b| b.is_ascii_digit())
}

/// The host of a URL as the HTTP client sees it (`http::Uri::host`: IPv6
/// in brackets). `None` for anything that is neither an address nor a
/// valid name (it then matches no pattern).
fn url_host(host: &str) -> Option<Host> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse().ok().map(|v6| Host::Ip(IpAddr::V6(v6)));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(v4)));
    }
    let name = dns_name(host).ok()?;
    (!ends_numeric(&name)).then_some(Host::Name(name))
}

/// Whether the URL host `host` on `port` matches one of `patterns` (see
/// [`HostPattern`]; entries that do not parse match nothing, the manifest
/// refused them at load).
pub fn host_allowed(host: &str, port: u16, patterns: &[String]) -> bool {
    patterns
        .iter()
        .filter_map(|p| HostPattern::parse(p).ok())
        .any(|p| p.matches(host, port))
}

const V4_NON_PUBLIC: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    ([100, 64, 0, 0], 10, "shared/CGNAT (100.64.0.0/10)"),
    ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
    ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    (
        [192, 0, 0, 0],
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 31, 196, 0], 24, "AS112 (192.31.196.0/24)"),
    ([192, 52, 193, 0], 24, "AMT (192.52.193.0/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([192, 175, 48, 0], 24, "AS112 (192.175.48.0/24)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([240, 0, 0, 0], 4, "reserved or broadcast (240.0.0.0/4)"),
];

/// Most specific first, so the first match names the range. Everything
/// outside 2000::/3 is non-public too (see [`non_public`]).
const V6_NON_PUBLIC: &[([u16; 8], u8, &str)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified (::)"),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback (::1)"),
    (
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
        "IPv4-mapped (::ffff:0:0/96)",
    ),
    (
        [0, 0, 0, 0, 0xffff, 0, 0, 0],
        96,
        "IPv4-translated (::ffff:0:0:0/96)",
    ),
    ([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible (::/96)"),
    ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "NAT64 (64:ff9b::/96)"),
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local NAT64 (64:ff9b:1::/48)",
    ),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only (100::/64)"),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (2001:db8::/32)",
    ),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments, Teredo (2001::/23)",
    ),
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4 (2002::/16)"),
    (
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation (3fff::/20)",
    ),
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "SRv6 SIDs (5f00::/16)"),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (fc00::/7)"),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local (fe80::/10)"),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (fec0::/10)"),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast (ff00::/8)"),
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// Why `ip` is not an ordinary public unicast address, naming its range
/// (`None`: it is public). IPv4 follows the IANA special-purpose registry;
/// for IPv6 only global unicast (2000::/3) minus its special blocks is
/// public, so IPv4-mapped, -compatible and -translated addresses, NAT64,
/// 6to4, Teredo, unique-local, link-local and site-local are not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4_NON_PUBLIC
            .iter()
            .find(|(n, l, _)| in_v4(v4, *n, *l))
            .map(|r| r.2),
        IpAddr::V6(v6) => V6_NON_PUBLIC
            .iter()
            .find(|(n, l, _)| in_v6(v6, *n, *l))
            .map(|r| r.2)
            .or_else(|| {
                (!in_v6(v6, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3))
                    .then_some("not global unicast (outside 2000::/3)")
            }),
    }
}

/// Whether `ip` is an ordinary public address.
pub fn is_public(ip: IpAddr) -> bool {
    non_public(ip).is_none()
}

/// Addresses that are never an HTTP server, whatever the policy: the
/// unspecified address and "this network" (connecting to 0.0.0.0 reaches
/// the local machine), broadcast and multicast, also inside IPv6.
fn never_reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => in_v4(v4, [0, 0, 0, 0], 8) || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| never_reachable(IpAddr::V4(v4)))
        }
    }
}

/// Whether a provider may connect to `ip` for `host` (as in the URL):
/// public addresses always, non-public ones only with the host's
/// private-network grant, and never the unspecified, broadcast or
/// multicast addresses. The error is `permission_denied` naming the host,
/// the address and its range.
pub fn address_allowed(host: &str, ip: IpAddr, private_network: bool) -> Result<()> {
    if never_reachable(ip) {
        return Err(MorphError::permission_denied(format!(
            "op `http.fetch`: host `{host}` resolves to {ip}, which is never reachable"
        )));
    }
    match non_public(ip) {
        Some(range) if !private_network => Err(MorphError::permission_denied(format!(
            "op `http.fetch`: host `{host}` resolves to {ip}, a {range} address; the host's \
             policy does not allow private networks for this extension"
        ))),
        _ => Ok(()),
    }
}

/// Headers the host or the HTTP client sets, or that change the framing,
/// the connection or the route: an extension may not send them (nor any
/// `Proxy-*` header: there is never a proxy).
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
    "expect",
];

/// Headers dropped when a redirect leaves the request's origin (scheme,
/// host and port).
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// Methods an extension may not use (tunnels and echoes).
const FORBIDDEN_METHODS: &[&str] = &["CONNECT", "TRACE", "TRACK"];

/// Most header pairs one request may carry.
pub const MAX_REQUEST_HEADERS: usize = 100;

/// Whether `b` is an HTTP token character (RFC 9110 `tchar`).
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks what an extension asked for before any provider sees it: the
/// method is a token and not `CONNECT`/`TRACE`/`TRACK`; at most
/// [`MAX_REQUEST_HEADERS`] headers; every name a token and not one of
/// [`FORBIDDEN_HEADERS`] or `Proxy-*`; every value visible ASCII, space and
/// tab only (no CR, LF, NUL or other controls, and no bytes above 0x7e,
/// which some servers split lines on). A refusal is `host_error` naming the
/// header; values are never echoed (they may be secrets).
pub fn validate_request(request: &HttpRequest) -> Result<()> {
    let bad = |why: String| MorphError::host_error(format!("op `http.fetch`: {why}"));
    let method = &request.method;
    if method.is_empty() || method.len() > 32 || !method.bytes().all(tchar) {
        return Err(bad(format!("method {method:?} is not an HTTP method")));
    }
    if FORBIDDEN_METHODS
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
    {
        return Err(bad(format!(
            "method `{method}` is not allowed (CONNECT, TRACE and TRACK are refused)"
        )));
    }
    if request.headers.len() > MAX_REQUEST_HEADERS {
        return Err(bad(format!(
            "{} headers, more than {MAX_REQUEST_HEADERS}",
            request.headers.len()
        )));
    }
    for (name, value) in &request.headers {
        if name.is_empty() || name.len() > 256 || !name.bytes().all(tchar) {
            return Err(bad(format!(
                "header name {name:?} is not a valid HTTP field name"
            )));
        }
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(bad(format!(
                "header `{name}` is set by the host; an extension may not send it \
                 (refused: {}, proxy-*)",
                FORBIDDEN_HEADERS.join(", ")
            )));
        }
        if let Some(b) = value
            .bytes()
            .find(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
        {
            return Err(bad(format!(
                "header `{name}`: the value contains byte 0x{b:02x} (only visible ASCII, \
                 space and tab are allowed)"
            )));
        }
    }
    Ok(())
}

/// The error for a response body above `max` bytes: `quota_exceeded`
/// (it ends the execution, like every limit).
pub fn response_too_large(url: &str, max: u64) -> MorphError {
    MorphError::quota_exceeded(format!(
        "op `http.fetch`: the response body from {url} is larger than \
         max_http_response_bytes = {max}"
    ))
}

/// Parses an `http.fetch` URL with the URI parser the HTTP client uses
/// (`http::Uri`), so the host checked here is the host connected to:
/// absolute `http` or `https`, a host, no user info.
pub fn parse_url(url: &str) -> Result<http::Uri> {
    let bad = |why: &str| MorphError::host_error(format!("op `http.fetch`: url {url:?}: {why}"));
    if let Some(b) = url.bytes().find(|b| !(0x21..0x7f).contains(b)) {
        return Err(bad(&format!(
            "contains byte 0x{b:02x} (a URL is visible ASCII; percent-encode the rest)"
        )));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must be absolute http or https"));
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(bad(
            "must not carry user info (put credentials in a header)",
        ));
    }
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    Ok(uri)
}

/// The port a request to `uri` goes to: explicit, or the scheme's default.
pub fn effective_port(uri: &http::Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        })
}

/// Checks a URL's host and port against the allow-list (providers check
/// the resolved addresses later); returns the parsed URI.
pub fn check_url(url: &str, allowed_hosts: &[String]) -> Result<http::Uri> {
    let parsed = parse_url(url)?;
    let host = parsed.host().unwrap_or_default();
    let port = effective_port(&parsed);
    if !host_allowed(host, port, allowed_hosts) {
        return Err(MorphError::permission_denied(format!(
            "op `http.fetch`: host `{host}` (port {port}) is not in the extension's allowed_hosts"
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn patterns(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_patterns_match_exactly_or_by_subdomain() {
        let p = patterns(&["api.example.com", "*.example.org"]);
        assert!(host_allowed("API.example.com", 443, &p));
        assert!(host_allowed("api.example.com.", 443, &p));
        assert!(host_allowed("a.b.example.org", 80, &p));
        assert!(!host_allowed("example.org", 80, &p));
        assert!(!host_allowed("evil-example.org", 80, &p));
        assert!(!host_allowed("api.example.com.evil.net", 80, &p));
    }

    #[test]
    fn host_patterns_with_a_port_match_that_port_or_the_schemes_default() {
        let p = patterns(&[
            "127.0.0.1:8080",
            "api.example.com:443",
            "[::1]:80",
            "*.example.org:8443",
        ]);
        assert!(check_url("http://127.0.0.1:8080/x", &p).is_ok());
        assert!(check_url("http://127.0.0.1:8081/x", &p).is_err());
        assert!(check_url("http://127.0.0.1/x", &p).is_err());
        assert!(check_url("https://api.example.com/", &p).is_ok());
        assert!(check_url("https://api.example.com:443/", &p).is_ok());
        assert!(check_url("http://api.example.com/", &p).is_err());
        assert!(check_url("http://[::1]/", &p).is_ok());
        assert!(check_url("http://[0:0::1]:80/", &p).is_ok());
        assert!(check_url("http://[::1]:81/", &p).is_err());
        assert!(check_url("https://a.example.org:8443/", &p).is_ok());
        assert!(check_url("https://a.example.org/", &p).is_err());
        let e = check_url("http://127.0.0.1:8081/", &p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.message().contains("port 8081"), "{e}");
        // No port: any port.
        let any = patterns(&["127.0.0.1", "::1"]);
        assert!(check_url("http://127.0.0.1:1/", &any).is_ok());
        assert!(check_url("http://[::1]:9/", &any).is_ok());
    }

    #[test]
    fn wildcards_never_match_ip_addresses_or_numeric_names() {
        assert!(HostPattern::parse("*.0.0.1").is_err());
        assert!(HostPattern::parse("*.1").is_err());
        assert!(HostPattern::parse("127.1").is_err());
        let p = patterns(&["127.0.0.1"]);
        // Spellings a resolver reads as 127.0.0.1 are not that pattern.
        for url in ["http://127.1/", "http://2130706433/", "http://0x7f.0.0.1/"] {
            assert!(check_url(url, &p).is_err(), "{url}");
        }
    }

    #[test]
    fn host_patterns_parse_canonically_and_refuse_junk() {
        let canonical = |t: &str| HostPattern::parse(t).map(|p| p.to_string());
        assert_eq!(canonical("API.Example.com.").unwrap(), "api.example.com");
        assert_eq!(canonical("::1").unwrap(), "[::1]");
        assert_eq!(canonical("[0::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(canonical("*.Example.org:1").unwrap(), "*.example.org:1");
        for bad in [
            "",
            "a:b:c",
            "host:0",
            "host:99999",
            "host:",
            "host:+1",
            "*.",
            "*",
            "a.*.b",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[nope]",
            "a..b",
            "-a.com",
            "a b",
            "a/b",
            "a@b",
            "::1:8080:x:y:z:w:v:u",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HostPattern::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "198.19.255.255",
            "192.88.99.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::7f00:1",
            "::ffff:0:a00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "ff02::1",
            "4000::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.3.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn non_public_addresses_need_the_private_network_grant() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let e = address_allowed("meta.example", ip("169.254.169.254"), false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.message().contains("link-local"), "{e}");
        assert!(address_allowed("x", ip("10.0.0.1"), true).is_ok());
        assert!(address_allowed("x", ip("::ffff:127.0.0.1"), true).is_ok());
        assert!(address_allowed("x", ip("8.8.8.8"), false).is_ok());
        for never in [
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "::ffff:0.0.0.0",
        ] {
            assert!(address_allowed("x", ip(never), true).is_err(), "{never}");
        }
    }

    #[test]
    fn urls_are_absolute_http_without_user_info() {
        let hosts = patterns(&["api.example.com"]);
        assert!(check_url("https://api.example.com/x?y=1", &hosts).is_ok());
        for bad in [
            "ftp://api.example.com/",
            "/relative",
            "https://user:pw@api.example.com/",
            "http://",
            "http://api.example.com/a\r\nX-Injected: 1",
            "http://api.example.com/\u{85}",
        ] {
            assert!(check_url(bad, &hosts).is_err(), "{bad}");
        }
        let e = check_url("https://evil.example.com/", &hosts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            url: "http://api.example.com/".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: None,
        }
    }

    #[test]
    fn crafted_headers_are_refused_naming_the_header() {
        for (name, value) in [
            ("X-A", "b\r\nX-Injected: 1"),
            ("X-A", "b\nX-Injected: 1"),
            ("X-A", "b\u{85}X-Injected: 1"),
            ("X-A", "b\u{2028}X-Injected: 1"),
            ("X-A", "nul\0"),
        ] {
            let e = validate_request(&request("GET", &[(name, value)])).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::HostError);
            assert!(e.message().contains("`X-A`"), "{e}");
            assert!(
                !e.message().contains("Injected"),
                "values are not echoed: {e}"
            );
        }
        for name in [
            "Host",
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Upgrade",
            "HTTP2-Settings",
            "Expect",
            "Proxy-Authorization",
            "Proxy-Connection",
        ] {
            let e = validate_request(&request("POST", &[(name, "x")])).unwrap_err();
            assert!(e.message().contains(&format!("`{name}`")), "{e}");
        }
        let e = validate_request(&request("GET", &[("X-A\r\nX-B", "1")])).unwrap_err();
        assert!(e.message().contains("X-A\\r\\nX-B"), "{e}");
        for method in ["CONNECT", "trace", "GET /x HTTP/1.1\r\n", ""] {
            assert!(
                validate_request(&request(method, &[])).is_err(),
                "{method:?}"
            );
        }
        let many: Vec<(&str, &str)> = (0..=MAX_REQUEST_HEADERS).map(|_| ("X-A", "b")).collect();
        assert!(validate_request(&request("GET", &many)).is_err());
        validate_request(&request(
            "PATCH",
            &[
                ("Authorization", "Bearer x"),
                ("Cookie", "a=b"),
                ("Content-Type", "application/json"),
                ("User-Agent", "ext/1.0"),
                ("X-Tab", "a\tb ~"),
            ],
        ))
        .unwrap();
    }

    /// A provider that records what it was given and answers `body`.
    struct Recording {
        seen: std::sync::Mutex<Vec<HttpLimits>>,
        body: Vec<u8>,
    }

    impl HttpProvider for Recording {
        fn fetch(&self, _: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse> {
            self.seen.lock().unwrap().push(limits.clone());
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: self.body.clone(),
            })
        }
    }

    #[test]
    fn the_host_passes_the_real_limits_and_holds_the_cap_for_any_provider() {
        use crate::host::{CallState, CapabilityHost, ExtensionScope};
        use crate::limits::{LimitEnforcement, ResourceLimits};
        use crate::permission::Permission;
        use crate::policy::EffectivePolicy;
        use std::sync::Arc;

        let provider = Arc::new(Recording {
            seen: Default::default(),
            body: vec![b'x'; 10],
        });
        let host = CapabilityHost::builder().http(provider.clone()).build();
        let scope = |max: u64, private_network: bool| ExtensionScope {
            extension_id: "ext.a".into(),
            policy: EffectivePolicy {
                permissions: [Permission::HttpRead].into_iter().collect(),
                allowed_hosts: vec!["api.example.com".into()],
                limits: ResourceLimits {
                    max_http_response_bytes: max,
                    ..ResourceLimits::default()
                },
                enforcement: LimitEnforcement::Strict,
                fuel: None,
                private_network,
            },
            events: vec![],
            unenforced: vec![],
        };
        let fetch = |st: &mut CallState, headers: serde_json::Value| {
            host.call(
                st,
                "http.fetch",
                serde_json::json!({"method": "GET", "url": "https://api.example.com/", "headers": headers}),
            )
        };
        let mut st = CallState::new(Arc::new(scope(10, true)), "a", "r");
        fetch(&mut st, serde_json::json!([])).unwrap();
        let seen = provider.seen.lock().unwrap().clone();
        assert_eq!(seen[0].max_response_bytes, 10);
        assert!(seen[0].private_network);

        // A provider that ignores the cap: the host refuses the body.
        let mut st = CallState::new(Arc::new(scope(9, false)), "a", "r");
        let e = fetch(&mut st, serde_json::json!([])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
        assert!(e.message().contains("max_http_response_bytes = 9"), "{e}");
        assert!(!provider.seen.lock().unwrap()[1].private_network);

        // A crafted header never reaches the provider.
        let e = fetch(&mut st, serde_json::json!([["X-A", "b\r\nX-Injected: 1"]])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HostError);
        assert!(e.message().contains("`X-A`"), "{e}");
        assert_eq!(provider.seen.lock().unwrap().len(), 2);
    }
}
