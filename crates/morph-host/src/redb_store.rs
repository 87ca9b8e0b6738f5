//! The embedded default data store: one redb database file, a key/value
//! namespace per extension, JSON values. Every write is its own committed
//! transaction (crash-safe: redb commits atomically and durably).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use morph_core::host::{DataQuota, DataStore, DataUsage};
use morph_core::{MorphError, Result};

/// Keys are `<extension_id>\0<key>`; extension ids cannot contain `\0`.
const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("extension_data");

/// Per extension id: its [`DataUsage`] (keys, then bytes, each a
/// little-endian u64), kept in the same transaction as every write. A
/// namespace without a row (written before the row existed) is measured
/// once, at its next write.
const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("extension_data_usage");

type Table<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// The usage of `extension_id`'s namespace, from its row or measured.
fn usage_of(data: &Table<'_>, usage: &Table<'_>, extension_id: &str) -> Result<DataUsage> {
    if let Some(row) = usage.get(extension_id).map_err(|e| failed("usage", e))? {
        let row = row.value();
        if let (Some(keys), Some(bytes)) = (row.get(..8), row.get(8..16)) {
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
            return Ok(DataUsage {
                keys: word(keys),
                bytes: word(bytes),
            });
        }
    }
    let namespace = format!("{extension_id}\0");
    let mut measured = DataUsage::default();
    for entry in data
        .range(namespace.as_str()..)
        .map_err(|e| failed("range", e))?
    {
        let (k, v) = entry.map_err(|e| failed("range", e))?;
        match k.value().strip_prefix(namespace.as_str()) {
            Some(key) => measured.add(key, v.value().len()),
            None => break,
        }
    }
    Ok(measured)
}

fn store_usage(usage: &mut Table<'_>, extension_id: &str, u: &DataUsage) -> Result<()> {
    let mut row = [0u8; 16];
    row[..8].copy_from_slice(&u.keys.to_le_bytes());
    row[8..].copy_from_slice(&u.bytes.to_le_bytes());
    usage
        .insert(extension_id, row.as_slice())
        .map_err(|e| failed("usage", e))?;
    Ok(())
}

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

    /// Runs `f` on the data and usage tables in one write transaction,
    /// committed only when `f` succeeds.
    fn write(&self, f: impl FnOnce(&mut Table<'_>, &mut Table<'_>) -> Result<()>) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| failed("begin", e))?;
        {
            let mut data = tx.open_table(DATA).map_err(|e| failed("open table", e))?;
            let mut usage = tx.open_table(USAGE).map_err(|e| failed("open table", e))?;
            f(&mut data, &mut usage)?;
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
        self.set_within(extension_id, key, value, &DataQuota::UNLIMITED)
    }

    fn set_within(
        &self,
        extension_id: &str,
        key: &str,
        value: &Value,
        quota: &DataQuota,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| failed("encode", e))?;
        let full = full_key(extension_id, key);
        self.write(|data, usage| {
            let mut used = usage_of(data, usage, extension_id)?;
            let old = data
                .get(full.as_str())
                .map_err(|e| failed("get", e))?
                .map(|v| v.value().len());
            if let Some(old) = old {
                used.remove(key, old);
            }
            used.add(key, bytes.len());
            quota.check(extension_id, &used)?;
            data.insert(full.as_str(), bytes.as_slice())
                .map_err(|e| failed("insert", e))?;
            store_usage(usage, extension_id, &used)
        })
    }

    fn delete(&self, extension_id: &str, key: &str) -> Result<()> {
        let full = full_key(extension_id, key);
        self.write(|data, usage| {
            let mut used = usage_of(data, usage, extension_id)?;
            let old = data
                .remove(full.as_str())
                .map_err(|e| failed("remove", e))?
                .map(|v| v.value().len());
            if let Some(old) = old {
                used.remove(key, old);
                store_usage(usage, extension_id, &used)?;
            }
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

    #[test]
    fn a_namespace_is_held_to_its_quota_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("morph.redb");
        let quota = DataQuota {
            max_keys: 2,
            max_bytes: 100,
        };
        {
            let store = RedbDataStore::open(&path).unwrap();
            store.set_within("a", "k1", &json!(1), &quota).unwrap();
            store.set_within("a", "k2", &json!(2), &quota).unwrap();
            // Overwriting an existing key adds no key.
            store.set_within("a", "k2", &json!(3), &quota).unwrap();
            let e = store.set_within("a", "k3", &json!(4), &quota).unwrap_err();
            assert_eq!(e.kind(), morph_core::ErrorKind::QuotaExceeded, "{e}");
            assert!(e.message().contains("max_data_keys = 2"), "{e}");
            assert_eq!(store.get("a", "k3").unwrap(), None, "nothing stored");
            // Another namespace has its own.
            store.set_within("b", "k3", &json!(4), &quota).unwrap();
        }
        let store = RedbDataStore::open(&path).unwrap();
        let e = store.set_within("a", "k3", &json!(4), &quota).unwrap_err();
        assert_eq!(e.kind(), morph_core::ErrorKind::QuotaExceeded);
        store.delete("a", "k1").unwrap();
        store.set_within("a", "k3", &json!(4), &quota).unwrap();
        let big = json!("x".repeat(200));
        let e = store.set_within("a", "k2", &big, &quota).unwrap_err();
        assert!(e.message().contains("max_data_bytes = 100"), "{e}");
    }
}
