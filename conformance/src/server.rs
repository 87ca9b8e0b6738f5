//! A loopback HTTP server for cases that exercise `http.fetch`: answers
//! every request with one fixed response (or stalls), counts the
//! connections that reached it and keeps the headers of every request, so
//! a case can prove that a denied request never left the host and what a
//! server was sent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What the server answers (case file: `host.http_server`,
/// `host.http_server2`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSetup {
    /// Status code. Default 200.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Response body. Default empty.
    #[serde(default)]
    pub body: String,
    /// Extra response headers, e.g. `[[location, "{server2}/next"]]`
    /// (`{server2}` is the second server's base URL).
    #[serde(default)]
    pub headers: Vec<[String; 2]>,
    /// Never answer (`head`), or send the head and part of the body and
    /// then nothing more (`body`), until the case ends.
    #[serde(default)]
    pub stall: Option<Stall>,
}

/// How a stalling server stops answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stall {
    /// Reads the request, then says nothing.
    Head,
    /// Sends the head announcing 100 bytes more than `body`, then `body`,
    /// then nothing.
    Body,
}

fn ok_status() -> u16 {
    200
}

impl Default for ServerSetup {
    fn default() -> Self {
        ServerSetup {
            status: ok_status(),
            body: String::new(),
            headers: Vec::new(),
            stall: None,
        }
    }
}

/// The header pairs of one request (names lowercase).
pub type RequestHeaders = Vec<(String, String)>;

/// The longest a server lives (and a stalled connection is held).
const LIFETIME: Duration = Duration::from_secs(60);

/// A running server; stops when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its port.
    pub port: u16,
    hits: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<RequestHeaders>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Starts answering on 127.0.0.1 (an ephemeral port).
    pub fn start(setup: &ServerSetup) -> std::io::Result<TestServer> {
        TestServer::start_with(setup, &|text| text.to_string())
    }

    /// Like [`TestServer::start`]; `expand` fills placeholders in the
    /// response headers.
    pub fn start_with(
        setup: &ServerSetup,
        expand: &dyn Fn(&str) -> String,
    ) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let extra: String = setup
            .headers
            .iter()
            .map(|[k, v]| format!("{}: {}\r\n", expand(k), expand(v)))
            .collect();
        let announced = match setup.stall {
            Some(Stall::Body) => setup.body.len() + 100,
            _ => setup.body.len(),
        };
        let response = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\n{extra}content-length: {announced}\r\nconnection: close\r\n\r\n{}",
            setup.status, setup.body
        );
        let (hits, headers, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (counter, seen, stopping) = (hits.clone(), headers.clone(), stop.clone());
        let stall = setup.stall;
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stopping.load(Ordering::SeqCst) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let (seen, stopping, response) =
                            (seen.clone(), stopping.clone(), response.clone());
                        std::thread::spawn(move || {
                            serve(stream, &response, stall, &seen, &stopping, started)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(TestServer {
            url,
            port,
            hits,
            headers,
            stop,
        })
    }

    /// Connections that reached it.
    pub fn requests(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The headers of every request it read (names lowercase), oldest
    /// first.
    pub fn request_headers(&self) -> Vec<RequestHeaders> {
        self.headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One connection: read the request, record its headers, answer.
fn serve(
    mut stream: TcpStream,
    response: &str,
    stall: Option<Stall>,
    seen: &Mutex<Vec<RequestHeaders>>,
    stopping: &AtomicBool,
    started: Instant,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(end);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        if data.len() > 1 << 20 {
            break None;
        }
    };
    if let Some(end) = head_end {
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let headers = head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(headers);
    }
    if stall != Some(Stall::Head) {
        let _ = stream.write_all(response.as_bytes());
    }
    if stall.is_some() {
        while !stopping.load(Ordering::SeqCst) && started.elapsed() < LIFETIME {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
