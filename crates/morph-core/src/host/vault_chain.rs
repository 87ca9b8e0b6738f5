//! A chain of vaults: the first that has a secret answers.

use std::sync::Arc;

use super::providers::VaultProvider;
use crate::error::{MorphError, Result};

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
