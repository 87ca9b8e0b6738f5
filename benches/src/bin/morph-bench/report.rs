//! The markdown report (`docs/benchmarks.md`): how the numbers were taken,
//! the tables, the chart, and the hand-written notes kept from the previous
//! version of the file (everything from the [`NOTES_MARKER`] line on).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::info::RunInfo;
use crate::results::{
    ALL_BACKENDS, BACKENDS, KERNELS, LAYERS, LAYERS_GROUP, Measurements, Memory, NATIVE,
    OPERATIONS, SCRIPT_GROUP_FUNCTIONS, WASMTIME, geometric_mean, is_script, kernel_name,
    kernel_size, not_applicable, script_group,
};

/// The line that starts the hand-written part of the report; it and
/// everything after it survive regeneration unchanged.
pub const NOTES_MARKER: &str = "<!-- notes -->";

/// What a table cell shows for a benchmark that was not measured.
const MISSING: &str = "—";

/// What a table cell shows for an operation that has no meaning on a
/// backend (see [`not_applicable`]).
const NOT_APPLICABLE: &str = "n/a";

/// Everything the report is made from.
pub struct Inputs<'a> {
    /// Facts about the run.
    pub info: &'a RunInfo,
    /// `(package, versions)` of the engines, from `Cargo.lock`.
    pub engines: &'a [(String, Vec<String>)],
    /// Criterion medians of the latest run.
    pub results: &'a Measurements,
    /// The memory benchmark's results, if any.
    pub memory: Option<&'a Memory>,
    /// File name of the chart, relative to the report.
    pub chart_file: &'a str,
}

/// The generated part of the report (everything before the notes marker).
pub fn render(inputs: &Inputs<'_>) -> String {
    let mut md = String::from("# Benchmarks\n\n");
    md.push_str(&how(inputs.info, inputs.engines));
    let results = inputs.results;

    md.push_str("\n## Kernels\n\n");
    md.push_str(
        "Median time of one kernel call. Native Rust and the same Rust compiled to wasm (on \
         every wasm backend) run at the full sizes. The JavaScript (`benches/kernels-js`, \
         on Boa) and Python (`benches/kernels-py`, on CPython) versions, the same kernels \
         written in the language itself, run at the smaller script sizes \
         (`morph_kernels::SCRIPT_KERNELS`), with native code and wasmtime at those same \
         sizes beside them. Every result is checked against native's before timing.\n\n\
         Full sizes (`morph_kernels::KERNELS`):\n\n",
    );
    md.push_str(&kernel_times(results));
    md.push_str("\nScript sizes:\n\n");
    md.push_str(&script_kernel_times(results));
    md.push_str("\n### Kernels, ratio to native\n\n");
    md.push_str(
        "Backend time / native time at the same size (native = 1.0; bigger is slower): the \
         js and python columns against native code at the script sizes, every other column \
         at the full sizes. The last row is the geometric mean over the kernels.\n\n",
    );
    md.push_str(&kernel_ratios(results, NATIVE));
    md.push_str("\n### Kernels, ratio to wasmtime\n\n");
    md.push_str(
        "Time / wasmtime's time at the same size (wasmtime = 1.0; bigger is slower): js and \
         python against wasmtime at the script sizes, the others at the full sizes.\n\n",
    );
    md.push_str(&kernel_ratios(results, WASMTIME));
    md.push_str("\n### Script sizes, ratio to native\n\n");
    md.push_str(
        "The script-size runs alone (native = 1.0): wasmtime's column shows how far the \
         smaller sizes move a wasm ratio.\n\n",
    );
    md.push_str(&script_kernel_ratios(results));

    md.push_str("\n## Per-call operations\n\n");
    md.push_str("Median time of one operation on each backend.\n\n");
    md.push_str(&operation_times(results));
    md.push_str(
        "\nFor js and python: `compile_cold` is the load of the kernels extension including \
         the start of its first worker process (the host program re-executed, the engine \
         warmed, the script loaded and `describe()` run) and, when it is dropped, the \
         worker's kill; `noop_execute` runs the minimal fixture's JavaScript / Python twin \
         on a warm worker; every host call crosses the worker's pipe both ways. \
         `load_cached` and `instantiate` have no meaning for them (no compiled-module \
         cache; no raw instance, every execution runs in the warm worker): n/a. The layer \
         breakdown below is wasm only.\n",
    );
    md.push_str("\n### Per-call operations, ratio to wasmtime\n\n");
    md.push_str(&operation_ratios(results));

    md.push_str("\n## Layers\n\n");
    md.push_str(
        "Where the time of one no-op `execute` goes: the raw engine doing the same ABI steps \
         by hand, then Morph's layers added one at a time.\n\n",
    );
    md.push_str(&layers(results));

    md.push_str("\n## Memory per live instance\n\n");
    md.push_str(&memory(inputs.memory));

    md.push_str("\n## Chart\n\n");
    let _ = writeln!(md, "![ratio to native]({})", inputs.chart_file);
    md
}

