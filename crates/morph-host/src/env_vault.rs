//! Read-only secrets from the environment.

use morph_core::host::VaultProvider;
use morph_core::{MorphError, Result};

/// Read-only secrets from environment variables named
/// `MORPH_SECRET_<EXTENSION>__<KEY>`: the extension id upper-cased with
/// each `.` written `_`, two underscores, then the key upper-cased. The
/// secret `api_token` of `com.example.tracker` is
/// `MORPH_SECRET_COM_EXAMPLE_TRACKER__API_TOKEN`.
///
/// The mapping is one-to-one, so no extension can read another's variable:
/// it serves only extension ids made of `a-z 0-9 .` (no `..`, no `.` at
/// either end) and keys made of `a-z 0-9 _` (no `__`, no `_` at either
/// end). Other names are never looked up here (use the vault file for
/// them). Setting a secret is `unsupported`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvVault;

fn id_maps(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
        && !id.contains("..")
        && !id.starts_with('.')
        && !id.ends_with('.')
}

fn key_maps(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !key.contains("__")
        && !key.starts_with('_')
        && !key.ends_with('_')
}

impl EnvVault {
    /// The variable holding `key` of `extension_id`, or `None` when the
    /// names fall outside the one-to-one mapping (see [`EnvVault`]).
    pub fn variable(extension_id: &str, key: &str) -> Option<String> {
        if !id_maps(extension_id) || !key_maps(key) {
            return None;
        }
        Some(format!(
            "MORPH_SECRET_{}__{}",
            extension_id.replace('.', "_").to_ascii_uppercase(),
            key.to_ascii_uppercase()
        ))
    }
}

impl VaultProvider for EnvVault {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        match Self::variable(extension_id, key) {
            Some(name) => Ok(std::env::var(name).ok()),
            None => {
                tracing::debug!(
                    extension = extension_id,
                    "the environment vault does not serve this key (names outside a-z, 0-9, `.` in ids and `_` in keys)"
                );
                Ok(None)
            }
        }
    }

    fn set(&self, _extension_id: &str, key: &str, _value: &str) -> Result<()> {
        Err(MorphError::unsupported(format!(
            "op `vault.set_secret`: `{key}`: the environment vault is read-only"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_are_predictable() {
        assert_eq!(
            EnvVault::variable("com.example.tracker", "api_token").as_deref(),
            Some("MORPH_SECRET_COM_EXAMPLE_TRACKER__API_TOKEN")
        );
    }

    #[test]
    fn no_two_names_share_a_variable() {
        // The collision of the old mapping: `acme` + `evil_token` and
        // `acme.evil` + `token` were both MORPH_SECRET_ACME_EVIL_TOKEN.
        let a = EnvVault::variable("acme", "evil_token");
        let b = EnvVault::variable("acme.evil", "token");
        assert!(a.is_some() && b.is_some());
        assert_ne!(a, b);
        // Names the mapping cannot keep apart are not served at all.
        for (id, key) in [
            ("acme-evil", "token"),
            ("acme_evil", "token"),
            ("acme", "Token"),
            ("acme", "evil__token"),
            ("acme", "_token"),
            ("acme", "token-2"),
            ("a..b", "token"),
        ] {
            assert_eq!(EnvVault::variable(id, key), None, "{id} {key}");
        }
        // Exhaustively over a small alphabet: the mapping is one-to-one.
        let ids = ["a", "b", "a.b", "ab", "a.b.c", "ab.c", "a.bc", "a1"];
        let keys = ["a", "b", "a_b", "ab", "a_b_c", "ab_c", "a_bc", "b_c", "1"];
        let mut seen = std::collections::BTreeMap::new();
        for id in ids {
            for key in keys {
                let name = EnvVault::variable(id, key).unwrap();
                if let Some(other) = seen.insert(name.clone(), (id, key)) {
                    panic!("{name}: {other:?} and {:?}", (id, key));
                }
            }
        }
    }
}
