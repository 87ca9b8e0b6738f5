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

/// Wasm backends in display order (the first columns of every backend
/// table).
pub const BACKENDS: [&str; 5] = ["wasmtime", "wasmtime-pulley", "wasmer", "wasmi", "wasm3"];

/// Script backends in display order, after the wasm ones. Their kernels
/// run at the script sizes, in the [`script_group`] of each kernel.
pub const SCRIPT_BACKENDS: [&str; 2] = ["js", "python"];

/// Every backend in display order: [`BACKENDS`], then [`SCRIPT_BACKENDS`].
pub const ALL_BACKENDS: [&str; 7] = [
    "wasmtime",
    "wasmtime-pulley",
    "wasmer",
    "wasmi",
    "wasm3",
    "js",
    "python",
];

/// Kernel groups at the full sizes (`morph_kernels::KERNELS`: native and
/// the wasm backends), in display order.
pub const KERNELS: [&str; 5] = [
    "kernel_fib",
    "kernel_sha256",
    "kernel_json",
    "kernel_loop",
    "kernel_memcpy",
];

/// Functions of the script-size groups: the scripts, with native code and
/// wasmtime at the same sizes as references.
pub const SCRIPT_GROUP_FUNCTIONS: [&str; 4] = [NATIVE, WASMTIME, "js", "python"];

/// The group of kernel group `kernel` (`kernel_fib`) at the script sizes
/// (`morph_kernels::SCRIPT_KERNELS`): `script_kernel_fib`.
pub fn script_group(kernel: &str) -> String {
    format!("script_{kernel}")
}

/// Whether `backend` is a script backend (its kernels run at the script
/// sizes).
pub fn is_script(backend: &str) -> bool {
    SCRIPT_BACKENDS.contains(&backend)
}

/// The group in which `backend` ran kernel group `kernel`: the script-size
/// group for scripts, `kernel` itself for native code and wasm.
pub fn kernel_group_for(kernel: &str, backend: &str) -> String {
    if is_script(backend) {
        script_group(kernel)
    } else {
        kernel.to_owned()
    }
}

/// The kernel name of a kernel group (`kernel_fib` → `fib`).
pub fn kernel_name(group: &str) -> &str {
    group.strip_prefix("kernel_").unwrap_or(group)
}

/// The size parameter kernel group `kernel` ran at: the full size, or the
/// script size when `script` (from `morph_kernels`).
pub fn kernel_size(kernel: &str, script: bool) -> Option<u64> {
    let sizes = if script {
        morph_kernels::SCRIPT_KERNELS
    } else {
        morph_kernels::KERNELS
    };
    let name = kernel_name(kernel);
    sizes.iter().find(|(k, _)| *k == name).map(|(_, n)| *n)
}

/// Per-call operation groups in display order.
pub const OPERATIONS: [&str; 6] = [
    "compile_cold",
    "load_cached",
    "noop_execute",
    "host_call_small",
    "host_call_64k",
    "instantiate",
];

