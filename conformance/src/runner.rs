//! Runs one case on one backend and judges it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use morph_core::host::{
    HostPattern, MemoryAuditSink, MemoryVault, RecordingEventBus, VaultProvider,
};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, Enforcement, ErrorKind, ExtensionArtifact, ExtensionManifest,
    HostGrant, HostPolicy, MAX_ENTRY_BYTES, MorphError, Permission, ResourceLimits, RuntimeKind,
    read_extension_file,
};
use morph_host::{SandboxFs, UreqHttp};
use serde::Serialize;
use serde_json::Value;

use crate::case::{Case, Expect, Plant, Suite};
use crate::divergence::expected_divergence;
use crate::server::TestServer;

/// The verdict of one case on one backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum Status {
    /// Behaved as expected.
    Pass,
    /// Did not; the detail says how.
    Fail(String),
    /// The backend declares it cannot do what the case needs, and said
    /// `unsupported` as it must.
    Unsupported(String),
    /// A listed, explained divergence (see `divergence.rs`) happened.
    ExpectedFailure(String),
    /// The case is not for this backend's extension kind.
    NotApplicable,
}

impl Status {
    /// The matrix cell text.
    pub fn cell(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail(_) => "FAIL",
            Status::Unsupported(_) => "unsupported",
            Status::ExpectedFailure(_) => "xfail",
            Status::NotApplicable => "n/a",
        }
    }

    /// Whether the matrix run counts it as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Status::Fail(_))
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case name.
    pub case: String,
    /// Backend name.
    pub backend: String,
    /// Verdict.
    #[serde(flatten)]
    pub status: Status,
    /// Wall time of the main execution (or the load), in ms.
    pub duration_ms: f64,
    /// For `timeout` cases: how far past `max_execution_ms` it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overshoot_ms: Option<f64>,
}

/// Runs `case` on `runtime` (named `backend`).
pub async fn run_case(
    runtime: &dyn BaseMorphRuntime,
    backend: &str,
    suite: &Suite,
    case: &Case,
) -> CaseResult {
    let mut result = CaseResult {
        case: case.name.clone(),
        backend: backend.to_string(),
        status: Status::Pass,
        duration_ms: 0.0,
        overshoot_ms: None,
    };
    result.status = match judge(runtime, suite, case, &mut result).await {
        Ok(status) => status,
        Err(why) => Status::Fail(why),
    };
    if let Some(reason) = expected_divergence(backend, &case.name) {
        result.status = match result.status {
            Status::Fail(detail) => Status::ExpectedFailure(format!("{reason} ({detail})")),
            Status::Pass => Status::Fail(format!(
                "passes but is listed as an expected divergence ({reason}): remove it from divergence.rs"
            )),
            other => other,
        };
    }
    result
}

