//! A chain of vaults: the first that has a secret answers.

use std::sync::Arc;

use super::providers::VaultProvider;
use crate::error::{MorphError, Result};

/// Vaults read in order (`get` returns the first secret found), and the
/// one vault `set` writes to: by default the first, or the one given to
/// [`writing_to`](Self::writing_to), so a write lands where a later read
/// finds it (never in a throw-away layer of the chain).
pub struct VaultChain {
    readers: Vec<Arc<dyn VaultProvider>>,
    writer: Option<Arc<dyn VaultProvider>>,
}

impl VaultChain {
    /// Reads `readers` in order; writes go to the first of them.
    pub fn new(readers: Vec<Arc<dyn VaultProvider>>) -> Self {
        let writer = readers.first().cloned();
        VaultChain { readers, writer }
    }

    /// Writes go to `writer` (which should also be one of the readers, so
    /// what is written can be read back).
    pub fn writing_to(mut self, writer: Arc<dyn VaultProvider>) -> Self {
        self.writer = Some(writer);
        self
    }
}

impl VaultProvider for VaultChain {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        for vault in &self.readers {
            if let Some(secret) = vault.get(extension_id, key)? {
                return Ok(Some(secret));
            }
        }
        Ok(None)
    }

    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()> {
        match &self.writer {
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
        let chain = VaultChain::new(vec![first.clone(), second.clone()]);
        assert_eq!(chain.get("x", "a").unwrap().as_deref(), Some("from-second"));
        assert_eq!(chain.get("x", "b").unwrap().as_deref(), Some("from-first"));
        chain.set("x", "c", "new").unwrap();
        assert_eq!(first.get("x", "c").unwrap().as_deref(), Some("new"));
        assert_eq!(chain.get("y", "a").unwrap(), None);
        let chain = VaultChain::new(vec![first, second.clone()]).writing_to(second.clone());
        chain.set("x", "d", "kept").unwrap();
        assert_eq!(second.get("x", "d").unwrap().as_deref(), Some("kept"));
        assert_eq!(chain.get("x", "d").unwrap().as_deref(), Some("kept"));
    }
}
