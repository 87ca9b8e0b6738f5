//! The Describe document an extension returns, its check against the
//! manifest, and the parameter check made before the guest is called.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{MorphError, Result};
use crate::manifest::{ActionSpec, ExtensionManifest, ParamSpec};

/// One action as the extension describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribedAction {
    /// Action name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its parameters.
    #[serde(default)]
    pub parameters: Vec<ParamSpec>,
}

/// What `describe()` returns (ABI.md, Envelopes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Describe {
    /// Display name.
    pub name: String,
    /// Semantic version; must equal the manifest's.
    pub version: String,
    /// Actions; must match the manifest's.
    pub actions: Vec<DescribedAction>,
    /// Events it emits; must match the manifest's.
    #[serde(default)]
    pub events: Vec<String>,
    /// JSON Schema of its configuration (`{}` when none).
    #[serde(default = "empty_object")]
    pub config_schema: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Describe {
    /// Parses the document a guest returned and checks it against the
    /// manifest, which is authoritative: any disagreement is
    /// `invalid_module`. Bytes that are not UTF-8 JSON are `abi_violation`.
    pub fn from_guest(bytes: &[u8], manifest: &ExtensionManifest) -> Result<Describe> {
        let value = crate::abi::parse_json(bytes, "describe() result")?;
        let describe: Describe = serde_json::from_value(value).map_err(|e| {
            MorphError::invalid_module(format!("describe() returned an invalid document: {e}"))
        })?;
        describe.check_against(manifest)?;
        Ok(describe)
    }

    fn check_against(&self, manifest: &ExtensionManifest) -> Result<()> {
        let mismatch = |what: String| {
            Err(MorphError::invalid_module(format!(
                "describe() disagrees with the manifest of `{}`: {what}",
                manifest.extension_id
            )))
        };
        if self.version != manifest.version {
            return mismatch(format!(
                "version `{}` vs `{}`",
                self.version, manifest.version
            ));
        }
        if !self.config_schema.is_object() {
            return mismatch("config_schema is not an object".into());
        }
        let mut ours: Vec<&str> = self.actions.iter().map(|a| a.name.as_str()).collect();
        let mut theirs: Vec<&str> = manifest.actions.iter().map(|a| a.name.as_str()).collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        if ours != theirs {
            return mismatch(format!("actions {ours:?} vs {theirs:?}"));
        }
        for action in &self.actions {
            let declared = manifest.action(&action.name).map(|a| &a.parameters);
            if declared != Some(&action.parameters) {
                return mismatch(format!("parameters of action `{}`", action.name));
            }
        }
        let mut ev: Vec<&str> = self.events.iter().map(String::as_str).collect();
        let mut mev: Vec<&str> = manifest.events.iter().map(String::as_str).collect();
        ev.sort_unstable();
        mev.sort_unstable();
        if ev != mev {
            return mismatch(format!("events {ev:?} vs {mev:?}"));
        }
        Ok(())
    }
}

/// Checks `params` against the declared action before the guest runs:
/// `unknown_action` when the manifest does not declare it, `invalid_params`
/// when params is not an object, a required parameter is missing or null,
/// an undeclared one is present, or a type is wrong. `null` params count as
/// `{}`. Returns the params object to pass on.
pub fn validate_params<'m>(
    manifest: &'m ExtensionManifest,
    action: &str,
    params: Value,
) -> Result<(&'m ActionSpec, Map<String, Value>)> {
    let spec = manifest.action(action).ok_or_else(|| {
        MorphError::unknown_action(format!(
            "extension `{}` has no action `{action}` (it has: {})",
            manifest.extension_id,
            manifest
                .actions
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let bad = |msg: String| MorphError::invalid_params(format!("action `{action}`: {msg}"));
    let object = match params {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(bad(format!(
                "params must be a JSON object, got {}",
                json_type(&other)
            )));
        }
    };
    for p in &spec.parameters {
        match object.get(&p.name) {
            None | Some(Value::Null) if p.required => {
                return Err(bad(format!("missing required parameter `{}`", p.name)));
            }
            None | Some(Value::Null) => {}
            Some(v) if !p.ty.matches(v) => {
                return Err(bad(format!(
                    "parameter `{}` must be {}, got {}",
                    p.name,
                    p.ty.as_str(),
                    json_type(v)
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = object
        .keys()
        .find(|k| !spec.parameters.iter().any(|p| &p.name == *k))
    {
        return Err(bad(format!("undeclared parameter `{extra}`")));
    }
    Ok((spec, object))
}

/// The JSON type name of a value, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    fn manifest() -> ExtensionManifest {
        ExtensionManifest::from_yaml(
            "extension_id: x\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {name: X}\nruntime: wasm\n\
             actions:\n  - name: create\n    parameters:\n      - {name: title, type: string, required: true}\n      - {name: n, type: integer}\n\
             events: [created]\n",
            "m.yaml",
        )
        .unwrap()
    }

    #[test]
    fn params_are_checked_before_the_guest() {
        let m = manifest();
        assert!(validate_params(&m, "create", json!({"title": "t", "n": 3})).is_ok());
        let kind = |action, p| validate_params(&m, action, p).unwrap_err().kind();
        assert_eq!(kind("delete", json!({})), ErrorKind::UnknownAction);
        assert_eq!(kind("create", json!({})), ErrorKind::InvalidParams);
        assert_eq!(
            kind("create", json!({"title": null})),
            ErrorKind::InvalidParams
        );
        assert_eq!(
            kind("create", json!({"title": "t", "n": 1.5})),
            ErrorKind::InvalidParams
        );
        assert_eq!(
            kind("create", json!({"title": "t", "x": 1})),
            ErrorKind::InvalidParams
        );
        assert_eq!(kind("create", json!([1])), ErrorKind::InvalidParams);
        let e = validate_params(&m, "create", json!({"title": 5})).unwrap_err();
        assert!(
            e.message().contains("`title` must be string, got integer"),
            "{e}"
        );
    }

    #[test]
    fn describe_must_agree_with_the_manifest() {
        let m = manifest();
        let good = json!({"name": "X", "version": "1.0.0", "events": ["created"],
            "actions": [{"name": "create", "parameters": [
                {"name": "title", "type": "string", "required": true},
                {"name": "n", "type": "integer"}]}]});
        assert!(Describe::from_guest(good.to_string().as_bytes(), &m).is_ok());
        let mut wrong = good.clone();
        wrong["actions"][0]["name"] = json!("remove");
        let e = Describe::from_guest(wrong.to_string().as_bytes(), &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModule);
        let e = Describe::from_guest(b"[1]", &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModule);
        let e = Describe::from_guest(b"{\xff", &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AbiViolation);
    }
}
