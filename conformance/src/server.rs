//! A loopback HTTP server for cases that exercise `http.fetch`: answers
//! every request with one fixed response and counts what reached it, so a
//! case can prove that a denied request never left the host.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;

/// What the server answers (case file: `host.http_server`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSetup {
    /// Status code. Default 200.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Response body. Default empty.
    #[serde(default)]
    pub body: String,
}

fn ok_status() -> u16 {
    200
}

/// A running server; stops when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Starts answering on 127.0.0.1 (an ephemeral port).
    pub fn start(setup: &ServerSetup) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let response = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            setup.status,
            setup.body.len(),
            setup.body
        );
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (counter, stopping) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: stops when the case ends, or after a minute at most.
            for _ in 0..6_000 {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 8192];
                        let _ = stream.read(&mut buf);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.write_all(response.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(TestServer { url, hits, stop })
    }

    /// Requests that reached it.
    pub fn requests(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
