//! `manifest.yaml`: what an extension is, what it asks for and what it
//! offers. Written by an untrusted author, so parsing is strict and every
//! error names the field path.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{MorphError, Result};
use crate::extension_file::{MAX_MANIFEST_BYTES, read_extension_file};
use crate::limits::ResourceLimits;
use crate::permission::PermissionSet;

/// The file name of a manifest inside an extension directory.
pub const MANIFEST_FILE: &str = "manifest.yaml";

/// The action through which a listener receives events, with params
/// `{"event": "<extension_id>/<name>", "source": "<extension_id>",
/// "payload": <object>}` (a non-object payload arrives as `{"value": ...}`).
pub const ON_EVENT_ACTION: &str = "on_event";

/// The manifest schema versions this build reads.
pub const SUPPORTED_SCHEMA_VERSIONS: [&str; 2] = ["1", "1.0"];

/// Which runtime an extension is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A WebAssembly core module (`extension.wasm`, or `.wat` text).
    Wasm,
    /// A JavaScript script (`extension.js`).
    Js,
    /// A Python module (`extension.py`).
    Python,
}

impl RuntimeKind {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Wasm => "wasm",
            RuntimeKind::Js => "js",
            RuntimeKind::Python => "python",
        }
    }

    /// The entry file used when the manifest names none.
    pub fn default_entry(self) -> &'static str {
        match self {
            RuntimeKind::Wasm => "extension.wasm",
            RuntimeKind::Js => "extension.js",
            RuntimeKind::Python => "extension.py",
        }
    }

    fn accepts_entry(self, entry: &str) -> bool {
        let ext = Path::new(entry).extension().and_then(|e| e.to_str());
        match self {
            RuntimeKind::Wasm => matches!(ext, Some("wasm" | "wat")),
            RuntimeKind::Js => matches!(ext, Some("js" | "mjs")),
            RuntimeKind::Python => ext == Some("py"),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of an action parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A JSON string.
    String,
    /// A JSON number without a fractional part that fits i64 or u64.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl ParamType {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Object => "object",
            ParamType::Array => "array",
        }
    }

    /// Whether `value` has this type.
    pub fn matches(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match self {
            ParamType::String => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Number => value.is_number(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Object => value.is_object(),
            ParamType::Array => matches!(value, Value::Array(_)),
        }
    }
}

/// One declared parameter of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// The key in the params object.
    pub name: String,
    /// Its JSON type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Whether it must be present (and not null). Default false.
    #[serde(default)]
    pub required: bool,
    /// What it means, for people and AI assistants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Whether an AI assistant may call an action on a user's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiAccess {
    /// Never (the default).
    #[default]
    Denied,
    /// Only after the user confirms each call.
    Confirm,
    /// Without asking.
    Allowed,
}

/// One action an extension offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The action name passed to `execute`.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its parameters.
    #[serde(default)]
    pub parameters: Vec<ParamSpec>,
    /// Whether AI assistants may call it. Default `denied`.
    #[serde(default)]
    pub ai_access: AiAccess,
}

/// Descriptive metadata; not used for decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Display name.
    pub name: String,
    /// One-paragraph description.
    #[serde(default)]
    pub description: String,
    /// Author or vendor.
    #[serde(default)]
    pub author: String,
    /// Licence identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Project home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
}

/// A parsed and validated `manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionManifest {
    /// Stable id: lowercase letters, digits, `.`, `_`, `-`; 1 to 128 chars.
    /// Scopes secrets, data, files and event names.
    pub extension_id: String,
    /// Semantic version of the extension.
    pub version: String,
    /// Manifest format version (`"1.0"`).
    pub schema_version: String,
    /// Descriptive metadata.
    pub metadata: Metadata,
    /// Which runtime runs it.
    pub runtime: RuntimeKind,
    /// Entry file relative to the extension directory; defaults to
    /// `extension.wasm` / `extension.js` / `extension.py`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Requested permissions (deny by default).
    #[serde(default)]
    pub permissions: PermissionSet,
    /// Hosts `http.fetch` may reach: exact names or IP addresses, or
    /// `*.example.com` (subdomains), each optionally with `:port` (see
    /// [`HostPattern`](crate::host::HostPattern)). Non-public addresses stay
    /// closed unless the host's policy allows private networks.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Requested resource limits; missing ones take the defaults.
    #[serde(default)]
    pub resource_limits: ResourceLimits,
    /// The actions it offers.
    pub actions: Vec<ActionSpec>,
    /// Events it may emit.
    #[serde(default)]
    pub events: Vec<String>,
    /// Events of other extensions it consumes, as `<extension_id>/<event>`;
    /// needs `event:listen` and an `on_event` action (see docs/abi.md).
    #[serde(default)]
    pub listens: Vec<String>,
}

