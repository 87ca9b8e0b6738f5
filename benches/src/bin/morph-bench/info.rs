//! What the report says about how the numbers were taken: the mode, the
//! date, the machine, the compiler (recorded when the benchmarks run, in
//! `run.json` beside the results, so `--report-only` states the run's facts
//! and not the ones of the moment) and the engine versions (read from the
//! workspace's `Cargo.lock` when the report is written).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Facts about one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Whether criterion ran with `--quick`; `None` when unknown (a report
    /// regenerated without a record of the run).
    pub quick: Option<bool>,
    /// The bench targets this run ran (all of them unless `--only`).
    pub targets: Vec<String>,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// CPU model (`model name` of `/proc/cpuinfo`).
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Total memory in KiB (`MemTotal` of `/proc/meminfo`).
    pub mem_total_kib: Option<u64>,
    /// `rustc -V`.
    pub rustc: String,
}

impl RunInfo {
    /// Collects the facts of this machine now.
    pub fn collect(quick: Option<bool>, targets: Vec<String>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cores = match cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
        {
            0 => std::thread::available_parallelism().map_or(0, |n| n.get()),
            n => n,
        };
        Self {
            quick,
            targets,
            date: command_output("date", &["-u", "+%F"]).unwrap_or_else(|| "unknown date".into()),
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into()),
            cores,
            mem_total_kib: mem_total_kib(&meminfo),
            rustc: command_output("rustc", &["-V"]).unwrap_or_else(|| "rustc (unknown)".into()),
        }
    }

    /// Writes the record as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads the record of the last run, or, when there is none (or it
    /// cannot be read), collects this machine's facts with an unknown mode.
    pub fn load_or_collect(path: &Path) -> Self {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| Self::collect(None, Vec::new()))
    }

    /// "23.4 GiB" from `MemTotal`, or `None` when unknown.
    pub fn memory(&self) -> Option<String> {
        self.mem_total_kib
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
    }
}

/// Trimmed standard output of a command that succeeded, else `None`.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The first `model name` of `/proc/cpuinfo`'s text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// `MemTotal` (KiB) from `/proc/meminfo`'s text.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Engines whose versions the report states, as named in `Cargo.lock`.
pub const ENGINE_PACKAGES: [&str; 4] = ["wasmtime", "wasmer", "wasmi", "wasm3x"];

/// `(package, versions)` for each of [`ENGINE_PACKAGES`] found in the text of
/// a `Cargo.lock` (a package may be locked at several versions). A simple
/// line scan: `name = "…"` followed by `version = "…"` in each `[[package]]`.
pub fn engine_versions(cargo_lock: &str) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = ENGINE_PACKAGES
        .iter()
        .map(|name| ((*name).to_owned(), Vec::new()))
        .collect();
    let mut current: Option<String> = None;
    for line in cargo_lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            current = None;
        } else if let Some(name) = quoted_value(line, "name") {
            current = Some(name.to_owned());
        } else if let (Some(version), Some(name)) = (quoted_value(line, "version"), &current)
            && let Some((_, versions)) = found.iter_mut().find(|(n, _)| n == name)
        {
            versions.push(version.to_owned());
        }
    }
    found.retain(|(_, versions)| !versions.is_empty());
    found
}

/// The string of a `key = "value"` line.
fn quoted_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    rest.trim().strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_memory() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\nprocessor\t: 1\nmodel name\t: Example CPU @ 2.0GHz\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Example CPU @ 2.0GHz"));
        assert_eq!(
            mem_total_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000)
        );
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn reads_engine_versions_from_a_lockfile() {
        let lock = r#"
[[package]]
name = "wasmtime"
version = "48.0.8"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "wasmtime-environ",
]

[[package]]
name = "wasmtime-environ"
version = "48.0.8"

[[package]]
name = "wasmi"
version = "1.0.0"

[[package]]
name = "wasmi"
version = "2.0.0"
"#;
        assert_eq!(
            engine_versions(lock),
            vec![
                ("wasmtime".to_owned(), vec!["48.0.8".to_owned()]),
                (
                    "wasmi".to_owned(),
                    vec!["1.0.0".to_owned(), "2.0.0".to_owned()]
                ),
            ]
        );
    }
}
