//! HTTP for extensions: only to allowed hosts, checked on the parsed URL,
//! on every redirect hop and on every resolved address (loopback, private
//! and link-local addresses only when the host is listed explicitly, and
//! the connection goes to the very addresses that were checked, so DNS
//! rebinding cannot slip past). A `Host` header from the guest is dropped.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

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
fn listed_exactly(host: &str, patterns: &[String]) -> bool {
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

/// ureq keeps at most this many resolved addresses.
const MAX_ADDRS: usize = 16;

/// Resolves, then keeps only addresses the extension may reach; the
/// connector then uses exactly these.
#[derive(Debug)]
struct CheckedResolver {
    allowed_hosts: Vec<String>,
    denied: Arc<Mutex<Option<String>>>,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let deny = |why: String| {
            *self.denied.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
            ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, why))
        };
        if !host_allowed(host, &self.allowed_hosts) {
            return Err(deny(format!("host `{host}` is not in allowed_hosts")));
        }
        let exact = listed_exactly(host, &self.allowed_hosts);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|_| ureq::Error::HostNotFound)?
            .collect();
        let mut out = self.empty();
        for addr in addrs {
            if !exact && !is_public(addr.ip()) {
                return Err(deny(format!(
                    "host `{host}` resolves to {}, a non-public address; list the host exactly in allowed_hosts to reach it",
                    addr.ip()
                )));
            }
            if out.len() < MAX_ADDRS {
                out.push(addr);
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

/// The embedded default HTTP client (ureq with rustls).
#[derive(Debug, Clone)]
pub struct UreqHttp {
    /// Longest a request may take. Default 30 s (always also capped by
    /// the execution's remaining time).
    pub timeout: Duration,
    /// Largest response body. Default 10 MiB.
    pub max_response_bytes: u64,
    /// Redirects followed, each hop checked. Default 5.
    pub max_redirects: u32,
}

impl Default for UreqHttp {
    fn default() -> Self {
        UreqHttp {
            timeout: Duration::from_secs(30),
            max_response_bytes: 10 << 20,
            max_redirects: 5,
        }
    }
}

fn parse_url(url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url)
        .map_err(|e| MorphError::host_error(format!("op `http.fetch`: url `{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(MorphError::host_error(format!(
            "op `http.fetch`: url `{url}` must be absolute http or https"
        )));
    }
    Ok(parsed)
}

/// Checks a URL's host against the allow-list (the resolver checks the
/// addresses later).
pub fn check_url(url: &str, allowed_hosts: &[String]) -> Result<url::Url> {
    let parsed = parse_url(url)?;
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !host_allowed(bare, allowed_hosts) {
        return Err(MorphError::permission_denied(format!(
            "op `http.fetch`: host `{bare}` is not in the extension's allowed_hosts"
        )));
    }
    Ok(parsed)
}