/// Whether operation `op` has no meaning for `backend`: scripts have no
/// compiled-module cache (`load_cached`) and no raw instance
/// (`instantiate`; every execution runs in a warm worker).
pub fn not_applicable(op: &str, backend: &str) -> bool {
    is_script(backend) && matches!(op, "load_cached" | "instantiate")
}

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
                .join(&group)
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
            medians.insert((group, function.to_owned()), median);
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

    /// Kernel group `kernel`'s time on `backend` divided by `reference`'s,
    /// both in the group `backend` ran in ([`kernel_group_for`]): scripts
    /// against native code or wasmtime at the script sizes, everything
    /// else at the full sizes.
    pub fn kernel_ratio(&self, kernel: &str, backend: &str, reference: &str) -> Option<f64> {
        self.ratio(&kernel_group_for(kernel, backend), backend, reference)
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
            let script = script_group(kernel);
            for function in [WASMTIME].into_iter().chain(SCRIPT_BACKENDS) {
                add(&script, function, NATIVE);
            }
            for backend in SCRIPT_BACKENDS {
                add(&script, backend, WASMTIME);
            }
        }
        for op in OPERATIONS {
            for backend in ALL_BACKENDS {
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
fn known_benchmarks() -> impl Iterator<Item = (String, &'static str)> {
    let kernels = KERNELS.into_iter().flat_map(|group| {
        std::iter::once(NATIVE)
            .chain(BACKENDS)
            .map(move |function| (group.to_owned(), function))
    });
    let scripts = KERNELS.into_iter().flat_map(|group| {
        SCRIPT_GROUP_FUNCTIONS
            .into_iter()
            .map(move |function| (script_group(group), function))
    });
    let operations = OPERATIONS.into_iter().flat_map(|group| {
        ALL_BACKENDS
            .into_iter()
            .map(move |function| (group.to_owned(), function))
    });
    let layers = LAYERS
        .into_iter()
        .map(|(function, _)| (LAYERS_GROUP.to_owned(), function));
    kernels.chain(scripts).chain(operations).chain(layers)
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
    /// How many instances were alive at once, when the line says (else the
    /// file's [`Memory::instances`]).
    pub instances: Option<u64>,
    /// Growth of the resident set while `instances` instances were alive
    /// (for scripts: the host's growth plus the workers' resident sets).
    pub rss_delta_bytes: Option<f64>,
    /// `rss_delta_bytes / instances`.
    pub per_instance_bytes: Option<f64>,
    /// Scripts: the resident sets (`VmRSS`) of all their worker processes.
    pub worker_rss_bytes: Option<f64>,
    /// Scripts: the proportional set sizes (`Pss`) of all their worker
    /// processes.
    pub worker_pss_bytes: Option<f64>,
}

/// The memory benchmark's results (`memory.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// How many instances were kept alive at once.
    pub instances: Option<u64>,
    /// One row per backend: [`ALL_BACKENDS`] order first, then others by
    /// name.
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
    /// "per_instance_bytes": B}, ...}}`, where a backend's line may also
    /// hold its own `instances` and, for scripts, `worker_rss_bytes` and
    /// `worker_pss_bytes`. Missing numbers become `None`.
    pub fn parse(text: &str) -> Result<Self> {
        let json: Value = serde_json::from_str(text).context("not JSON")?;
        let instances = json.get("instances").and_then(Value::as_u64);
        let backends = json
            .get("backends")
            .and_then(Value::as_object)
            .context("no `backends` object")?;
        let mut rows: Vec<MemoryRow> = backends
            .iter()
            .map(|(name, entry)| {
                let number = |key: &str| entry.get(key).and_then(Value::as_f64);
                MemoryRow {
                    backend: name.clone(),
                    instances: entry.get("instances").and_then(Value::as_u64),
                    rss_delta_bytes: number("rss_delta_bytes"),
                    per_instance_bytes: number("per_instance_bytes"),
                    worker_rss_bytes: number("worker_rss_bytes"),
                    worker_pss_bytes: number("worker_pss_bytes"),
                }
            })
            .collect();
        let rank = |name: &str| {
            ALL_BACKENDS
                .iter()
                .position(|b| *b == name)
                .unwrap_or(ALL_BACKENDS.len())
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
    fn scripts_are_compared_at_the_script_sizes() {
        let mut m = Measurements::default();
        m.insert("kernel_fib", NATIVE, 100.0);
        m.insert("kernel_fib", WASMTIME, 200.0);
        m.insert("script_kernel_fib", NATIVE, 10.0);
        m.insert("script_kernel_fib", WASMTIME, 25.0);
        m.insert("script_kernel_fib", "js", 1000.0);
        m.insert("script_kernel_fib", "python", 500.0);
        assert_eq!(m.kernel_ratio("kernel_fib", WASMTIME, NATIVE), Some(2.0));
        assert_eq!(m.kernel_ratio("kernel_fib", "js", NATIVE), Some(100.0));
        assert_eq!(m.kernel_ratio("kernel_fib", "python", WASMTIME), Some(20.0));
        assert_eq!(m.kernel_ratio("kernel_fib", "wasmi", NATIVE), None);
        let r = m.all_ratios();
        assert_eq!(r.get("script_kernel_fib: js / native"), Some(&100.0));
        assert_eq!(r.get("script_kernel_fib: wasmtime / native"), Some(&2.5));
        assert_eq!(r.get("script_kernel_fib: python / wasmtime"), Some(&20.0));
        assert_eq!(r.len(), 6);
        assert_eq!(kernel_size("kernel_fib", false), Some(25));
        assert!(kernel_size("kernel_fib", true).is_some_and(|n| n < 25));
        assert_eq!(kernel_size("kernel_nope", true), None);
        assert!(not_applicable("instantiate", "python"));
        assert!(!not_applicable("instantiate", "wasmi"));
        assert!(!not_applicable("noop_execute", "js"));
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
        assert_eq!(m.rows[0].instances, None);
        assert!(Memory::parse(r#"{"instances": 1}"#).is_err());
        let m = Memory::parse(
            r#"{"instances": 100, "backends": {
                "python": {"instances": 10, "rss_delta_bytes": 300, "per_instance_bytes": 30,
                           "worker_rss_bytes": 250, "worker_pss_bytes": 90},
                "js": {"instances": 10, "rss_delta_bytes": 100, "per_instance_bytes": 10}}}"#,
        )?;
        let names: Vec<&str> = m.rows.iter().map(|r| r.backend.as_str()).collect();
        assert_eq!(names, ["js", "python"]);
        assert_eq!(m.rows[1].instances, Some(10));
        assert_eq!(m.rows[1].worker_pss_bytes, Some(90.0));
        assert_eq!(m.rows[0].worker_rss_bytes, None);
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
