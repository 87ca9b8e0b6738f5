//! The embedded HTTP client: ureq with rustls. Only to allowed hosts
//! (host and port, [`HostPattern`](morph_core::host::HostPattern)), checked
//! on the parsed URL, on every redirect hop and on every resolved address:
//! loopback, private, link-local and the other non-public addresses only
//! with the host's private-network grant
//! ([`address_allowed`](morph_core::host::address_allowed)), and the
//! connection goes to the very addresses that were checked, so DNS
//! rebinding cannot slip past. Never through a proxy from the environment
//! (`HTTP(S)_PROXY`, `ALL_PROXY` are ignored). Redirects (301, 302, 303,
//! 307, 308) are followed here, not by ureq: an https to http downgrade is
//! refused and `Authorization`, `Cookie` and `Proxy-Authorization` are
//! dropped once a hop leaves the origin. One time budget covers name
//! resolution, every hop and the body; running out of it is `timeout`.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use morph_core::host::{
    CREDENTIAL_HEADERS, HttpLimits, HttpProvider, HttpRequest, HttpResponse, address_allowed,
    check_url, effective_port, host_allowed, response_too_large, validate_request,
};
use morph_core::{MorphError, Result};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Headers dropped with the body when a redirect turns a request into a
/// GET.
const BODY_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
];

/// Why the resolver refused a host, kept for the error the guest gets.
type Denied = Arc<Mutex<Option<MorphError>>>;

/// Checks the host against the allow-list, resolves it within the time
/// left (ureq's resolver, on a thread bounded by the timeout), then checks
/// every address; the connector dials exactly the addresses returned.
#[derive(Debug)]
struct CheckedResolver {
    allowed_hosts: Vec<String>,
    private_network: bool,
    denied: Denied,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let deny = |e: MorphError| {
            let why = e.message().to_string();
            *self.denied.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, why))
        };
        let host = uri.host().unwrap_or_default();
        let port = effective_port(uri);
        if !host_allowed(host, port, &self.allowed_hosts) {
            return Err(deny(MorphError::permission_denied(format!(
                "op `http.fetch`: host `{host}` (port {port}) is not in allowed_hosts"
            ))));
        }
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        // One refused address refuses the name: fail closed.
        for addr in addrs.iter() {
            address_allowed(host, addr.ip(), self.private_network).map_err(deny)?;
        }
        Ok(addrs)
    }
}

/// The embedded default HTTP client (ureq with rustls).
#[derive(Debug, Clone)]
pub struct UreqHttp {
    /// Longest one `http.fetch` may take, all hops and the body together.
    /// Default 30 s (always also capped by the execution's remaining time).
    pub timeout: Duration,
    /// The provider's own ceiling on a response body (the execution's
    /// `max_http_response_bytes` applies too, the smaller wins). Default
    /// 10 MiB.
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

impl UreqHttp {
    /// An agent for one hop: no proxy, no redirects of its own, statuses
    /// are answers, `remaining` for everything from DNS to the body.
    fn agent(&self, limits: &HttpLimits, remaining: Duration, denied: Denied) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(remaining))
            .max_response_header_size(64 << 10)
            .build();
        ureq::Agent::with_parts(
            config,
            DefaultConnector::new(),
            CheckedResolver {
                allowed_hosts: limits.allowed_hosts.clone(),
                private_network: limits.private_network,
                denied,
            },
        )
    }
}