/// The "How" paragraph.
fn how(info: &RunInfo, engines: &[(String, Vec<String>)]) -> String {
    let mut command = String::from("cargo xtask bench");
    if info.quick == Some(true) {
        command.push_str(" --quick");
    }
    let all = crate::run::all_targets();
    let partial = !info.targets.is_empty() && info.targets.len() < all.len();
    if partial {
        command.push_str(" --only");
        for target in &info.targets {
            command.push(' ');
            command.push_str(target);
        }
    }
    let mode = match info.quick {
        Some(true) => "quick mode (criterion `--quick`: it stops sampling as soon as the \
                       estimate is stable, so read ratios, not the last digit)"
            .to_owned(),
        Some(false) => "full mode (criterion's default sampling)".to_owned(),
        None => "mode unknown (no record of their run)".to_owned(),
    };
    let machine = {
        let mut m = format!("{}, {} cores", info.cpu, info.cores);
        if let Some(mem) = info.memory() {
            let _ = write!(m, ", {mem} RAM");
        }
        m
    };
    let engines = if engines.is_empty() {
        "engine versions not found in Cargo.lock".to_owned()
    } else {
        engines
            .iter()
            .map(|(name, versions)| format!("{name} {}", versions.join(" and ")))
            .collect::<Vec<_>>()
            .join(", ")
            + " (from Cargo.lock)"
    };
    let mut s = match info.quick {
        Some(_) => format!(
            "How: `{command}`, {mode}; run on {date} (UTC); {machine}; {rustc}; {engines}.",
            date = info.date,
            rustc = info.rustc,
        ),
        None => format!(
            "How: regenerated with `cargo xtask bench --report-only` from earlier results, \
             {mode}; report written on {date} (UTC) on {machine}; {rustc}; {engines}.",
            date = info.date,
            rustc = info.rustc,
        ),
    };
    s.push_str(
        " Each figure is criterion's median, built with the bench profile (release optimisation, no LTO; see `[profile.bench]` in Cargo.toml).",
    );
    if partial {
        let _ = write!(
            s,
            " This run ran only {}; other tables show earlier results, if any.",
            info.targets.join(", ")
        );
    }
    s.push_str(
        " Tables and chart are generated by `morph-bench` (benches/src/bin); \
                 hand-written notes go below the notes marker at the end.\n",
    );
    s
}

/// A kernel's size parameter as the report shows it: `25` (fib), `1 MiB`
/// (sha256, json, memcpy: bytes), `10M steps` (loop).
pub fn format_size(kernel: &str, n: u64) -> String {
    match kernel_name(kernel) {
        "sha256" | "json" | "memcpy" => match n {
            n if n > 0 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
            n if n > 0 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
            n => format!("{n} B"),
        },
        "loop" => match n {
            n if n > 0 && n % 1_000_000 == 0 => format!("{}M steps", n / 1_000_000),
            n if n > 0 && n % 1_000 == 0 => format!("{}k steps", n / 1_000),
            n => format!("{n} steps"),
        },
        _ => n.to_string(),
    }
}

/// The size cell of kernel group `kernel` (full or script size).
fn size_cell(kernel: &str, script: bool) -> String {
    kernel_size(kernel, script).map_or_else(missing, |n| format_size(kernel, n))
}

/// Table 1: kernels × (native + wasm backends) at the full sizes, absolute
/// times.
fn kernel_times(results: &Measurements) -> String {
    let columns: Vec<&str> = ["n", NATIVE].into_iter().chain(BACKENDS).collect();
    let rows: Vec<Vec<String>> = KERNELS
        .iter()
        .map(|kernel| {
            let mut row = vec![kernel_name(kernel).to_owned(), size_cell(kernel, false)];
            row.extend(
                columns[1..]
                    .iter()
                    .map(|f| results.get(kernel, f).map_or_else(missing, format_time)),
            );
            row
        })
        .collect();
    table_or_note("kernel", &columns, rows, 2)
}

