//! The embedded default audit sink for hosts that keep a log: JSON lines
//! appended to a file (one [`AuditRecord`] per line).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use morph_core::host::{AuditRecord, AuditSink};
use morph_core::{MorphError, Result};

/// Appends audit records to a JSON-lines file.
#[derive(Debug)]
pub struct JsonLinesAudit {
    path: PathBuf,
    file: Mutex<File>,
}

impl JsonLinesAudit {
    /// Opens `path` for appending, creating it and its directory.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                MorphError::io_error(format!("audit log directory {}: {e}", dir.display()))
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| MorphError::io_error(format!("audit log {}: {e}", path.display())))?;
        Ok(JsonLinesAudit {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// The last `n` records of the log at `path` (malformed lines are
    /// skipped with a warning).
    pub fn tail(path: &Path, n: usize) -> Result<Vec<AuditRecord>> {
        let file = File::open(path)
            .map_err(|e| MorphError::not_found(format!("audit log {}: {e}", path.display())))?;
        let mut last = std::collections::VecDeque::with_capacity(n.min(10_000));
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| MorphError::io_error(format!("audit log: {e}")))?;
            match serde_json::from_str::<AuditRecord>(&line) {
                Ok(record) => {
                    if last.len() == n {
                        last.pop_front();
                    }
                    if n > 0 {
                        last.push_back(record);
                    }
                }
                Err(e) => {
                    tracing::warn!(line = i + 1, error = %morph_core::text::loggable(&e), "skipping a malformed audit line")
                }
            }
        }
        Ok(last.into())
    }
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, record: &AuditRecord) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit record not encodable");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write per record keeps lines whole under O_APPEND.
        if let Err(e) = file.write_all(&line) {
            tracing::error!(path = %self.path.display(), error = %e, "audit record not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: &str) -> AuditRecord {
        AuditRecord {
            time_ms: 1,
            extension_id: "x".into(),
            action: "a".into(),
            request_id: "r".into(),
            op: op.into(),
            allowed: true,
            outcome: "ok".into(),
            reason: None,
            duration_us: 5,
            dropped: 0,
            unenforced: Vec::new(),
        }
    }

    #[test]
    fn appends_lines_and_tails_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("logs/audit.jsonl");
        let sink = JsonLinesAudit::open(&path).unwrap();
        for op in ["one", "two", "three"] {
            sink.record(&record(op));
        }
        drop(sink);
        let sink = JsonLinesAudit::open(&path).unwrap();
        sink.record(&record("four"));
        let ops: Vec<String> = JsonLinesAudit::tail(&path, 2)
            .unwrap()
            .into_iter()
            .map(|r| r.op)
            .collect();
        assert_eq!(ops, ["three", "four"]);
        assert_eq!(JsonLinesAudit::tail(&path, 10).unwrap().len(), 4);
    }
}