async fn judge(
    runtime: &dyn BaseMorphRuntime,
    suite: &Suite,
    case: &Case,
    out: &mut CaseResult,
) -> Result<Status, String> {
    let info = runtime.info();
    let Some(kind) = info
        .kinds
        .iter()
        .copied()
        .find(|k| case.runtimes.as_ref().is_none_or(|rs| rs.contains(k)))
    else {
        return Ok(Status::NotApplicable);
    };
    let missing: Vec<String> = case
        .needs
        .iter()
        .filter(|l| info.enforcement(**l) == Enforcement::Unsupported)
        .map(|l| l.to_string())
        .collect();

    let server2 = match &case.host.http_server2 {
        Some(setup) => Some(TestServer::start(setup).map_err(|e| format!("test server 2: {e}"))?),
        None => None,
    };
    let fill2 = |text: &str| match &server2 {
        None => text.to_string(),
        Some(s) => text
            .replace("{server2}", &s.url)
            .replace("{port2}", &s.port.to_string()),
    };
    let server = match &case.host.http_server {
        Some(setup) => {
            Some(TestServer::start_with(setup, &fill2).map_err(|e| format!("test server: {e}"))?)
        }
        None => None,
    };
    let fill = |text: &str| match &server {
        None => fill2(text),
        Some(s) => fill2(
            &text
                .replace("{server}", &s.url)
                .replace("{port}", &s.port.to_string()),
        ),
    };
    let with_server = |v: &Value| -> Result<Value, String> {
        serde_json::from_str(&fill(&v.to_string())).map_err(|e| e.to_string())
    };

    let mut artifact = match fixture_artifact(suite, case, kind)? {
        Ok(artifact) => artifact,
        Err(refused) => {
            return match &case.expect.load_error {
                Some(kind) if refused.kind().as_str() == kind => Ok(Status::Pass),
                Some(kind) => Err(format!("expected load error `{kind}`, got {refused}")),
                None => Err(format!("load failed: {refused}")),
            };
        }
    };
    if let Some(hosts) = &case.host.allowed_hosts {
        let hosts: Vec<String> = hosts.iter().map(|h| fill(h)).collect();
        for h in &hosts {
            HostPattern::parse(h).map_err(|e| format!("host.allowed_hosts: {e}"))?;
        }
        artifact.manifest.allowed_hosts = hosts;
    }
    let extension_id = artifact.manifest.extension_id.clone();
    let vault = Arc::new(MemoryVault::new());
    for (key, value) in &case.host.secrets {
        vault
            .set(&extension_id, key, value)
            .map_err(|e| format!("seeding secret: {e}"))?;
    }
    let events = Arc::new(RecordingEventBus::default());
    let audit = Arc::new(MemoryAuditSink::default());
    let files = tempfile::tempdir().map_err(|e| format!("temporary sandbox: {e}"))?;
    let outside = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let outside_file = outside.path().join("outside-secret.txt");
    plant(
        &case.host.plant,
        &files.path().join(&extension_id),
        &outside_file,
    )?;
    let http = UreqHttp {
        timeout: case
            .host
            .http_timeout_ms
            .map_or(UreqHttp::default().timeout, Duration::from_millis),
        ..UreqHttp::default()
    };
    let host = Arc::new(
        CapabilityHost::builder()
            .vault(vault)
            .events(events.clone())
            .audit(audit.clone())
            .fs(Arc::new(SandboxFs::new(files.path())))
            .http(Arc::new(http))
            .build(),
    );
    let policy = HostPolicy {
        granted: match &case.host.grant {
            None => artifact.manifest.permissions.clone(),
            Some(list) => list
                .iter()
                .map(|p| p.parse::<Permission>().map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
        },
        hosts: HostGrant::AsRequested,
        private_network: case.host.private_network,
        ..HostPolicy::default()
    };

    let started = Instant::now();
    let loaded = runtime.load(&artifact, host, &policy).await;
    out.duration_ms = ms(started.elapsed());
    if !missing.is_empty() {
        let needs = missing.join(", ");
        return match loaded {
            Err(e) if e.kind() == ErrorKind::Unsupported => Ok(Status::Unsupported(format!(
                "declares no enforcement of {needs}: {e}"
            ))),
            Err(e) => Err(format!(
                "needs {needs}, which the backend declares unsupported; expected `unsupported` at load, got {e}"
            )),
            Ok(_) => Err(format!(
                "needs {needs}, which the backend declares unsupported, yet it loaded"
            )),
        };
    }
    let ext = match (loaded, &case.expect.load_error) {
        (Err(e), Some(kind)) if e.kind().as_str() == kind => return Ok(Status::Pass),
        (Err(e), Some(kind)) => return Err(format!("expected load error `{kind}`, got {e}")),
        (Err(e), None) => return Err(format!("load failed: {e}")),
        (Ok(_), Some(kind)) => return Err(format!("expected load error `{kind}`, but it loaded")),
        (Ok(ext), None) => ext,
    };

    if let Some(expected) = &case.expect.describe {
        let actual = serde_json::to_value(ext.describe()).map_err(|e| e.to_string())?;
        if &actual != expected {
            return Err(format!("describe: expected {expected}, got {actual}"));
        }
    }
    if let Some(action) = &case.action {
        let started = Instant::now();
        let execution = ext
            .execute_with_report(action, with_server(&case.params)?, &case.context)
            .await;
        let took = started.elapsed();
        out.duration_ms = ms(took);
        check_outcome(&case.expect, &execution.result)?;
        if case.expect.error.as_deref() == Some("timeout") {
            let limit = Duration::from_millis(ext.policy().limits.max_execution_ms);
            out.overshoot_ms = Some(ms(took.saturating_sub(limit)));
            let bound = limit + limit.max(Duration::from_millis(500));
            if took > bound {
                return Err(format!(
                    "timeout took {} ms, above the bound of {} ms",
                    took.as_millis(),
                    bound.as_millis()
                ));
            }
        }
    }
    if let Some(expected) = &case.expect.events {
        let actual: Vec<Value> = events
            .events()
            .into_iter()
            .map(|e| serde_json::json!({"name": e.name, "payload": e.payload}))
            .collect();
        if &actual != expected {
            return Err(format!(
                "events: expected {}, got {}",
                Value::from(expected.clone()),
                Value::from(actual)
            ));
        }
    }
    if let Some(expected) = &case.expect.audit {
        let actual: Vec<Value> = audit
            .records()
            .into_iter()
            .filter(|r| r.op != "execute")
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        let matches = actual.len() == expected.len()
            && actual.iter().zip(expected).all(|(a, e)| contains(a, e));
        if !matches {
            return Err(format!(
                "audit: expected {}, got {}",
                Value::from(expected.clone()),
                Value::from(actual)
            ));
        }
    }
    if let Some(step) = &case.then {
        let result = ext
            .execute(&step.action, with_server(&step.params)?, &step.context)
            .await;
        check_outcome(&step.expect, &result).map_err(|e| format!("then `{}`: {e}", step.action))?;
    }
    for (name, server, requests, headers) in [
        (
            "the test server",
            &server,
            case.expect.server_requests,
            &case.expect.server_headers,
        ),
        (
            "the second test server",
            &server2,
            case.expect.server2_requests,
            &case.expect.server2_headers,
        ),
    ] {
        if let Some(expected) = requests {
            let seen = server.as_ref().map_or(0, TestServer::requests);
            if seen != expected {
                return Err(format!("{name} saw {seen} requests, expected {expected}"));
            }
        }
        if let Some(expected) = headers {
            check_headers(name, server.as_ref(), expected)?;
        }
    }
    if outside_file.exists() {
        let content = std::fs::read_to_string(&outside_file).unwrap_or_default();
        if content != OUTSIDE_SECRET {
            return Err("a file outside the sandbox was changed through a planted link".into());
        }
    }
    // Whatever the case did, nothing may exist beside the extension's own
    // sandbox directory.
    let outside: Vec<String> = std::fs::read_dir(files.path())
        .map_err(|e| format!("reading the sandbox root: {e}"))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| *name != extension_id)
        .collect();
    if !outside.is_empty() {
        return Err(format!(
            "files appeared outside the extension's sandbox: {outside:?}"
        ));
    }
    Ok(Status::Pass)
}

