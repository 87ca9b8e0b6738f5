//! The case file format: one YAML file per behaviour under `cases/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use morph_core::{EngineLimit, ExecutionContext, RuntimeKind};
use serde::Deserialize;
use serde_json::Value;

/// One conformance case (`cases/<name>.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// File stem; set by the loader.
    #[serde(skip)]
    pub name: String,
    /// What behaviour it pins down.
    pub description: String,
    /// Fixture directory under `fixtures/`.
    pub fixture: String,
    /// The action to execute; `None` for load-only cases.
    #[serde(default)]
    pub action: Option<String>,
    /// Params object.
    #[serde(default)]
    pub params: Value,
    /// Execution context.
    #[serde(default)]
    pub context: ExecutionContext,
    /// Extension kinds the case applies to (default: all).
    #[serde(default)]
    pub runtimes: Option<Vec<RuntimeKind>>,
    /// Engine limits the case depends on.
    #[serde(default)]
    pub needs: Vec<EngineLimit>,
    /// Host set-up.
    #[serde(default)]
    pub host: HostSetup,
    /// What must happen.
    pub expect: Expect,
    /// A follow-up execution on the same loaded extension.
    #[serde(default)]
    pub then: Option<Step>,
}

/// What the host grants and holds before the case runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSetup {
    /// Granted permissions (default: what the manifest requests).
    #[serde(default)]
    pub grant: Option<Vec<String>>,
    /// Secrets seeded for the extension.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Overrides of the manifest's `resource_limits`.
    #[serde(default)]
    pub limits: serde_json::Map<String, Value>,
    /// A loopback HTTP server for the case; `{server}` in params becomes
    /// its base URL and `{port}` its port.
    #[serde(default)]
    pub http_server: Option<crate::server::ServerSetup>,
    /// A second loopback server (another origin: same address, another
    /// port), started first: `{server2}` and `{port2}` in params, in
    /// `allowed_hosts` and in the first server's headers.
    #[serde(default)]
    pub http_server2: Option<crate::server::ServerSetup>,
    /// The host's private-network grant (`HostPolicy::private_network`):
    /// the test servers are on 127.0.0.1, which is reachable only with it.
    #[serde(default)]
    pub private_network: bool,
    /// Replaces the manifest's `allowed_hosts` (the extension's request),
    /// with `{port}` and `{port2}` filled in.
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// The HTTP client's own timeout per `http.fetch`, in ms (default 30 s).
    #[serde(default)]
    pub http_timeout_ms: Option<u64>,
    /// Files planted in the extension's sandbox before the case runs, as
    /// another process could (links out of the sandbox, FIFOs).
    #[serde(default)]
    pub plant: Vec<Plant>,
}

/// Something planted in the sandbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    /// Path inside the extension's sandbox.
    pub path: String,
    /// A symbolic link to a file outside the sandbox (whose content the
    /// runner checks is neither returned nor changed).
    #[serde(default)]
    pub link_outside: bool,
    /// A FIFO (named pipe) nobody writes to.
    #[serde(default)]
    pub fifo: bool,
}

/// Expected outcome.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact ok value (`ok: null` expects a null result).
    #[serde(default, deserialize_with = "present")]
    pub ok: Option<Value>,
    /// Ok value containing these fields (recursively).
    #[serde(default)]
    pub ok_matches: Option<Value>,
    /// Error kind of the execution.
    #[serde(default)]
    pub error: Option<String>,
    /// The guest's code, with `error: extension_error`.
    #[serde(default)]
    pub code: Option<String>,
    /// Error kind of the load.
    #[serde(default)]
    pub load_error: Option<String>,
    /// The Describe document, exactly.
    #[serde(default)]
    pub describe: Option<Value>,
    /// Exactly these events (name and payload) published.
    #[serde(default)]
    pub events: Option<Vec<Value>>,
    /// These host-call audit records, in order (listed fields only).
    #[serde(default)]
    pub audit: Option<Vec<Value>>,
    /// How many connections reached the case's HTTP server.
    #[serde(default)]
    pub server_requests: Option<usize>,
    /// How many connections reached the second server.
    #[serde(default)]
    pub server2_requests: Option<usize>,
    /// Headers every request to the server carried (lowercase names; a
    /// value, or `null` for "absent"); it must have seen at least one.
    #[serde(default)]
    pub server_headers: Option<BTreeMap<String, Option<String>>>,
    /// The same for the second server.
    #[serde(default)]
    pub server2_headers: Option<BTreeMap<String, Option<String>>>,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A follow-up execution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The action.
    pub action: String,
    /// Params object.
    #[serde(default)]
    pub params: Value,
    /// Execution context.
    #[serde(default)]
    pub context: ExecutionContext,
    /// Expected outcome (`ok`, `ok_matches`, `error`, `code`).
    pub expect: Expect,
}

/// A problem with the suite's own files.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A case file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// All cases of a suite directory (`<root>/cases/*.yaml`, fixtures under
/// `<root>/fixtures`).
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite directory.
    pub root: PathBuf,
    /// Cases sorted by name.
    pub cases: Vec<Case>,
}

impl Suite {
    /// The suite shipped in this crate's source directory.
    pub fn bundled() -> Result<Suite, SuiteError> {
        Suite::load(Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    /// Loads every case under `root/cases`.
    pub fn load(root: &Path) -> Result<Suite, SuiteError> {
        let dir = root.join("cases");
        let read = |path: &Path, e| SuiteError::Read {
            path: path.to_path_buf(),
            source: e,
        };
        let mut cases = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| read(&dir, e))? {
            let path = entry.map_err(|e| read(&dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| read(&path, e))?;
            let invalid = |message: String| SuiteError::Invalid {
                path: path.clone(),
                message,
            };
            let mut case: Case =
                serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?;
            case.name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            case.check().map_err(invalid)?;
            if !root.join("fixtures").join(&case.fixture).is_dir() {
                return Err(invalid(format!(
                    "fixture `{}` does not exist",
                    case.fixture
                )));
            }
            cases.push(case);
        }
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Suite {
            root: root.to_path_buf(),
            cases,
        })
    }

    /// The fixture directory of `case`.
    pub fn fixture_dir(&self, case: &Case) -> PathBuf {
        self.root.join("fixtures").join(&case.fixture)
    }
}

impl Case {
    fn check(&self) -> Result<(), String> {
        let e = &self.expect;
        let outcomes = [
            e.ok.is_some(),
            e.ok_matches.is_some(),
            e.error.is_some(),
            e.load_error.is_some(),
            e.describe.is_some(),
        ];
        if outcomes.iter().filter(|x| **x).count() != 1 {
            return Err(
                "expect needs exactly one of ok, ok_matches, error, load_error, describe".into(),
            );
        }
        for kind in [&e.error, &e.load_error].into_iter().flatten() {
            if morph_core::ErrorKind::parse(kind).is_none() {
                return Err(format!("`{kind}` is not an error kind of ABI.md"));
            }
        }
        let executes = e.ok.is_some() || e.ok_matches.is_some() || e.error.is_some();
        if executes != self.action.is_some() {
            return Err("an `action` goes with ok/ok_matches/error, and only with them".into());
        }
        Ok(())
    }
}
