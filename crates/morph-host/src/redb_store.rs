//! The embedded default data store: one redb database file, a key/value
//! namespace per extension, JSON values. Every write is its own committed
//! transaction (crash-safe: redb commits atomically and durably).

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};
use serde_json::Value;

use morph_core::host::DataStore;
use morph_core::{MorphError, Result};

/// Keys are `<extension_id>\0<key>`; extension ids cannot contain `\0`.
const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("extension_data");

/// A [`DataStore`] in a redb file.
pub struct RedbDataStore {
    db: Database,
}

impl std::fmt::Debug for RedbDataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbDataStore").finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> MorphError {
    MorphError::io_error(format!("data store: {what}: {e}"))
}

fn full_key(extension_id: &str, key: &str) -> String {
    format!("{extension_id}\0{key}")
}

impl RedbDataStore {
    /// Opens (or creates) the database at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed(&dir.display().to_string(), e))?;
        }
        let db = Database::create(path).map_err(|e| failed(&path.display().to_string(), e))?;
        let tx = db.begin_write().map_err(|e| failed("begin", e))?;
        tx.open_table(DATA).map_err(|e| failed("open table", e))?;
        tx.commit().map_err(|e| failed("commit", e))?;
        Ok(RedbDataStore { db })
    }

    fn write(&self, f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<()>) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| failed("begin", e))?;
        {
            let mut table = tx.open_table(DATA).map_err(|e| failed("open table", e))?;
            f(&mut table)?;
        }
        tx.commit().map_err(|e| failed("commit", e))
    }
}

impl DataStore for RedbDataStore {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<Value>> {
        let tx = self.db.begin_read().map_err(|e| failed("begin", e))?;
        let table = tx.open_table(DATA).map_err(|e| failed("open table", e))?;
        let found = table
            .get(full_key(extension_id, key).as_str())
            .map_err(|e| failed("get", e))?;
        match found {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes.value())
                .map(Some)
                .map_err(|e| failed(&format!("value of `{key}`"), e)),
        }
    }

    fn set(&self, extension_id: &str, key: &str, value: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| failed("encode", e))?;
        self.write(|table| {
            table
                .insert(full_key(extension_id, key).as_str(), bytes.as_slice())
                .map_err(|e| failed("insert", e))?;
            Ok(())
        })
    }

    fn delete(&self, extension_id: &str, key: &str) -> Result<()> {
        self.write(|table| {
            table
                .remove(full_key(extension_id, key).as_str())
                .map_err(|e| failed("remove", e))?;
            Ok(())
        })
    }

    fn list(&self, extension_id: &str, prefix: &str) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(|e| failed("begin", e))?;
        let table = tx.open_table(DATA).map_err(|e| failed("open table", e))?;
        let start = full_key(extension_id, prefix);
        let namespace = format!("{extension_id}\0");
        let mut keys = Vec::new();
        for entry in table
            .range(start.as_str()..)
            .map_err(|e| failed("range", e))?
        {
            let (k, _) = entry.map_err(|e| failed("range", e))?;
            let k = k.value();
            match k.strip_prefix(namespace.as_str()) {
                Some(key) if key.starts_with(prefix) => keys.push(key.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_persist_across_reopen_and_namespaces_stay_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data/morph.redb");
        {
            let store = RedbDataStore::open(&path).unwrap();
            store.set("a", "issue/1", &json!({"id": 1})).unwrap();
            store.set("a", "issue/2", &json!(2)).unwrap();
            store.set("a", "other", &json!(3)).unwrap();
            store.set("ab", "issue/9", &json!(9)).unwrap();
            store.delete("a", "issue/2").unwrap();
        }
        let store = RedbDataStore::open(&path).unwrap();
        assert_eq!(store.get("a", "issue/1").unwrap(), Some(json!({"id": 1})));
        assert_eq!(store.get("b", "issue/1").unwrap(), None);
        assert_eq!(store.list("a", "issue/").unwrap(), vec!["issue/1"]);
        assert_eq!(store.list("a", "").unwrap(), vec!["issue/1", "other"]);
        assert_eq!(store.list("ab", "").unwrap(), vec!["issue/9"]);
    }
}
