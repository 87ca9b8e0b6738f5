//! [`HostOp`]: a host call parsed once, from its op name and arguments,
//! into the one type that knows its permission and its provider.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{MorphError, Result};
use crate::permission::Permission;

/// One host operation of ABI.md with its arguments, checked for shape
/// (unknown fields refused) but not yet for permission or policy.
#[derive(Debug, Clone, PartialEq)]
pub enum HostOp {
    /// `vault.get_secret {key}`.
    GetSecret {
        /// The secret's key.
        key: String,
    },
    /// `vault.set_secret {key, value}`.
    SetSecret {
        /// The secret's key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// `events.emit {name, payload}`.
    Emit {
        /// The event name as declared in the manifest (not namespaced).
        name: String,
        /// Its payload (`null` when absent).
        payload: Value,
    },
    /// `http.fetch {method, url, headers, body | body_base64}`.
    Fetch {
        /// The method as given.
        method: String,
        /// The URL as given.
        url: String,
        /// Header pairs.
        headers: Vec<(String, String)>,
        /// The body bytes, decoded from `body` or `body_base64`.
        body: Option<Vec<u8>>,
    },
    /// `fs.read {path}`.
    FsRead {
        /// Path inside the sandbox.
        path: String,
    },
    /// `fs.write {path, data}`.
    FsWrite {
        /// Path inside the sandbox.
        path: String,
        /// The text to write.
        data: String,
    },
    /// `fs.list {path}` (`""` for the sandbox root).
    FsList {
        /// Directory inside the sandbox.
        path: String,
    },
    /// `fs.delete {path}`.
    FsDelete {
        /// Path inside the sandbox.
        path: String,
    },
    /// `data.get {key}`.
    DataGet {
        /// The key.
        key: String,
    },
    /// `data.set {key, value}`.
    DataSet {
        /// The key.
        key: String,
        /// The JSON value to store.
        value: Value,
    },
    /// `data.delete {key}`.
    DataDelete {
        /// The key.
        key: String,
    },
    /// `data.list {prefix}`.
    DataList {
        /// Keys starting with this (`""` for all).
        prefix: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecretArgs {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDataArgs {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitArgs {
    name: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListPathArgs {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

/// Every op name, for messages.
pub const OP_NAMES: [&str; 12] = [
    "vault.get_secret",
    "vault.set_secret",
    "events.emit",
    "http.fetch",
    "fs.read",
    "fs.write",
    "fs.list",
    "fs.delete",
    "data.get",
    "data.set",
    "data.delete",
    "data.list",
];

fn args<T: DeserializeOwned>(op: &str, args: Value) -> Result<T> {
    serde_json::from_value(args)
        .map_err(|e| MorphError::host_error(format!("op `{op}`: invalid args: {e}")))
}

impl HostOp {
    /// Parses op `op` with `value` as its arguments. An unknown op is
    /// `unsupported`; arguments of the wrong shape are `host_error` naming
    /// the op.
    pub fn parse(op: &str, value: Value) -> Result<HostOp> {
        Ok(match op {
            "vault.get_secret" => {
                let a: KeyArgs = args(op, value)?;
                HostOp::GetSecret { key: a.key }
            }
            "vault.set_secret" => {
                let a: SetSecretArgs = args(op, value)?;
                HostOp::SetSecret {
                    key: a.key,
                    value: a.value,
                }
            }
            "events.emit" => {
                let a: EmitArgs = args(op, value)?;
                HostOp::Emit {
                    name: a.name,
                    payload: a.payload,
                }
            }
            "http.fetch" => {
                let a: FetchArgs = args(op, value)?;
                let body = match (a.body, a.body_base64) {
                    (Some(text), None) => Some(text.into_bytes()),
                    (None, Some(b64)) => Some(BASE64.decode(b64).map_err(|e| {
                        MorphError::host_error(format!("op `http.fetch`: body_base64: {e}"))
                    })?),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err(MorphError::host_error(
                            "op `http.fetch`: give `body` or `body_base64`, not both",
                        ));
                    }
                };
                HostOp::Fetch {
                    method: a.method,
                    url: a.url,
                    headers: a.headers,
                    body,
                }
            }
            "fs.read" => HostOp::FsRead {
                path: args::<PathArgs>(op, value)?.path,
            },
            "fs.write" => {
                let a: WriteArgs = args(op, value)?;
                HostOp::FsWrite {
                    path: a.path,
                    data: a.data,
                }
            }
            "fs.list" => HostOp::FsList {
                path: args::<ListPathArgs>(op, value)?.path,
            },
            "fs.delete" => HostOp::FsDelete {
                path: args::<PathArgs>(op, value)?.path,
            },
            "data.get" => HostOp::DataGet {
                key: args::<KeyArgs>(op, value)?.key,
            },
            "data.set" => {
                let a: SetDataArgs = args(op, value)?;
                HostOp::DataSet {
                    key: a.key,
                    value: a.value,
                }
            }
            "data.delete" => HostOp::DataDelete {
                key: args::<KeyArgs>(op, value)?.key,
            },
            "data.list" => HostOp::DataList {
                prefix: args::<ListArgs>(op, value)?.prefix,
            },
            _ => {
                return Err(MorphError::unsupported(format!(
                    "op `{op}` is not a host operation ({})",
                    OP_NAMES.join(", ")
                )));
            }
        })
    }

    /// The op name of ABI.md, e.g. `"vault.get_secret"`.
    pub fn name(&self) -> &'static str {
        match self {
            HostOp::GetSecret { .. } => "vault.get_secret",
            HostOp::SetSecret { .. } => "vault.set_secret",
            HostOp::Emit { .. } => "events.emit",
            HostOp::Fetch { .. } => "http.fetch",
            HostOp::FsRead { .. } => "fs.read",
            HostOp::FsWrite { .. } => "fs.write",
            HostOp::FsList { .. } => "fs.list",
            HostOp::FsDelete { .. } => "fs.delete",
            HostOp::DataGet { .. } => "data.get",
            HostOp::DataSet { .. } => "data.set",
            HostOp::DataDelete { .. } => "data.delete",
            HostOp::DataList { .. } => "data.list",
        }
    }

    /// The permission it needs: `http:read` for GET and HEAD requests,
    /// `http:write` for every other method.
    pub fn permission(&self) -> Permission {
        match self {
            HostOp::GetSecret { .. } => Permission::VaultRead,
            HostOp::SetSecret { .. } => Permission::VaultWrite,
            HostOp::Emit { .. } => Permission::EventEmit,
            HostOp::Fetch { method, .. } => {
                if method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") {
                    Permission::HttpRead
                } else {
                    Permission::HttpWrite
                }
            }
            HostOp::FsRead { .. } | HostOp::FsList { .. } => Permission::FsRead,
            HostOp::FsWrite { .. } | HostOp::FsDelete { .. } => Permission::FsWrite,
            HostOp::DataGet { .. } | HostOp::DataList { .. } => Permission::DataRead,
            HostOp::DataSet { .. } | HostOp::DataDelete { .. } => Permission::DataWrite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn every_op_name_parses_and_round_trips() {
        let samples = [
            ("vault.get_secret", json!({"key": "k"})),
            ("vault.set_secret", json!({"key": "k", "value": "v"})),
            ("events.emit", json!({"name": "e"})),
            ("http.fetch", json!({"method": "GET", "url": "https://x/"})),
            ("fs.read", json!({"path": "a"})),
            ("fs.write", json!({"path": "a", "data": ""})),
            ("fs.list", json!({})),
            ("fs.delete", json!({"path": "a"})),
            ("data.get", json!({"key": "k"})),
            ("data.set", json!({"key": "k", "value": 1})),
            ("data.delete", json!({"key": "k"})),
            ("data.list", json!({})),
        ];
        assert_eq!(samples.len(), OP_NAMES.len());
        for (name, args) in samples {
            let op = HostOp::parse(name, args).unwrap();
            assert_eq!(op.name(), name);
            assert!(OP_NAMES.contains(&op.name()));
        }
    }

    #[test]
    fn permissions_follow_the_abi_table() {
        let fetch = |method: &str| {
            HostOp::parse("http.fetch", json!({"method": method, "url": "https://x/"}))
                .unwrap()
                .permission()
        };
        assert_eq!(fetch("get"), Permission::HttpRead);
        assert_eq!(fetch("HEAD"), Permission::HttpRead);
        assert_eq!(fetch("POST"), Permission::HttpWrite);
        let op = HostOp::parse("fs.delete", json!({"path": "a"})).unwrap();
        assert_eq!(op.permission(), Permission::FsWrite);
    }

    #[test]
    fn bad_args_and_unknown_ops_are_refused_by_name() {
        let e = HostOp::parse("vault.get_secret", json!({"kee": "k"})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HostError);
        assert!(e.message().contains("vault.get_secret"), "{e}");
        let e = HostOp::parse(
            "http.fetch",
            json!({"method": "POST", "url": "https://x/", "body": "a", "body_base64": "YQ=="}),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HostError);
        let e = HostOp::parse("nope.op", json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }
}