/// Table 1b: kernels × (native, wasmtime, scripts) at the script sizes,
/// absolute times.
fn script_kernel_times(results: &Measurements) -> String {
    let columns: Vec<&str> = std::iter::once("n").chain(SCRIPT_GROUP_FUNCTIONS).collect();
    let rows: Vec<Vec<String>> = KERNELS
        .iter()
        .map(|kernel| {
            let group = script_group(kernel);
            let mut row = vec![kernel_name(kernel).to_owned(), size_cell(kernel, true)];
            row.extend(
                SCRIPT_GROUP_FUNCTIONS
                    .iter()
                    .map(|f| results.get(&group, f).map_or_else(missing, format_time)),
            );
            row
        })
        .collect();
    table_or_note("kernel", &columns, rows, 2)
}

/// The header of a kernel-ratio column: scripts say they ran at the
/// script sizes.
fn ratio_column(backend: &str) -> String {
    if is_script(backend) {
        format!("{backend} (script n)")
    } else {
        backend.to_owned()
    }
}

/// Tables 2 and 3: kernels as ratios to `reference` (`native` or
/// `wasmtime`) at the size each backend ran at, with a geometric-mean row
/// ("x.x× slower").
fn kernel_ratios(results: &Measurements, reference: &str) -> String {
    let columns: Vec<&str> = std::iter::once(NATIVE).chain(ALL_BACKENDS).collect();
    let mut rows: Vec<Vec<String>> = KERNELS
        .iter()
        .map(|kernel| {
            let mut row = vec![kernel_name(kernel).to_owned()];
            row.extend(columns.iter().map(|f| {
                results
                    .kernel_ratio(kernel, f, reference)
                    .map_or_else(missing, format_ratio)
            }));
            row
        })
        .collect();
    if rows.iter().all(|row| row[1..].iter().all(|c| c == MISSING)) {
        return no_results();
    }
    let mut mean = vec!["**geometric mean**".to_owned()];
    mean.extend(columns.iter().map(|f| {
        let ratios: Vec<f64> = KERNELS
            .iter()
            .filter_map(|kernel| results.kernel_ratio(kernel, f, reference))
            .collect();
        geometric_mean(&ratios).map_or_else(missing, slower_or_faster)
    }));
    rows.push(mean);
    let headers: Vec<String> = columns.iter().map(|c| ratio_column(c)).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table("kernel", &headers, &rows)
}

/// Table 3b: the script-size groups as ratios to native there, with a
/// geometric-mean row.
fn script_kernel_ratios(results: &Measurements) -> String {
    let columns = SCRIPT_GROUP_FUNCTIONS;
    let mut rows: Vec<Vec<String>> = KERNELS
        .iter()
        .map(|kernel| {
            let group = script_group(kernel);
            let mut row = vec![kernel_name(kernel).to_owned(), size_cell(kernel, true)];
            row.extend(columns.iter().map(|f| {
                results
                    .ratio(&group, f, NATIVE)
                    .map_or_else(missing, format_ratio)
            }));
            row
        })
        .collect();
    if rows.iter().all(|row| row[2..].iter().all(|c| c == MISSING)) {
        return no_results();
    }
    let mut mean = vec!["**geometric mean**".to_owned(), String::new()];
    mean.extend(columns.iter().map(|f| {
        let ratios: Vec<f64> = KERNELS
            .iter()
            .filter_map(|kernel| results.ratio(&script_group(kernel), f, NATIVE))
            .collect();
        geometric_mean(&ratios).map_or_else(missing, slower_or_faster)
    }));
    rows.push(mean);
    let headers: Vec<&str> = std::iter::once("n").chain(columns).collect();
    table("kernel", &headers, &rows)
}

/// An operation's cell on `backend`: [`NOT_APPLICABLE`] where it has no
/// meaning, else `value` formatted, else [`MISSING`].
fn operation_cell(
    op: &str,
    backend: &str,
    value: Option<f64>,
    format: fn(f64) -> String,
) -> String {
    if not_applicable(op, backend) {
        NOT_APPLICABLE.to_owned()
    } else {
        value.map_or_else(missing, format)
    }
}

