//! Read-only secrets from the environment.

use morph_core::host::VaultProvider;
use morph_core::{MorphError, Result};

/// Read-only secrets from environment variables named
/// `MORPH_SECRET_<EXTENSION>_<KEY>`, where `<EXTENSION>` and `<KEY>` are
/// upper-cased with every character other than A-Z and 0-9 turned into
/// `_`: the secret `api-token` of `com.example.tracker` is
/// `MORPH_SECRET_COM_EXAMPLE_TRACKER_API_TOKEN`. Setting a secret is
/// `unsupported`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvVault;

impl EnvVault {
    /// The variable holding `key` of `extension_id`.
    pub fn variable(extension_id: &str, key: &str) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("MORPH_SECRET_{}_{}", clean(extension_id), clean(key))
    }
}

impl VaultProvider for EnvVault {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        Ok(std::env::var(Self::variable(extension_id, key)).ok())
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
            EnvVault::variable("com.example.tracker", "api-token"),
            "MORPH_SECRET_COM_EXAMPLE_TRACKER_API_TOKEN"
        );
    }
}
