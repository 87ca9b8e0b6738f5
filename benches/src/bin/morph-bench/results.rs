//! Reading benchmark results: criterion's `estimates.json` files and the
//! memory benchmark's `memory.json`, plus the ratio math the report, the
//! plot and the baseline comparison share.
//!
//! Criterion keeps one directory per benchmark,
//! `<criterion dir>/<group>/<function>/<run>/estimates.json`, where `<run>`
//! is `new` for the latest run or the name given to `--save-baseline`. Only
//! the groups and functions listed here are read; the names use
//! `[a-z0-9_-]` only, so criterion keeps them unchanged as directory names.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// The `native` function of the kernel groups: the same kernel compiled as
/// plain Rust, the reference every kernel ratio divides by.
pub const NATIVE: &str = "native";

/// The reference backend of the "vs wasmtime" ratios.
pub const WASMTIME: &str = "wasmtime";

/// Wasm backends in display order (the columns of every backend table).
pub const BACKENDS: [&str; 5] = ["wasmtime", "wasmtime-pulley", "wasmer", "wasmi", "wasm3"];

/// Kernel groups in display order.
pub const KERNELS: [&str; 5] = [
    "kernel_fib",
    "kernel_sha256",
    "kernel_json",
    "kernel_loop",
    "kernel_memcpy",
];

/// Per-call operation groups in display order.
pub const OPERATIONS: [&str; 6] = [
    "compile_cold",
    "load_cached",
    "noop_execute",
    "host_call_small",
    "host_call_64k",
    "instantiate",
];

/// The criterion group of the layer-by-layer breakdown.
pub const LAYERS_GROUP: &str = "layers";

/// Functions of the `layers` group in display order, with their labels.
pub const LAYERS: [(&str, &str); 10] = [
    (
        "raw_wasmtime",
        "raw wasmtime: InstancePre, same ABI steps by hand, default allocator",
    ),
    (
        "raw_wasmtime_pooling",
        "raw wasmtime: InstancePre + pooling allocator",
    ),
    ("raw_wasmer", "raw wasmer: same ABI steps by hand"),
    (
        "engine_run_wasmtime",
        "Morph engine glue only on wasmtime: PreparedExtension::run, no runtime layers, no hop",
    ),
    (
        "inline_wasmtime",
        "Morph execute on wasmtime, inline (all layers but the hop)",
    ),
    (
        "execute_wasmtime",
        "Morph execute on wasmtime (all layers and the hop)",
    ),
    (
        "engine_run_wasmer",
        "Morph engine glue only on wasmer: PreparedExtension::run, no runtime layers, no hop",
    ),
    (
        "inline_wasmer",
        "Morph execute on wasmer, inline (all layers but the hop)",
    ),
    (
        "execute_wasmer",
        "Morph execute on wasmer (all layers and the hop)",
    ),
    ("hop", "execution-thread hop alone"),
];

/// Median times (nanoseconds) of one criterion run, by group and function.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Measurements {
    /// `(group, function)` → median in nanoseconds.
    medians: BTreeMap<(String, String), f64>,
}