/// Table 4: operations × backends, absolute times.
fn operation_times(results: &Measurements) -> String {
    let rows = OPERATIONS
        .iter()
        .map(|op| {
            let mut row = vec![format!("`{op}`")];
            row.extend(
                ALL_BACKENDS
                    .iter()
                    .map(|b| operation_cell(op, b, results.get(op, b), format_time)),
            );
            row
        })
        .collect();
    table_or_note("operation", &ALL_BACKENDS, rows, 1)
}

/// Table 4b: operations × backends, ratio to wasmtime.
fn operation_ratios(results: &Measurements) -> String {
    let rows = OPERATIONS
        .iter()
        .map(|op| {
            let mut row = vec![format!("`{op}`")];
            row.extend(
                ALL_BACKENDS
                    .iter()
                    .map(|b| operation_cell(op, b, results.ratio(op, b, WASMTIME), format_ratio)),
            );
            row
        })
        .collect();
    table_or_note("operation", &ALL_BACKENDS, rows, 1)
}

/// Table 5: the layer breakdown, then the derived differences.
fn layers(results: &Measurements) -> String {
    let reference = results.layers_reference();
    let ratio_header = match reference {
        Some(r) => format!("vs `{r}`"),
        None => "ratio".to_owned(),
    };
    let rows: Vec<Vec<String>> = LAYERS
        .iter()
        .filter_map(|(function, label)| {
            let median = results.get(LAYERS_GROUP, function)?;
            let ratio = reference
                .and_then(|r| results.ratio(LAYERS_GROUP, function, r))
                .map_or_else(missing, format_ratio);
            Some(vec![
                format!("{label} (`{function}`)"),
                format_time(median),
                ratio,
            ])
        })
        .collect();
    if rows.is_empty() {
        return no_results();
    }
    let mut out = table("benchmark", &["median", ratio_header.as_str()], &rows);

    let derived = derived_layers(results);
    if derived
        .iter()
        .any(|(_, cells)| cells.iter().any(Option::is_some))
    {
        out.push_str(
            "\nDerived costs (differences of medians, so noisy). \"Raw\" is \
             `raw_wasmtime_pooling` for wasmtime (`raw_wasmtime` when pooling was not \
             measured) and `raw_wasmer` for wasmer, which has no pooling allocator.\n\n",
        );
        let rows: Vec<Vec<String>> = derived
            .into_iter()
            .map(|(label, cells)| {
                let mut row = vec![label.to_owned()];
                row.extend(cells.into_iter().map(|c| c.map_or_else(missing, format_us)));
                row
            })
            .collect();
        out.push_str(&table("derived", &DERIVED_ENGINES, &rows));
    }
    out
}

/// Engines of the derived-cost table's columns.
const DERIVED_ENGINES: [&str; 2] = ["wasmtime", "wasmer"];

/// The derived layer costs in nanoseconds: `(label, [wasmtime, wasmer])`.
pub fn derived_layers(results: &Measurements) -> Vec<(&'static str, Vec<Option<f64>>)> {
    let get = |f: &str| results.get(LAYERS_GROUP, f);
    let diff = |a: &str, b: &str| Some(get(a)? - get(b)?);
    // wasmtime: the pooling variant when measured, else the default one.
    let raw = |engine: &str| match engine {
        "wasmtime" => results
            .layers_reference()
            .unwrap_or("raw_wasmtime")
            .to_owned(),
        other => format!("raw_{other}"),
    };
    let per_engine = |f: &dyn Fn(&str) -> Option<f64>| -> Vec<Option<f64>> {
        DERIVED_ENGINES.iter().map(|e| f(e)).collect()
    };
    vec![
        (
            "Morph layers without the hop (inline − engine glue)",
            per_engine(&|e| diff(&format!("inline_{e}"), &format!("engine_run_{e}"))),
        ),
        (
            "engine glue over raw (engine_run − raw pooling)",
            per_engine(&|e| diff(&format!("engine_run_{e}"), &raw(e))),
        ),
        (
            "hop (execute − inline)",
            per_engine(&|e| diff(&format!("execute_{e}"), &format!("inline_{e}"))),
        ),
    ]
}

