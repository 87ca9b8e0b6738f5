//! Secrets from the environment, and a chain of vaults.

use std::sync::Arc;

use super::providers::VaultProvider;
use crate::error::{MorphError, Result};

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

/// Vaults tried in order: `get` returns the first secret found, `set`
/// writes to the first vault.
pub struct VaultChain(pub Vec<Arc<dyn VaultProvider>>);

impl VaultProvider for VaultChain {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        for vault in &self.0 {
            if let Some(secret) = vault.get(extension_id, key)? {
                return Ok(Some(secret));
            }
        }
        Ok(None)
    }

    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()> {
        match self.0.first() {
            Some(vault) => vault.set(extension_id, key, value),
            None => Err(MorphError::unsupported(
                "op `vault.set_secret`: no vault configured",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MemoryVault;

    #[test]
    fn variable_names_are_predictable() {
        assert_eq!(
            EnvVault::variable("com.example.tracker", "api-token"),
            "MORPH_SECRET_COM_EXAMPLE_TRACKER_API_TOKEN"
        );
    }

    #[test]
    fn a_chain_reads_in_order_and_writes_first() {
        let first = Arc::new(MemoryVault::new());
        let second = Arc::new(MemoryVault::new());
        second.set("x", "a", "from-second").unwrap();
        second.set("x", "b", "shadowed").unwrap();
        first.set("x", "b", "from-first").unwrap();
        let chain = VaultChain(vec![first.clone(), second]);
        assert_eq!(chain.get("x", "a").unwrap().as_deref(), Some("from-second"));
        assert_eq!(chain.get("x", "b").unwrap().as_deref(), Some("from-first"));
        chain.set("x", "c", "new").unwrap();
        assert_eq!(first.get("x", "c").unwrap().as_deref(), Some("new"));
        assert_eq!(chain.get("y", "a").unwrap(), None);
    }
}