impl Measurements {
    /// Reads every known benchmark's `<run>/estimates.json` under
    /// `criterion_dir` (`run` is `new` or a baseline name). Benchmarks
    /// without a file are left out; an unreadable or malformed file is an
    /// error naming the file.
    pub fn load(criterion_dir: &Path, run: &str) -> Result<Self> {
        let mut medians = BTreeMap::new();
        for (group, function) in known_benchmarks() {
            let path = criterion_dir
                .join(group)
                .join(function)
                .join(run)
                .join("estimates.json");
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", path.display()));
                }
            };
            let median = parse_median(&text)
                .with_context(|| format!("reading the median of {}", path.display()))?;
            medians.insert((group.to_owned(), function.to_owned()), median);
        }
        Ok(Self { medians })
    }

    /// Records one median (used by tests and by nothing else).
    #[cfg(test)]
    pub fn insert(&mut self, group: &str, function: &str, median_ns: f64) {
        self.medians
            .insert((group.to_owned(), function.to_owned()), median_ns);
    }

    /// The median of `group/function` in nanoseconds, if measured.
    pub fn get(&self, group: &str, function: &str) -> Option<f64> {
        self.medians
            .get(&(group.to_owned(), function.to_owned()))
            .copied()
    }

    /// `group/function` divided by `group/reference`, if both were measured.
    pub fn ratio(&self, group: &str, function: &str, reference: &str) -> Option<f64> {
        ratio(self.get(group, function)?, self.get(group, reference)?)
    }

    /// Whether no benchmark result was found at all.
    pub fn is_empty(&self) -> bool {
        self.medians.is_empty()
    }

    /// The function the layer ratios divide by: `raw_wasmtime_pooling`, or
    /// `raw_wasmtime` when the pooling variant was not measured.
    pub fn layers_reference(&self) -> Option<&'static str> {
        ["raw_wasmtime_pooling", "raw_wasmtime"]
            .into_iter()
            .find(|f| self.get(LAYERS_GROUP, f).is_some())
    }

    /// Every ratio the report shows, labelled, for the baseline comparison:
    /// kernels vs native, kernels vs wasmtime, operations vs wasmtime and
    /// layers vs the raw wasmtime reference (no self-ratios, no
    /// reciprocals).
    pub fn all_ratios(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let mut add = |group: &str, function: &str, reference: &str| {
            if function != reference
                && let Some(r) = self.ratio(group, function, reference)
            {
                out.insert(format!("{group}: {function} / {reference}"), r);
            }
        };
        for kernel in KERNELS {
            for backend in BACKENDS {
                add(kernel, backend, NATIVE);
            }
            // Not native / wasmtime: the reciprocal of wasmtime / native.
            for backend in BACKENDS {
                add(kernel, backend, WASMTIME);
            }
        }
        for op in OPERATIONS {
            for backend in BACKENDS {
                add(op, backend, WASMTIME);
            }
        }
        if let Some(reference) = self.layers_reference() {
            for (function, _) in LAYERS {
                add(LAYERS_GROUP, function, reference);
            }
        }
        out
    }
}

/// Every `(group, function)` pair this command knows about.
fn known_benchmarks() -> impl Iterator<Item = (&'static str, &'static str)> {
    let kernels = KERNELS.into_iter().flat_map(|group| {
        std::iter::once(NATIVE)
            .chain(BACKENDS)
            .map(move |function| (group, function))
    });
    let operations = OPERATIONS
        .into_iter()
        .flat_map(|group| BACKENDS.into_iter().map(move |function| (group, function)));
    let layers = LAYERS
        .into_iter()
        .map(|(function, _)| (LAYERS_GROUP, function));
    kernels.chain(operations).chain(layers)
}

/// `median.point_estimate` of a criterion `estimates.json` (nanoseconds).
fn parse_median(text: &str) -> Result<f64> {
    let json: Value = serde_json::from_str(text).context("not JSON")?;
    let median = json
        .pointer("/median/point_estimate")
        .and_then(Value::as_f64)
        .context("no number at median.point_estimate")?;
    anyhow::ensure!(
        median.is_finite() && median > 0.0,
        "median {median} is not a positive time"
    );
    Ok(median)
}

/// `value / reference`, or `None` unless both are positive and finite.
pub fn ratio(value: f64, reference: f64) -> Option<f64> {
    let r = value / reference;
    (value > 0.0 && reference > 0.0 && r.is_finite()).then_some(r)
}

/// Geometric mean of positive values; `None` for an empty input.
pub fn geometric_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| *v <= 0.0 || !v.is_finite()) {
        return None;
    }
    let log_sum: f64 = values.iter().map(|v| v.ln()).sum();
    Some((log_sum / values.len() as f64).exp())
}

/// One backend's line of `memory.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    /// Backend name, as written by the memory benchmark.
    pub backend: String,
    /// Growth of the resident set while `instances` instances were alive.
    pub rss_delta_bytes: Option<f64>,
    /// `rss_delta_bytes / instances`.
    pub per_instance_bytes: Option<f64>,
}

/// The memory benchmark's results (`memory.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// How many instances were kept alive at once.
    pub instances: Option<u64>,
    /// One row per backend: [`BACKENDS`] order first, then others by name.
    pub rows: Vec<MemoryRow>,
}