/// Table 6: memory per live instance.
fn memory(memory: Option<&Memory>) -> String {
    let Some(memory) = memory.filter(|m| !m.rows.is_empty()) else {
        return no_results();
    };
    let rows: Vec<Vec<String>> = memory
        .rows
        .iter()
        .map(|row| {
            let n = row.instances.or(memory.instances);
            let per_worker = |total: Option<f64>| Some(total? / n? as f64);
            let workers = match (
                per_worker(row.worker_rss_bytes),
                per_worker(row.worker_pss_bytes),
            ) {
                (Some(rss), Some(pss)) => format!("{} / {}", format_bytes(rss), format_bytes(pss)),
                (Some(rss), None) => format!("{} / {MISSING}", format_bytes(rss)),
                _ => missing(),
            };
            vec![
                row.backend.clone(),
                row.per_instance_bytes.map_or_else(missing, format_bytes),
                row.rss_delta_bytes.map_or_else(missing, format_bytes),
                n.map_or_else(missing, |n| n.to_string()),
                workers,
            ]
        })
        .collect();
    let mut out = String::from(
        "Growth of the resident set with N instances alive at once, divided by N. For the \
         wasm backends an instance is a fresh instance of the kernels module before any \
         guest code runs. For js and python a live extension is a loaded kernels extension \
         with its one warm worker process (engine warm, script loaded, `describe()` run): \
         the host's growth plus each worker's whole resident set (`VmRSS`). The last \
         column gives one worker's RSS and its PSS (`Pss` of `smaps_rollup`: pages shared \
         between processes, such as the program's code and libpython, divided among \
         them), which is closer to what one more worker costs the machine.\n\n",
    );
    out.push_str(&table(
        "backend",
        &[
            "per live instance",
            "RSS growth, all N",
            "N",
            "one worker: RSS / PSS",
        ],
        &rows,
    ));
    out
}

/// [`MISSING`] as an owned cell.
fn missing() -> String {
    MISSING.to_owned()
}

/// The paragraph shown instead of a table without any result.
fn no_results() -> String {
    "No results yet (run `cargo xtask bench`).\n".to_owned()
}

/// A table, or [`no_results`] when every value cell (from cell `skip` of
/// each row on) is [`MISSING`] or [`NOT_APPLICABLE`].
fn table_or_note(first: &str, columns: &[&str], rows: Vec<Vec<String>>, skip: usize) -> String {
    let empty = |c: &String| c == MISSING || c == NOT_APPLICABLE;
    if rows.iter().all(|row| row.iter().skip(skip).all(empty)) {
        no_results()
    } else {
        table(first, columns, &rows)
    }
}

/// A markdown table: a left-aligned label column named `first`, then
/// right-aligned `columns`.
fn table(first: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {first} |");
    for c in columns {
        let _ = write!(out, " {c} |");
    }
    out.push_str("\n|---|");
    for _ in columns {
        out.push_str("---:|");
    }
    out.push('\n');
    for row in rows {
        out.push('|');
        for cell in row {
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

/// `x` rounded to `digits` significant digits.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - magnitude);
    (x * scale).round() / scale
}

/// `x` with 3 significant digits, no exponent (`1.23`, `12.3`, `123`, `1230`).
fn three_significant(x: f64) -> String {
    let r = round_significant(x, 3);
    let decimals = if r == 0.0 {
        2
    } else {
        (2 - r.abs().log10().floor() as i32).max(0) as usize
    };
    format!("{r:.decimals$}")
}

/// A time in nanoseconds as ns, µs, ms or s with 3 significant digits.
pub fn format_time(ns: f64) -> String {
    let r = round_significant(ns, 3);
    let (value, unit) = match r.abs() {
        a if a < 1e3 => (r, "ns"),
        a if a < 1e6 => (r / 1e3, "µs"),
        a if a < 1e9 => (r / 1e6, "ms"),
        _ => (r / 1e9, "s"),
    };
    format!("{} {unit}", three_significant(value))
}

/// A difference of times in nanoseconds, always in µs with 2 decimals.
pub fn format_us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1e3).replace('-', "−")
}

/// A ratio with 2 decimals.
pub fn format_ratio(ratio: f64) -> String {
    format!("{ratio:.2}")
}

/// A ratio as "2.5× slower", "1.3× faster" or "same".
pub fn slower_or_faster(ratio: f64) -> String {
    if format!("{:.1}", ratio.max(1.0 / ratio)) == "1.0" {
        "same".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:.1}× slower")
    } else {
        format!("{:.1}× faster", 1.0 / ratio)
    }
}

