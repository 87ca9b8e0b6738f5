//! The HTTP capability: what an extension's request and response are, the
//! provider trait, and the rules every provider shares: host patterns
//! (`allowed_hosts`) and which addresses are public.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::{MorphError, Result};

/// A request from an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header pairs (a `Host` header is ignored).
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
    /// Host patterns: exact names or IPs, or `*.example.com` (subdomains).
    pub allowed_hosts: Vec<String>,
    /// Whole-request timeout (already capped to what is left of the
    /// execution's `max_execution_ms`).
    pub timeout: Duration,
    /// Largest response body in bytes.
    pub max_response_bytes: u64,
}

/// Performs HTTP requests for extensions.
pub trait HttpProvider: Send + Sync {
    /// Performs `request` within `limits`.
    fn fetch(&self, request: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse>;
}

/// Whether `host` matches one of `patterns` (case-insensitive; `*.d`
/// matches any subdomain of `d`, not `d` itself).
pub fn host_allowed(host: &str, patterns: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => host == p.trim_start_matches('[').trim_end_matches(']'),
        }
    })
}

/// Whether `host` is listed exactly (not through a wildcard): only then
/// may it reach loopback, private or link-local addresses.
pub fn listed_exactly(host: &str, patterns: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        !p.starts_with("*.")
            && host
                == p.to_ascii_lowercase()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
    })
}

/// Whether `ip` is an ordinary public address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Parses an `http.fetch` URL with the URI parser the HTTP client uses
/// (`http::Uri`), so the host checked here is the host connected to:
/// absolute `http` or `https`, a host, no user info.
pub fn parse_url(url: &str) -> Result<http::Uri> {
    let bad = |why: &str| MorphError::host_error(format!("op `http.fetch`: url `{url}`: {why}"));
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

/// Checks a URL's host against the allow-list (providers check the
/// resolved addresses later); returns the parsed URI.
pub fn check_url(url: &str, allowed_hosts: &[String]) -> Result<http::Uri> {
    let parsed = parse_url(url)?;
    let host = parsed.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !host_allowed(bare, allowed_hosts) {
        return Err(MorphError::permission_denied(format!(
            "op `http.fetch`: host `{bare}` is not in the extension's allowed_hosts"
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_patterns_match_exactly_or_by_subdomain() {
        let p = patterns(&["api.example.com", "*.example.org"]);
        assert!(host_allowed("API.example.com", &p));
        assert!(host_allowed("a.b.example.org", &p));
        assert!(!host_allowed("example.org", &p));
        assert!(!host_allowed("evil-example.org", &p));
        assert!(!host_allowed("api.example.com.evil.net", &p));
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
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
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
        ] {
            assert!(check_url(bad, &hosts).is_err(), "{bad}");
        }
        let e = check_url("https://evil.example.com/", &hosts).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::PermissionDenied);
    }
}