/// The content of the file planted links point at.
const OUTSIDE_SECRET: &str = "OUTSIDE-SECRET: never to be read through the sandbox";

/// Plants `plants` in `sandbox` (links point at `outside_file`).
fn plant(
    plants: &[Plant],
    sandbox: &std::path::Path,
    outside_file: &std::path::Path,
) -> Result<(), String> {
    if plants.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(sandbox).map_err(|e| format!("creating the sandbox: {e}"))?;
    std::fs::write(outside_file, OUTSIDE_SECRET).map_err(|e| format!("outside file: {e}"))?;
    for p in plants {
        let at = sandbox.join(&p.path);
        if p.link_outside {
            #[cfg(unix)]
            std::os::unix::fs::symlink(outside_file, &at)
                .map_err(|e| format!("planting link {}: {e}", p.path))?;
        }
        if p.fifo {
            let made = std::process::Command::new("mkfifo")
                .arg(&at)
                .status()
                .map_err(|e| format!("mkfifo: {e}"))?;
            if !made.success() {
                return Err(format!("mkfifo {} failed", p.path));
            }
        }
    }
    Ok(())
}

/// Every request `server` received carried the `expected` headers (a
/// value, or `None` for "absent"), and there was at least one.
fn check_headers(
    name: &str,
    server: Option<&TestServer>,
    expected: &std::collections::BTreeMap<String, Option<String>>,
) -> Result<(), String> {
    let requests = server.map(TestServer::request_headers).unwrap_or_default();
    if requests.is_empty() {
        return Err(format!("{name} received no request to check headers on"));
    }
    for (i, headers) in requests.iter().enumerate() {
        for (key, want) in expected {
            let got = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone());
            if got != *want {
                return Err(format!(
                    "{name}, request {}: header `{key}` is {got:?}, expected {want:?}",
                    i + 1
                ));
            }
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The case's fixture for `kind` (the case's limit overrides applied): `Err` when the fixture itself is
/// broken, `Ok(Err(..))` when the loader's file rules refuse its entry
/// (which the case then judges as the load error).
fn fixture_artifact(
    suite: &Suite,
    case: &Case,
    kind: RuntimeKind,
) -> Result<Result<ExtensionArtifact, MorphError>, String> {
    let dir = suite.fixture_dir(case);
    let mut manifest = match ExtensionManifest::from_dir(&dir) {
        Ok(m) => m,
        // A broken manifest is itself a fixture: let the loader report it.
        Err(e) => return Err(format!("fixture manifest: {e}")),
    };
    if manifest.runtime != kind {
        manifest.runtime = kind;
        manifest.entry = None;
    }
    if !case.host.limits.is_empty() {
        let mut limits =
            serde_json::to_value(manifest.resource_limits).map_err(|e| e.to_string())?;
        for (k, v) in &case.host.limits {
            limits[k] = v.clone();
        }
        manifest.resource_limits = serde_json::from_value::<ResourceLimits>(limits)
            .map_err(|e| format!("host.limits: {e}"))?;
    }
    let entry_path = dir.join(manifest.entry_file());
    // Read by the loader's own rules (regular files in the directory only):
    // a fixture whose entry is a link or a FIFO tests those rules.
    let entry = match read_extension_file(&dir, manifest.entry_file(), MAX_ENTRY_BYTES) {
        Ok(entry) => entry,
        Err(e) if e.is_not_found() => {
            return Err(format!(
                "fixture `{}` has no {kind} entry {}",
                case.fixture,
                entry_path.display()
            ));
        }
        Err(_) => {
            return Ok(Err(ExtensionArtifact::read_entry(
                &dir,
                manifest.entry_file(),
            )
            .err()
            .unwrap_or_else(|| MorphError::invalid_module("entry refused"))));
        }
    };
    let mut artifact = ExtensionArtifact::from_parts(manifest, entry);
    artifact.dir = Some(dir);
    Ok(Ok(artifact))
}

fn check_outcome(expect: &Expect, result: &Result<Value, MorphError>) -> Result<(), String> {
    match (result, expect) {
        (Ok(v), Expect { ok: Some(want), .. }) if v == want => Ok(()),
        (
            Ok(v),
            Expect {
                ok_matches: Some(want),
                ..
            },
        ) if contains(v, want) => Ok(()),
        (
            Err(e),
            Expect {
                error: Some(kind),
                code,
                ..
            },
        ) if e.kind().as_str() == kind && (code.is_none() || code.as_deref() == e.code()) => Ok(()),
        (actual, _) => Err(format!(
            "expected {}, got {}",
            describe_expect(expect),
            match actual {
                Ok(v) => format!("ok {v}"),
                Err(e) => format!("error {e}"),
            }
        )),
    }
}

fn describe_expect(e: &Expect) -> String {
    if let Some(v) = &e.ok {
        format!("ok {v}")
    } else if let Some(v) = &e.ok_matches {
        format!("ok matching {v}")
    } else {
        format!(
            "error `{}`{}",
            e.error.as_deref().unwrap_or("?"),
            e.code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        )
    }
}

/// Whether `actual` contains `expected`: equal scalars and arrays, and for
/// objects every expected field contained in the actual one.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| contains(av, ev))),
        _ => actual == expected,
    }
}