/// A byte count as B, KiB, MiB or GiB with 3 significant digits.
pub fn format_bytes(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "−" } else { "" };
    // Unit first, then rounding: binary units do not keep decimal digits.
    let (value, unit) = match bytes.abs() {
        b if b < 1024.0 => (b, "B"),
        b if b < 1024.0 * 1024.0 => (b / 1024.0, "KiB"),
        b if b < 1024.0 * 1024.0 * 1024.0 => (b / (1024.0 * 1024.0), "MiB"),
        b => (b / (1024.0 * 1024.0 * 1024.0), "GiB"),
    };
    format!("{sign}{} {unit}", three_significant(value))
}

/// The full new text of the report: `generated`, then the notes of the
/// `existing` text (from the [`NOTES_MARKER`] line to the end, unchanged),
/// or a bare marker line when there were none.
pub fn with_notes(generated: &str, existing: Option<&str>) -> String {
    let mut out = generated.trim_end().to_owned();
    out.push_str("\n\n");
    match existing.and_then(notes_start).zip(existing) {
        Some((start, text)) => out.push_str(&text[start..]),
        None => {
            out.push_str(NOTES_MARKER);
            out.push('\n');
        }
    }
    out
}

/// Byte offset of the line that is exactly [`NOTES_MARKER`] (trailing
/// whitespace allowed).
fn notes_start(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == NOTES_MARKER {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// Writes the report to `path`, keeping the notes of the file already
/// there. Writes a temporary file beside it first and renames it, so a
/// failure never loses the notes.
pub fn write(path: &Path, generated: &str) -> Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let text = with_notes(generated, existing.as_deref());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", Path::new(&tmp).display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_three_significant_digits() {
        assert_eq!(format_time(1234.5), "1.23 µs");
        assert_eq!(format_time(12_345.0), "12.3 µs");
        assert_eq!(format_time(123_456.0), "123 µs");
        assert_eq!(format_time(999.0), "999 ns");
        assert_eq!(format_time(999.9), "1.00 µs");
        assert_eq!(format_time(5.0), "5.00 ns");
        assert_eq!(format_time(0.5), "0.500 ns");
        assert_eq!(format_time(2.5e6), "2.50 ms");
        assert_eq!(format_time(999_700_000.0), "1.00 s");
        assert_eq!(format_time(75e9), "75.0 s");
        assert_eq!(format_time(1234e9), "1230 s");
    }

    #[test]
    fn ratios_and_differences() {
        assert_eq!(format_ratio(1.0), "1.00");
        assert_eq!(format_ratio(25.456), "25.46");
        assert_eq!(slower_or_faster(3.04), "3.0× slower");
        assert_eq!(slower_or_faster(0.5), "2.0× faster");
        assert_eq!(slower_or_faster(1.01), "same");
        assert_eq!(format_us(1500.0), "1.50 µs");
        assert_eq!(format_us(-250.0), "−0.25 µs");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(format_bytes(1.23), "1.23 B");
        assert_eq!(format_bytes(2048.0), "2.00 KiB");
        assert_eq!(format_bytes(150.0 * 1024.0), "150 KiB");
        assert_eq!(format_bytes(3.5 * 1024.0 * 1024.0), "3.50 MiB");
        assert_eq!(format_bytes(-2048.0), "−2.00 KiB");
        assert_eq!(format_bytes(10_485.76), "10.2 KiB");
        assert_eq!(format_bytes(1_023.9), "1020 B");
    }

    #[test]
    fn notes_are_kept_from_the_marker_line_on() {
        let old = "# Benchmarks\n\nold table\n\n<!-- notes -->\n## Analysis\n\nHand-written.\n";
        let new = with_notes("# Benchmarks\n\nnew table\n", Some(old));
        assert_eq!(
            new,
            "# Benchmarks\n\nnew table\n\n<!-- notes -->\n## Analysis\n\nHand-written.\n"
        );
        // Regenerating again keeps the same notes.
        assert_eq!(with_notes("# Benchmarks\n\nnew table\n", Some(&new)), new);
    }

    #[test]
    fn notes_marker_is_appended_when_absent() {
        let old = "# Benchmarks\n\nno marker here, <!-- notes --> inline only\n";
        assert_eq!(
            with_notes("# Benchmarks\n", Some(old)),
            "# Benchmarks\n\n<!-- notes -->\n"
        );
        assert_eq!(with_notes("# B\n", None), "# B\n\n<!-- notes -->\n");
    }

    #[test]
    fn notes_without_trailing_newline_stay_byte_identical() {
        let old = "x\n<!-- notes -->  \nlast line without newline";
        assert_eq!(
            with_notes("y", Some(old)),
            "y\n\n<!-- notes -->  \nlast line without newline"
        );
    }

    #[test]
    fn derived_layers_subtract_medians() {
        let mut m = Measurements::default();
        m.insert(LAYERS_GROUP, "raw_wasmtime", 9_000.0);
        m.insert(LAYERS_GROUP, "raw_wasmtime_pooling", 6_000.0);
        m.insert(LAYERS_GROUP, "engine_run_wasmtime", 7_000.0);
        m.insert(LAYERS_GROUP, "inline_wasmtime", 10_000.0);
        m.insert(LAYERS_GROUP, "execute_wasmtime", 30_000.0);
        m.insert(LAYERS_GROUP, "raw_wasmer", 8_000.0);
        m.insert(LAYERS_GROUP, "engine_run_wasmer", 9_500.0);
        let d = derived_layers(&m);
        assert_eq!(d[0].1, vec![Some(3_000.0), None]);
        assert_eq!(d[1].1, vec![Some(1_000.0), Some(1_500.0)]);
        assert_eq!(d[2].1, vec![Some(20_000.0), None]);
    }

    /// A run record for tests.
    fn info(quick: Option<bool>, targets: &[&str]) -> RunInfo {
        RunInfo {
            quick,
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            date: "2026-01-02".into(),
            cpu: "Example CPU".into(),
            cores: 2,
            mem_total_kib: Some(24 * 1024 * 1024),
            rustc: "rustc 1.95.0".into(),
        }
    }

    #[test]
    fn how_states_command_mode_machine_and_engines() {
        let engines = vec![("wasmtime".to_owned(), vec!["48.0.8".to_owned()])];
        let quick = how(&info(Some(true), &["kernels", "ops", "memory"]), &engines);
        assert!(
            quick.starts_with("How: `cargo xtask bench --quick`, quick mode"),
            "{quick}"
        );
        for needle in [
            "2026-01-02",
            "Example CPU, 2 cores, 24.0 GiB RAM",
            "rustc 1.95.0",
            "wasmtime 48.0.8",
        ] {
            assert!(quick.contains(needle), "no {needle} in {quick}");
        }
        let partial = how(&info(Some(false), &["kernels"]), &engines);
        assert!(
            partial.starts_with("How: `cargo xtask bench --only kernels`, full mode"),
            "{partial}"
        );
        assert!(partial.contains("This run ran only kernels"), "{partial}");
        let unknown = how(&info(None, &[]), &[]);
        assert!(unknown.contains("--report-only"), "{unknown}");
        assert!(unknown.contains("mode unknown"), "{unknown}");
        assert!(unknown.contains("engine versions not found"), "{unknown}");
    }

    #[test]
    fn renders_every_section() -> Result<()> {
        let mut m = Measurements::default();
        m.insert("kernel_fib", NATIVE, 1_000.0);
        m.insert("kernel_fib", "wasmtime", 1_500.0);
        m.insert("noop_execute", "wasmtime", 14_000.0);
        m.insert("noop_execute", "wasmi", 7_000.0);
        m.insert(LAYERS_GROUP, "raw_wasmtime", 11_600.0);
        let memory = Memory::parse(
            r#"{"instances": 100, "backends": {"wasmtime": {"rss_delta_bytes": 1048576, "per_instance_bytes": 10485.76}}}"#,
        )?;
        let md = render(&Inputs {
            info: &info(Some(true), &[]),
            engines: &[],
            results: &m,
            memory: Some(&memory),
            chart_file: "benchmarks-ratios.svg",
        });
        for needle in [
            "# Benchmarks\n",
            "| fib | 25 | 1.00 µs | 1.50 µs | — | — | — | — |",
            "| `noop_execute` | 14.0 µs | — | — | 7.00 µs | — | — | — |",
            "| `noop_execute` | 1.00 | — | — | 0.50 | — | — | — |",
            "| raw wasmtime: InstancePre, same ABI steps by hand, default allocator (`raw_wasmtime`) | 11.6 µs | 1.00 |",
            "| wasmtime | 10.2 KiB | 1.00 MiB | 100 | — |",
            "![ratio to native](benchmarks-ratios.svg)",
        ] {
            assert!(md.contains(needle), "no {needle} in\n{md}");
        }
        assert!(!md.contains("Derived costs"), "{md}");
        Ok(())
    }

    #[test]
    fn scripts_have_their_own_sizes_and_references() -> Result<()> {
        let mut m = Measurements::default();
        m.insert("kernel_fib", NATIVE, 1_000.0);
        m.insert("kernel_fib", WASMTIME, 2_000.0);
        m.insert("script_kernel_fib", NATIVE, 100.0);
        m.insert("script_kernel_fib", WASMTIME, 250.0);
        m.insert("script_kernel_fib", "js", 50_000.0);
        m.insert("script_kernel_fib", "python", 10_000.0);
        m.insert("instantiate", WASMTIME, 5_000.0);
        m.insert("compile_cold", "python", 9e7);
        let memory = Memory::parse(
            r#"{"instances": 100, "backends": {"python": {"instances": 10,
                "rss_delta_bytes": 104857600, "per_instance_bytes": 10485760,
                "worker_rss_bytes": 94371840, "worker_pss_bytes": 31457280}}}"#,
        )?;
        let md = render(&Inputs {
            info: &info(Some(false), &[]),
            engines: &[],
            results: &m,
            memory: Some(&memory),
            chart_file: "c.svg",
        });
        let script_n = size_cell("kernel_fib", true);
        for needle in [
            format!("| fib | {script_n} | 100 ns | 250 ns | 50.0 µs | 10.0 µs |"),
            "| kernel | native | wasmtime | wasmtime-pulley | wasmer | wasmi | wasm3 | js (script n) | python (script n) |".to_owned(),
            "| fib | 1.00 | 2.00 | — | — | — | — | 500.00 | 100.00 |".to_owned(),
            "| fib | 0.50 | 1.00 | — | — | — | — | 200.00 | 40.00 |".to_owned(),
            format!("| fib | {script_n} | 1.00 | 2.50 | 500.00 | 100.00 |"),
            "| `compile_cold` | — | — | — | — | — | — | 90.0 ms |".to_owned(),
            "| `instantiate` | 5.00 µs | — | — | — | — | n/a | n/a |".to_owned(),
            "| `instantiate` | 1.00 | — | — | — | — | n/a | n/a |".to_owned(),
            "| python | 10.0 MiB | 100 MiB | 10 | 9.00 MiB / 3.00 MiB |".to_owned(),
        ] {
            assert!(md.contains(&needle), "no {needle} in\n{md}");
        }
        Ok(())
    }

    #[test]
    fn sizes_read_as_their_units() {
        assert_eq!(format_size("kernel_fib", 25), "25");
        assert_eq!(format_size("kernel_sha256", 1 << 20), "1 MiB");
        assert_eq!(format_size("kernel_json", 100 << 10), "100 KiB");
        assert_eq!(format_size("kernel_memcpy", 1000), "1000 B");
        assert_eq!(format_size("kernel_loop", 10_000_000), "10M steps");
        assert_eq!(format_size("kernel_loop", 200_000), "200k steps");
        assert_eq!(format_size("kernel_loop", 1234), "1234 steps");
    }

    #[test]
    fn kernel_ratio_table_has_a_geometric_mean_row() {
        let mut m = Measurements::default();
        for (kernel, native, wasmi) in [("kernel_fib", 100.0, 200.0), ("kernel_loop", 10.0, 80.0)] {
            m.insert(kernel, NATIVE, native);
            m.insert(kernel, "wasmi", wasmi);
        }
        let t = kernel_ratios(&m, NATIVE);
        assert!(
            t.contains("| fib | 1.00 | — | — | — | 2.00 | — | — | — |"),
            "{t}"
        );
        assert!(
            t.contains("| loop | 1.00 | — | — | — | 8.00 | — | — | — |"),
            "{t}"
        );
        assert!(
            t.contains("| **geometric mean** | same | — | — | — | 4.0× slower | — | — | — |"),
            "{t}"
        );
        assert_eq!(
            kernel_ratios(&Measurements::default(), NATIVE),
            no_results()
        );
    }
}