impl ExtensionManifest {
    /// Parses and validates YAML text. `origin` (a file name) prefixes
    /// every error message. Text over [`MAX_MANIFEST_BYTES`] or with more
    /// than [`MAX_MANIFEST_BRACKETS`] flow-collection openers is refused
    /// before the YAML parser sees it.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self> {
        check_shape(text).map_err(|e| MorphError::invalid_manifest(format!("{origin}: {e}")))?;
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let manifest: ExtensionManifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                MorphError::invalid_manifest(format!("{origin}: {inner}"))
            } else {
                MorphError::invalid_manifest(format!("{origin}: field `{path}`: {inner}"))
            }
        })?;
        manifest
            .validate()
            .map_err(|e| MorphError::invalid_manifest(format!("{origin}: {e}")))?;
        Ok(manifest)
    }

    /// Reads and validates `<dir>/manifest.yaml` (a regular file inside
    /// `dir`, see [`ExtensionArtifact::from_dir`](crate::ExtensionArtifact::from_dir)).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::read_from_dir(dir).map(|(manifest, _)| manifest)
    }

    /// [`from_dir`](Self::from_dir), with the text read.
    pub(crate) fn read_from_dir(dir: &Path) -> Result<(Self, String)> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = read_extension_file(dir, MANIFEST_FILE, MAX_MANIFEST_BYTES)
            .map_err(|e| MorphError::invalid_manifest(format!("{}: {e}", path.display())))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            MorphError::invalid_manifest(format!("{}: not UTF-8 text", path.display()))
        })?;
        let manifest = Self::from_yaml(&text, &path.display().to_string())?;
        Ok((manifest, text))
    }

    /// The entry file, explicit or the runtime's default.
    pub fn entry_file(&self) -> &str {
        self.entry
            .as_deref()
            .unwrap_or_else(|| self.runtime.default_entry())
    }

    /// The declared action called `name`.
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        validate_id(&self.extension_id).map_err(|e| format!("field `extension_id`: {e}"))?;
        semver::Version::parse(&self.version).map_err(|e| {
            format!(
                "field `version`: `{}` is not a semantic version: {e}",
                self.version
            )
        })?;
        if !SUPPORTED_SCHEMA_VERSIONS.contains(&self.schema_version.as_str()) {
            return Err(format!(
                "field `schema_version`: `{}` is not supported (this build reads {})",
                self.schema_version,
                SUPPORTED_SCHEMA_VERSIONS.join(", ")
            ));
        }
        if self.metadata.name.trim().is_empty() {
            return Err("field `metadata.name`: must not be empty".into());
        }
        let entry = self.entry_file();
        if entry.is_empty()
            || entry.contains(['/', '\\', ':', '\0'])
            || entry.starts_with('.')
            || !self.runtime.accepts_entry(entry)
        {
            return Err(format!(
                "field `entry`: `{entry}` must be a file name in the extension directory with an extension fitting runtime `{}`",
                self.runtime
            ));
        }
        if let Some(limit) = self.resource_limits.first_zero() {
            return Err(format!(
                "field `resource_limits.{limit}`: must be greater than 0"
            ));
        }
        if self.actions.is_empty() {
            return Err("field `actions`: an extension must declare at least one action".into());
        }
        let mut names = BTreeSet::new();
        for (i, action) in self.actions.iter().enumerate() {
            validate_name(&action.name).map_err(|e| format!("field `actions[{i}].name`: {e}"))?;
            if !names.insert(action.name.as_str()) {
                return Err(format!(
                    "field `actions[{i}].name`: action `{}` is declared twice",
                    action.name
                ));
            }
            let mut params = BTreeSet::new();
            for (j, p) in action.parameters.iter().enumerate() {
                validate_name(&p.name)
                    .map_err(|e| format!("field `actions[{i}].parameters[{j}].name`: {e}"))?;
                if !params.insert(p.name.as_str()) {
                    return Err(format!(
                        "field `actions[{i}].parameters[{j}].name`: parameter `{}` of action `{}` is declared twice",
                        p.name, action.name
                    ));
                }
            }
        }
        let mut events = BTreeSet::new();
        for (i, event) in self.events.iter().enumerate() {
            validate_name(event).map_err(|e| format!("field `events[{i}]`: {e}"))?;
            if !events.insert(event.as_str()) {
                return Err(format!(
                    "field `events[{i}]`: event `{event}` is declared twice"
                ));
            }
        }
        for (i, event) in self.listens.iter().enumerate() {
            let valid = event
                .split_once('/')
                .is_some_and(|(ext, name)| validate_id(ext).is_ok() && validate_name(name).is_ok());
            if !valid {
                return Err(format!(
                    "field `listens[{i}]`: `{event}` must be `<extension_id>/<event>`"
                ));
            }
        }
        if !self.listens.is_empty() && self.action(ON_EVENT_ACTION).is_none() {
            return Err(format!(
                "field `listens`: an extension that listens must declare the action `{ON_EVENT_ACTION}`"
            ));
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            validate_host_pattern(host).map_err(|e| format!("field `allowed_hosts[{i}]`: {e}"))?;
        }
        Ok(())
    }
}