impl HttpProvider for UreqHttp {
    fn fetch(&self, request: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse> {
        let timeout = self.timeout.min(limits.timeout);
        let max_bytes = self.max_response_bytes.min(limits.max_response_bytes);
        let mut url = check_url(&request.url, &limits.allowed_hosts)?;
        let mut method = request.method.to_ascii_uppercase();
        let mut body = request.body.clone();
        for _hop in 0..=self.max_redirects {
            let denied = Arc::new(Mutex::new(None));
            let config = ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build();
            let agent = ureq::Agent::with_parts(
                config,
                DefaultConnector::new(),
                CheckedResolver {
                    allowed_hosts: limits.allowed_hosts.clone(),
                    denied: denied.clone(),
                },
            );
            let mut builder = ureq::http::Request::builder()
                .method(method.as_str())
                .uri(url.as_str());
            for (k, v) in &request.headers {
                if !k.eq_ignore_ascii_case("host") {
                    builder = builder.header(k.as_str(), v.as_str());
                }
            }
            let built = builder
                .body(body.clone().unwrap_or_default())
                .map_err(|e| MorphError::host_error(format!("op `http.fetch`: {e}")))?;
            let response = agent.run(built).map_err(|e| {
                match denied.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(why) => MorphError::permission_denied(format!("op `http.fetch`: {why}")),
                    None => match e {
                        ureq::Error::Timeout(_) => MorphError::timeout(format!(
                            "op `http.fetch`: {} did not answer within {} ms",
                            url,
                            timeout.as_millis()
                        )),
                        other => MorphError::host_error(format!("op `http.fetch`: {url}: {other}")),
                    },
                }
            })?;
            let status = response.status().as_u16();
            if (300..400).contains(&status)
                && let Some(location) = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
            {
                let next = url.join(location).map_err(|e| {
                    MorphError::host_error(format!(
                        "op `http.fetch`: bad redirect `{location}`: {e}"
                    ))
                })?;
                url = check_url(next.as_str(), &limits.allowed_hosts)?;
                if matches!(status, 301..=303) && method != "HEAD" {
                    method = "GET".into();
                    body = None;
                }
                continue;
            }
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let bytes = response
                .into_body()
                .with_config()
                .limit(max_bytes)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => MorphError::host_error(format!(
                        "op `http.fetch`: response body larger than {max_bytes} bytes"
                    )),
                    other => {
                        MorphError::host_error(format!("op `http.fetch`: reading body: {other}"))
                    }
                })?;
            return Ok(HttpResponse {
                status,
                headers,
                body: bytes,
            });
        }
        Err(MorphError::host_error(format!(
            "op `http.fetch`: more than {} redirects",
            self.max_redirects
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// A one-response-per-connection server on `ip`, counting requests.
    fn server(ip: &str, response: String) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(8) {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        (port, hits)
    }

    fn limits(hosts: &[&str]) -> HttpLimits {
        HttpLimits {
            allowed_hosts: patterns(hosts),
            timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
        }
    }

    fn get(url: String) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url,
            headers: vec![("Host".into(), "evil.example".into())],
            body: None,
        }
    }

    #[test]
    fn fetches_from_an_explicitly_listed_loopback_host() {
        let (port, hits) = server(
            "127.0.0.1",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".into(),
        );
        let r = UreqHttp::default()
            .fetch(
                &get(format!("http://127.0.0.1:{port}/x")),
                &limits(&["127.0.0.1"]),
            )
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn unlisted_hosts_and_redirects_out_of_the_list_never_reach_a_server() {
        let (port, hits) = server(
            "127.0.0.1",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into(),
        );
        let e = UreqHttp::default()
            .fetch(
                &get(format!("http://127.0.0.1:{port}/")),
                &limits(&["api.example.com"]),
            )
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::PermissionDenied);
        let (target, target_hits) = server(
            "127.0.0.2",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into(),
        );
        let (port2, first_hits) = server(
            "127.0.0.1",
            format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{target}/\r\ncontent-length: 0\r\n\r\n"
            ),
        );
        let e = UreqHttp::default()
            .fetch(
                &get(format!("http://127.0.0.1:{port2}/")),
                &limits(&["127.0.0.1"]),
            )
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::PermissionDenied, "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!(first_hits.load(Ordering::SeqCst), 1);
        assert_eq!(target_hits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wildcard_does_not_open_loopback() {
        // `localhost` is allowed only through a wildcard-free listing.
        let (port, hits) = server(
            "127.0.0.1",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into(),
        );
        let e = UreqHttp::default()
            .fetch(
                &get(format!("http://localhost:{port}/")),
                &limits(&["*.localhost", "localhost.*"]),
            )
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::PermissionDenied);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_body_cap_and_the_timeout_hold() {
        let big = "x".repeat(4096);
        let (port, _) = server(
            "127.0.0.1",
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{big}",
                big.len()
            ),
        );
        let small = UreqHttp {
            max_response_bytes: 1024,
            ..UreqHttp::default()
        };
        let e = small
            .fetch(
                &get(format!("http://127.0.0.1:{port}/")),
                &limits(&["127.0.0.1"]),
            )
            .unwrap_err();
        assert!(e.message().contains("larger than 1024"), "{e}");

        // A server that accepts and never answers: the request must end at
        // the (execution-capped) timeout, not hang.
        let silent = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let mut short = limits(&["127.0.0.1"]);
        short.timeout = Duration::from_millis(300);
        let e = UreqHttp::default()
            .fetch(&get(format!("http://127.0.0.1:{port}/")), &short)
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Timeout, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    }
}