impl Memory {
    /// Reads `memory.json`; `Ok(None)` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::parse(&text)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// Parses the text of `memory.json`:
    /// `{"instances": N, "backends": {"<name>": {"rss_delta_bytes": B,
    /// "per_instance_bytes": B}, ...}}`. Missing numbers become `None`.
    pub fn parse(text: &str) -> Result<Self> {
        let json: Value = serde_json::from_str(text).context("not JSON")?;
        let instances = json.get("instances").and_then(Value::as_u64);
        let backends = json
            .get("backends")
            .and_then(Value::as_object)
            .context("no `backends` object")?;
        let mut rows: Vec<MemoryRow> = backends
            .iter()
            .map(|(name, entry)| MemoryRow {
                backend: name.clone(),
                rss_delta_bytes: entry.get("rss_delta_bytes").and_then(Value::as_f64),
                per_instance_bytes: entry.get("per_instance_bytes").and_then(Value::as_f64),
            })
            .collect();
        let rank = |name: &str| {
            BACKENDS
                .iter()
                .position(|b| *b == name)
                .unwrap_or(BACKENDS.len())
        };
        rows.sort_by(|a, b| (rank(&a.backend), &a.backend).cmp(&(rank(&b.backend), &b.backend)));
        Ok(Self { instances, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_median_and_ignores_other_fields() {
        let text = r#"{"mean":{"point_estimate":9.0},"median":{"confidence_interval":{},"point_estimate":1234.5}}"#;
        assert_eq!(parse_median(text).ok(), Some(1234.5));
        assert!(parse_median(r#"{"mean":{"point_estimate":9.0}}"#).is_err());
        assert!(parse_median("not json").is_err());
        assert!(parse_median(r#"{"median":{"point_estimate":0}}"#).is_err());
    }

    #[test]
    fn ratio_is_time_over_reference() {
        assert_eq!(ratio(300.0, 100.0), Some(3.0));
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(1.0, 0.0), None);
        let mut m = Measurements::default();
        m.insert("kernel_fib", "native", 100.0);
        m.insert("kernel_fib", "wasmi", 2500.0);
        m.insert("kernel_fib", "wasmtime", 150.0);
        assert_eq!(m.ratio("kernel_fib", "wasmi", NATIVE), Some(25.0));
        assert_eq!(m.ratio("kernel_fib", "wasm3", NATIVE), None);
        let r = m.ratio("kernel_fib", NATIVE, WASMTIME);
        assert!(r.is_some_and(|r| (r - 2.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn geometric_mean_of_ratios() {
        let g = geometric_mean(&[2.0, 8.0]);
        assert!(g.is_some_and(|g| (g - 4.0).abs() < 1e-12));
        assert_eq!(geometric_mean(&[]), None);
        assert_eq!(geometric_mean(&[1.0, -1.0]), None);
    }

    #[test]
    fn layers_reference_prefers_pooling() {
        let mut m = Measurements::default();
        assert_eq!(m.layers_reference(), None);
        m.insert(LAYERS_GROUP, "raw_wasmtime", 10.0);
        assert_eq!(m.layers_reference(), Some("raw_wasmtime"));
        m.insert(LAYERS_GROUP, "raw_wasmtime_pooling", 5.0);
        assert_eq!(m.layers_reference(), Some("raw_wasmtime_pooling"));
    }

    #[test]
    fn all_ratios_skips_self_ratios_and_reciprocals() {
        let mut m = Measurements::default();
        m.insert("kernel_fib", "native", 100.0);
        m.insert("kernel_fib", "wasmtime", 200.0);
        m.insert("kernel_fib", "wasmi", 2000.0);
        let r = m.all_ratios();
        assert_eq!(r.get("kernel_fib: wasmtime / native"), Some(&2.0));
        assert_eq!(r.get("kernel_fib: wasmi / native"), Some(&20.0));
        assert_eq!(r.get("kernel_fib: wasmi / wasmtime"), Some(&10.0));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn memory_rows_follow_backend_order() -> Result<()> {
        let m = Memory::parse(
            r#"{"instances": 100, "backends": {
                "zeta": {"rss_delta_bytes": 1, "per_instance_bytes": 0.01},
                "wasmi": {"rss_delta_bytes": 2048, "per_instance_bytes": 20.48},
                "wasmtime": {"rss_delta_bytes": 123, "per_instance_bytes": 1.23}}}"#,
        )?;
        assert_eq!(m.instances, Some(100));
        let names: Vec<&str> = m.rows.iter().map(|r| r.backend.as_str()).collect();
        assert_eq!(names, ["wasmtime", "wasmi", "zeta"]);
        assert_eq!(m.rows[0].per_instance_bytes, Some(1.23));
        assert!(Memory::parse(r#"{"instances": 1}"#).is_err());
        Ok(())
    }

    #[test]
    fn loads_a_criterion_tree() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("morph-bench-results-{}", std::process::id()));
        let new = dir.join("kernel_fib").join("wasmi").join("new");
        std::fs::create_dir_all(&new)?;
        std::fs::write(
            new.join("estimates.json"),
            r#"{"median":{"point_estimate":42.0}}"#,
        )?;
        let m = Measurements::load(&dir, "new");
        let base = Measurements::load(&dir, "base");
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(m?.get("kernel_fib", "wasmi"), Some(42.0));
        assert!(base?.is_empty());
        Ok(())
    }
}