/// Most `[` and `{` characters a manifest may contain (2048; a
/// manifest written in flow style uses a few per action). YAML's flow
/// collections can nest no deeper than this, and the YAML parser's time
/// grows with the square of that nesting (100,000 levels took 40 s).
pub const MAX_MANIFEST_BRACKETS: usize = 2048;

/// Refuses manifest text that is too large or has too many flow
/// collection openers. Counting characters, quoted or not, cannot be
/// fooled by quoting tricks the way a partial YAML scanner could.
fn check_shape(text: &str) -> std::result::Result<(), String> {
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "the manifest is {} bytes, above the {MAX_MANIFEST_BYTES}-byte limit",
            text.len()
        ));
    }
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if brackets > MAX_MANIFEST_BRACKETS {
        return Err(format!(
            "the manifest has {brackets} `[`/`{{` characters, above the limit of {MAX_MANIFEST_BRACKETS} (flow collections nested this deep are refused)"
        ));
    }
    Ok(())
}

/// Checks an extension id: 1 to 128 of `a-z 0-9 . _ -`, starting with a
/// letter or digit (it becomes a directory and a namespace).
pub fn validate_id(id: &str) -> std::result::Result<(), String> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let ok_start = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if id.len() > 128 || !ok_chars || !ok_start {
        return Err(format!(
            "`{id}` must be 1 to 128 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit"
        ));
    }
    Ok(())
}

fn validate_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be 1 to 128 characters of letters, digits, `_`, `-`, `.`"
        ))
    }
}

