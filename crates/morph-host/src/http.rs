//! The embedded HTTP client: ureq with rustls. Only to allowed hosts,
//! checked on the parsed URL, on every redirect hop and on every resolved
//! address (loopback, private and link-local addresses only when the host
//! is listed explicitly), and the connection goes to the very addresses
//! that were checked, so DNS rebinding cannot slip past. A `Host` header
//! from the guest is dropped.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use morph_core::host::{
    HttpLimits, HttpProvider, HttpRequest, HttpResponse, check_url, host_allowed, is_public,
    listed_exactly,
};
use morph_core::{MorphError, Result};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

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

impl HttpProvider for UreqHttp {
    fn fetch(&self, request: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse> {
        let timeout = self.timeout.min(limits.timeout);
        let max_bytes = self.max_response_bytes.min(limits.max_response_bytes);
        let mut url = parse_checked(&request.url, &limits.allowed_hosts)?;
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
                url = parse_checked(next.as_str(), &limits.allowed_hosts)?;
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

/// Checks `url` with core's rules, then parses it for joining redirects.
fn parse_checked(url: &str, allowed_hosts: &[String]) -> Result<url::Url> {
    check_url(url, allowed_hosts)?;
    url::Url::parse(url)
        .map_err(|e| MorphError::host_error(format!("op `http.fetch`: url `{url}`: {e}")))
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
        assert_eq!(e.kind(), morph_core::ErrorKind::PermissionDenied);
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
        assert_eq!(e.kind(), morph_core::ErrorKind::PermissionDenied, "{e}");
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
        assert_eq!(e.kind(), morph_core::ErrorKind::PermissionDenied);
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
        assert_eq!(e.kind(), morph_core::ErrorKind::Timeout, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    }
}