impl HttpProvider for UreqHttp {
    fn fetch(&self, request: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse> {
        validate_request(request)?;
        let budget = self.timeout.min(limits.timeout);
        let started = Instant::now();
        let max_bytes = self.max_response_bytes.min(limits.max_response_bytes);
        let mut url = parse_checked(&request.url, &limits.allowed_hosts)?;
        let mut method = request.method.to_ascii_uppercase();
        let mut headers = request.headers.clone();
        let mut body = request.body.clone();
        for _hop in 0..=self.max_redirects {
            let remaining = budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(timed_out(&url, budget));
            }
            let denied: Denied = Arc::new(Mutex::new(None));
            let agent = self.agent(limits, remaining, denied.clone());
            let mut builder = ureq::http::Request::builder()
                .method(method.as_str())
                .uri(url.as_str());
            for (k, v) in &headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let built = builder
                .body(body.clone().unwrap_or_default())
                .map_err(|e| MorphError::host_error(format!("op `http.fetch`: {e}")))?;
            let response = agent
                .run(built)
                .map_err(|e| fetch_error(e, &url, budget, &denied))?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308)
                && let Some(location) = response.headers().get(ureq::http::header::LOCATION)
            {
                let location = location.to_str().map_err(|_| {
                    MorphError::host_error(format!(
                        "op `http.fetch`: {url} redirected to a Location that is not visible ASCII"
                    ))
                })?;
                let (next, cross_origin) = redirect(&url, location, &limits.allowed_hosts)?;
                if cross_origin {
                    // Once dropped they stay dropped, even back on the origin.
                    headers.retain(|(k, _)| !is_one_of(k, CREDENTIAL_HEADERS));
                }
                let to_get = (status == 303 && method != "HEAD")
                    || (matches!(status, 301 | 302) && method == "POST");
                if to_get {
                    method = "GET".into();
                    body = None;
                    headers.retain(|(k, _)| !is_one_of(k, BODY_HEADERS));
                }
                url = next;
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
                    ureq::Error::BodyExceedsLimit(_) => response_too_large(url.as_str(), max_bytes),
                    other => fetch_error(other, &url, budget, &denied),
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

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// The next hop of a redirect from `from` to `location`, checked before
/// anything connects: it must parse, carry no user info, match the
/// allow-list and not downgrade https to http. Also says whether it leaves
/// the origin (scheme, host, port).
fn redirect(from: &url::Url, location: &str, allowed_hosts: &[String]) -> Result<(url::Url, bool)> {
    let mut next = from.join(location).map_err(|e| {
        MorphError::host_error(format!(
            "op `http.fetch`: {from} redirected to {location:?}, which is not a URL: {e}"
        ))
    })?;
    next.set_fragment(None);
    if !next.username().is_empty() || next.password().is_some() {
        return Err(MorphError::host_error(format!(
            "op `http.fetch`: {from} redirected to a URL with user info"
        )));
    }
    let next = parse_checked(next.as_str(), allowed_hosts)?;
    if from.scheme() == "https" && next.scheme() != "https" {
        return Err(MorphError::permission_denied(format!(
            "op `http.fetch`: {from} redirected to {next}, which would downgrade https to http"
        )));
    }
    let cross_origin = next.origin() != from.origin();
    Ok((next, cross_origin))
}

/// Checks `url` with core's rules, then parses it for joining redirects,
/// and checks the URL parser's canonical form too: that is what is sent.
fn parse_checked(url: &str, allowed_hosts: &[String]) -> Result<url::Url> {
    check_url(url, allowed_hosts)?;
    let mut parsed = url::Url::parse(url)
        .map_err(|e| MorphError::host_error(format!("op `http.fetch`: url {url:?}: {e}")))?;
    parsed.set_fragment(None);
    check_url(parsed.as_str(), allowed_hosts)?;
    Ok(parsed)
}

/// The guest's error for a failed hop or body read: the resolver's
/// refusal, `timeout` for every timeout (resolve, connect, send, receive,
/// body), `host_error` for the rest.
fn fetch_error(e: ureq::Error, url: &url::Url, budget: Duration, denied: &Denied) -> MorphError {
    if let Some(refusal) = denied.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return refusal;
    }
    match e {
        ureq::Error::Timeout(_) => timed_out(url, budget),
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::TimedOut => timed_out(url, budget),
        other => MorphError::host_error(format!("op `http.fetch`: {url}: {other}")),
    }
}

fn timed_out(url: &url::Url, budget: Duration) -> MorphError {
    MorphError::timeout(format!(
        "op `http.fetch`: {url} did not answer within {} ms",
        budget.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph_core::ErrorKind;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn patterns(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    /// What a test server does with each connection.
    #[derive(Clone)]
    enum Answer {
        /// Sends this, then closes.
        Send(String),
        /// Sends this after a pause.
        After(Duration, String),
        /// Sends this, then holds the connection open without a word.
        SendAndStall(String),
    }

    /// A server on `ip` answering every connection with `answer`, keeping
    /// each request head it received (lowercase).
    struct Server {
        port: u16,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl Server {
        fn start(ip: &str, answer: Answer) -> Server {
            let listener = TcpListener::bind((ip, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().take(16) {
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
                    let answer = answer.clone();
                    std::thread::spawn(move || match answer {
                        Answer::Send(text) => {
                            let _ = stream.write_all(text.as_bytes());
                        }
                        Answer::After(pause, text) => {
                            std::thread::sleep(pause);
                            let _ = stream.write_all(text.as_bytes());
                        }
                        Answer::SendAndStall(text) => {
                            let _ = stream.write_all(text.as_bytes());
                            std::thread::sleep(Duration::from_secs(10));
                        }
                    });
                }
            });
            Server { port, requests }
        }

        fn ok(ip: &str, body: &str) -> Server {
            Server::start(
                ip,
                Answer::Send(format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )),
            )
        }

        fn redirect(ip: &str, status: u16, location: &str) -> Server {
            Server::start(
                ip,
                Answer::Send(format!(
                    "HTTP/1.1 {status} X\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )),
            )
        }

        fn hits(&self) -> usize {
            self.requests.lock().unwrap().len()
        }

        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// Limits for loopback tests: the host granted private networks.
    fn limits(hosts: &[&str]) -> HttpLimits {
        HttpLimits {
            allowed_hosts: patterns(hosts),
            private_network: true,
            timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
        }
    }

    fn get(url: String) -> HttpRequest {
        with_headers(url, &[("X-Request", "1")])
    }

    fn with_headers(url: String, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: None,
        }
    }

    #[test]
    fn fetches_from_loopback_with_the_private_network_grant() {
        let server = Server::ok("127.0.0.1", "hello");
        let r = UreqHttp::default()
            .fetch(
                &get(format!("http://127.0.0.1:{}/x", server.port)),
                &limits(&["127.0.0.1"]),
            )
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(server.hits(), 1);
        // A name resolving to loopback, with a port pattern.
        let r = UreqHttp::default()
            .fetch(
                &get(format!("http://localhost:{}/x", server.port)),
                &limits(&[&format!("localhost:{}", server.port)]),
            )
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn loopback_needs_the_hosts_private_network_grant_even_when_listed_exactly() {
        let server = Server::ok("127.0.0.1", "secret");
        let no_grant = HttpLimits {
            private_network: false,
            ..limits(&["127.0.0.1", "localhost"])
        };
        for host in ["127.0.0.1", "localhost"] {
            let e = UreqHttp::default()
                .fetch(&get(format!("http://{host}:{}/", server.port)), &no_grant)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{host}: {e}");
            assert!(e.message().contains("private networks"), "{e}");
        }
        assert_eq!(server.hits(), 0);
    }

    #[test]
    fn a_wildcard_does_not_open_loopback() {
        let server = Server::ok("127.0.0.1", "");
        let e = UreqHttp::default()
            .fetch(
                &get(format!("http://localhost:{}/", server.port)),
                &HttpLimits {
                    private_network: false,
                    ..limits(&["*.localhost", "localhost.*"])
                },
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(server.hits(), 0);
    }

    #[test]
    fn unlisted_hosts_and_redirects_out_of_the_list_never_reach_a_server() {
        let server = Server::ok("127.0.0.1", "");
        let e = UreqHttp::default()
            .fetch(
                &get(format!("http://127.0.0.1:{}/", server.port)),
                &limits(&["api.example.com"]),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(server.hits(), 0);
        let by_ip = Server::ok("127.0.0.2", "");
        let by_name = Server::ok("127.0.0.1", "");
        for (target, location) in [
            (&by_ip, format!("http://127.0.0.2:{}/", by_ip.port)),
            (&by_name, format!("http://localhost:{}/", by_name.port)),
            (&by_name, format!("//localhost:{}/", by_name.port)),
            (
                &by_name,
                format!(
                    "http://127.0.0.1:{}@localhost:{}/",
                    by_name.port, by_name.port
                ),
            ),
        ] {
            let first = Server::redirect("127.0.0.1", 302, &location);
            let e = UreqHttp::default()
                .fetch(
                    &get(format!("http://127.0.0.1:{}/", first.port)),
                    &limits(&[&format!("127.0.0.1:{}", first.port)]),
                )
                .unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::HostError),
                "{location}: {e}"
            );
            assert_eq!(first.hits(), 1, "{location}");
            assert_eq!(target.hits(), 0, "{location}");
        }
    }

    #[test]
    fn only_redirect_statuses_are_followed() {
        let target = Server::ok("127.0.0.1", "target");
        for status in [300, 304, 305, 306] {
            let first = Server::redirect(
                "127.0.0.1",
                status,
                &format!("http://127.0.0.1:{}/", target.port),
            );
            let r = UreqHttp::default()
                .fetch(
                    &get(format!("http://127.0.0.1:{}/", first.port)),
                    &limits(&["127.0.0.1"]),
                )
                .unwrap();
            assert_eq!(r.status, status);
        }
        assert_eq!(target.hits(), 0);
        for status in [301, 302, 303, 307, 308] {
            let first = Server::redirect(
                "127.0.0.1",
                status,
                &format!("http://127.0.0.1:{}/", target.port),
            );
            let r = UreqHttp::default()
                .fetch(
                    &get(format!("http://127.0.0.1:{}/", first.port)),
                    &limits(&["127.0.0.1"]),
                )
                .unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"target"[..]));
        }
        assert_eq!(target.hits(), 5);
    }

    #[test]
    fn credentials_are_dropped_when_a_redirect_leaves_the_origin() {
        let other = Server::ok("127.0.0.1", "");
        // Same host, another port: another origin.
        let first = Server::redirect(
            "127.0.0.1",
            302,
            &format!("http://127.0.0.1:{}/", other.port),
        );
        let headers = [
            ("Authorization", "Bearer s3cret"),
            ("Cookie", "session=s3cret"),
            ("X-Keep", "kept"),
        ];
        UreqHttp::default()
            .fetch(
                &with_headers(format!("http://127.0.0.1:{}/", first.port), &headers),
                &limits(&["127.0.0.1"]),
            )
            .unwrap();
        let sent = first.requests().join("");
        assert!(sent.contains("authorization: bearer s3cret") && sent.contains("cookie:"));
        let seen = other.requests().join("");
        assert!(seen.contains("x-keep: kept"), "{seen}");
        assert!(!seen.contains("s3cret"), "{seen}");
        assert!(
            !seen.contains("authorization") && !seen.contains("cookie"),
            "{seen}"
        );

        // On the same origin they stay.
        let same = Server::start(
            "127.0.0.1",
            Answer::Send(
                "HTTP/1.1 302 X\r\nlocation: /next\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .into(),
            ),
        );
        let e = UreqHttp {
            max_redirects: 1,
            ..UreqHttp::default()
        }
        .fetch(
            &with_headers(format!("http://127.0.0.1:{}/", same.port), &headers),
            &limits(&["127.0.0.1"]),
        )
        .unwrap_err();
        assert!(e.message().contains("more than 1 redirects"), "{e}");
        let seen = same.requests();
        assert_eq!(seen.len(), 2);
        assert!(seen[1].contains("get /next ") && seen[1].contains("authorization: bearer s3cret"));
    }

    #[test]
    fn redirects_never_downgrade_https_and_never_carry_user_info() {
        let allowed = patterns(&["api.example.com", "*.example.org"]);
        let from = url::Url::parse("https://api.example.com/a").unwrap();
        let e = redirect(&from, "http://api.example.com/b", &allowed).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.message().contains("downgrade"), "{e}");
        let (next, cross) = redirect(&from, "/b#frag", &allowed).unwrap();
        assert_eq!((next.as_str(), cross), ("https://api.example.com/b", false));
        let (_, cross) = redirect(&from, "https://x.example.org/", &allowed).unwrap();
        assert!(cross);
        let (_, cross) = redirect(&from, "https://api.example.com:8443/", &allowed).unwrap();
        assert!(cross, "another port is another origin");
        let plain = url::Url::parse("http://api.example.com/").unwrap();
        let (_, cross) = redirect(&plain, "https://api.example.com/", &allowed).unwrap();
        assert!(cross, "an upgrade is allowed, and is another origin");
        for bad in [
            "https://u:p@api.example.com/",
            "https://evil.example.com/",
            "ftp://api.example.com/",
        ] {
            assert!(redirect(&from, bad, &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn crafted_headers_never_reach_the_server() {
        let server = Server::ok("127.0.0.1", "");
        for (name, value) in [
            ("X-A", "b\r\nX-Injected: 1"),
            ("X-A", "b\u{85}X-Injected: 1"),
            ("Host", "evil.example"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "0"),
        ] {
            let e = UreqHttp::default()
                .fetch(
                    &with_headers(
                        format!("http://127.0.0.1:{}/", server.port),
                        &[(name, value)],
                    ),
                    &limits(&["127.0.0.1"]),
                )
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::HostError);
            assert!(e.message().contains(name), "{e}");
        }
        assert_eq!(server.hits(), 0);
    }

    #[test]
    fn the_body_cap_is_quota_exceeded() {
        let big = "x".repeat(4096);
        let server = Server::ok("127.0.0.1", &big);
        let url = format!("http://127.0.0.1:{}/", server.port);
        let small = HttpLimits {
            max_response_bytes: 1024,
            ..limits(&["127.0.0.1"])
        };
        let e = UreqHttp::default()
            .fetch(&get(url.clone()), &small)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
        assert!(
            e.message().contains("max_http_response_bytes = 1024"),
            "{e}"
        );
        // The provider's own ceiling applies too.
        let e = UreqHttp {
            max_response_bytes: 100,
            ..UreqHttp::default()
        }
        .fetch(&get(url.clone()), &limits(&["127.0.0.1"]))
        .unwrap_err();
        assert!(e.message().contains("= 100"), "{e}");
        let exact = HttpLimits {
            max_response_bytes: 4096,
            ..limits(&["127.0.0.1"])
        };
        assert_eq!(
            UreqHttp::default()
                .fetch(&get(url), &exact)
                .unwrap()
                .body
                .len(),
            4096
        );
    }

    #[test]
    fn a_silent_server_and_a_stalled_body_are_both_timeout() {
        let silent = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = silent.local_addr().unwrap().port();
        let short = HttpLimits {
            timeout: Duration::from_millis(300),
            ..limits(&["127.0.0.1"])
        };
        let started = Instant::now();
        let e = UreqHttp::default()
            .fetch(&get(format!("http://127.0.0.1:{port}/")), &short)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop(silent);

        let stalled = Server::start(
            "127.0.0.1",
            Answer::SendAndStall("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".into()),
        );
        let started = Instant::now();
        let e = UreqHttp::default()
            .fetch(&get(format!("http://127.0.0.1:{}/", stalled.port)), &short)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn one_time_budget_covers_every_redirect_hop() {
        // Each hop takes 200 ms and redirects to itself: with 500 ms for the
        // whole fetch, the third hop runs out of time.
        let slow = Server::start(
            "127.0.0.1",
            Answer::After(
                Duration::from_millis(200),
                "HTTP/1.1 302 X\r\nlocation: /again\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .into(),
            ),
        );
        let budget = HttpLimits {
            timeout: Duration::from_millis(500),
            ..limits(&["127.0.0.1"])
        };
        let started = Instant::now();
        let e = UreqHttp::default()
            .fetch(&get(format!("http://127.0.0.1:{}/", slow.port)), &budget)
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(slow.hits() <= 3, "{}", slow.hits());
    }

    /// Runs in a child process with `*_PROXY` set (see the next test).
    #[test]
    fn proxy_child() {
        let Ok(port) = std::env::var("MORPH_TEST_TARGET_PORT") else {
            return;
        };
        let r = UreqHttp::default()
            .fetch(
                &get(format!("http://127.0.0.1:{port}/")),
                &limits(&["127.0.0.1"]),
            )
            .unwrap();
        assert_eq!(r.status, 200);
    }

    #[test]
    fn no_proxy_is_taken_from_the_environment() {
        let target = Server::ok("127.0.0.1", "direct");
        let proxy = Server::ok("127.0.0.1", "proxied");
        let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "http::tests::proxy_child", "--nocapture"])
            .env("MORPH_TEST_TARGET_PORT", target.port.to_string())
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("HTTPS_PROXY", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!((target.hits(), proxy.hits()), (1, 0));
    }
}