fn validate_host_pattern(host: &str) -> std::result::Result<(), String> {
    crate::host::HostPattern::parse(host).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::permission::Permission;

    const GOOD: &str = r#"
extension_id: com.example.tracker
version: 1.2.0
schema_version: "1.0"
metadata:
  name: Tracker
runtime: wasm
permissions: [vault:read, http:write]
resource_limits:
  max_execution_ms: 500
actions:
  - name: create_issue
    description: Create an issue
    parameters:
      - {name: title, type: string, required: true}
      - {name: priority, type: integer}
    ai_access: confirm
events: [issue_created]
"#;

    fn err(text: &str) -> String {
        let e = ExtensionManifest::from_yaml(text, "m.yaml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidManifest);
        e.message().to_string()
    }

    #[test]
    fn parses_a_good_manifest_with_defaults() {
        let m = ExtensionManifest::from_yaml(GOOD, "m.yaml").unwrap();
        assert_eq!(m.entry_file(), "extension.wasm");
        assert!(m.permissions.contains(Permission::VaultRead));
        assert_eq!(m.resource_limits.max_execution_ms, 500);
        assert_eq!(m.resource_limits.max_memory_mb, 128);
        assert_eq!(
            m.action("create_issue").unwrap().ai_access,
            AiAccess::Confirm
        );
    }

    #[test]
    fn unknown_permission_names_its_path() {
        let msg = err(&GOOD.replace("http:write", "http:delete"));
        assert!(msg.contains("permissions[1]"), "{msg}");
        assert!(msg.contains("http:delete"), "{msg}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let msg = err(&GOOD.replace("version: 1.2.0\n", ""));
        assert!(msg.contains("version"), "{msg}");
        let msg = err(&GOOD.replace("runtime: wasm", "runtime: wasm\ncolour: red"));
        assert!(msg.contains("colour"), "{msg}");
        let msg = err(&GOOD.replace("type: integer", "type: int"));
        assert!(msg.contains("actions[0].parameters[1].type"), "{msg}");
    }

    #[test]
    fn bad_values_are_named() {
        assert!(err(&GOOD.replace("1.2.0", "one")).contains("field `version`"));
        assert!(err(&GOOD.replace("com.example.tracker", "../x")).contains("extension_id"));
        assert!(err(&GOOD.replace("\"1.0\"", "\"9\"")).contains("schema_version"));
        assert!(
            err(&GOOD.replace("runtime: wasm", "runtime: wasm\nentry: ../x.wasm"))
                .contains("field `entry`")
        );
        assert!(
            err(&GOOD.replace("runtime: wasm", "runtime: js\nentry: e.wasm"))
                .contains("field `entry`")
        );
        // A drive-relative name or an alternate data stream on Windows.
        for entry in ["C:x.wasm", "x.txt:y.wasm"] {
            assert!(
                err(&GOOD.replace(
                    "runtime: wasm",
                    &format!("runtime: wasm\nentry: \"{entry}\"")
                ))
                .contains("field `entry`"),
                "{entry}"
            );
        }
        assert!(err(&GOOD.replace("500", "0")).contains("max_execution_ms"));
        assert!(err(&GOOD.replace("name: priority", "name: title")).contains("declared twice"));
        assert!(err("[1, 2]").contains("m.yaml"));
        assert!(err("extension_id: [").contains("m.yaml"));
    }

    #[test]
    fn deeply_nested_or_huge_manifests_are_refused_quickly() {
        let started = std::time::Instant::now();
        for nested in [
            GOOD.replace(
                "metadata:",
                &format!(
                    "x: {}{}\nmetadata:",
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                ),
            ),
            GOOD.replace(
                "metadata:",
                &format!(
                    "x: {}{}\nmetadata:",
                    "{a: ".repeat(50_000),
                    "}".repeat(50_000)
                ),
            ),
        ] {
            let e = ExtensionManifest::from_yaml(&nested, "m.yaml").unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidManifest);
            assert!(e.message().contains("`[`/`{`"), "{e}");
        }
        // Block collections nest by indentation or, on one line, as compact
        // sequences (`- - - x`) and complex keys (`? ? ? x`): each level
        // costs two bytes, so the size cap alone allows 100,000 levels.
        for prefix in ["- ", "? "] {
            let nested = GOOD.replace(
                "metadata:",
                &format!("x:\n  {}y\nmetadata:", prefix.repeat(100_000)),
            );
            let e = ExtensionManifest::from_yaml(&nested, "m.yaml").unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidManifest, "{prefix}");
        }
        let huge = format!("{GOOD}# {}\n", "x".repeat(MAX_MANIFEST_BYTES as usize));
        let e = ExtensionManifest::from_yaml(&huge, "m.yaml").unwrap_err();
        assert!(e.message().contains("byte limit"), "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // The deepest nesting allowed still parses quickly.
        let n = MAX_MANIFEST_BRACKETS - 8;
        let deepest = GOOD.replace(
            "metadata:",
            &format!("x: {}{}\nmetadata:", "[".repeat(n), "]".repeat(n)),
        );
        let started = std::time::Instant::now();
        let e = ExtensionManifest::from_yaml(&deepest, "m.yaml").unwrap_err();
        assert!(e.message().contains("unknown field `x`"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn allowed_hosts_take_ports_and_refuse_what_would_never_match() {
        let with =
            |hosts: &str| GOOD.replace("events:", &format!("allowed_hosts: {hosts}\nevents:"));
        let m = ExtensionManifest::from_yaml(
            &with("['127.0.0.1:8080', '[::1]:80', '*.example.com:8443', api.example.com]"),
            "m.yaml",
        )
        .unwrap();
        assert_eq!(m.allowed_hosts.len(), 4);
        for bad in [
            "'*.0.0.1'",
            "'a:b:c'",
            "'host:0'",
            "'host:99999'",
            "'*'",
            "'127.1'",
        ] {
            let msg = err(&with(&format!("[{bad}]")));
            assert!(msg.contains("allowed_hosts[0]"), "{bad}: {msg}");
        }
    }
}
