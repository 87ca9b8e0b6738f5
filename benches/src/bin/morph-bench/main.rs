//! `morph-bench`: runs Morph's benchmark suite and writes the report.
//!
//! `cargo xtask bench [--quick] [--save-baseline NAME | --baseline NAME]
//! [--out PATH] [--only TARGET ...] [--report-only]` (the `xtask` alias in
//! `.cargo/config.toml` runs this binary in the release profile) runs the
//! criterion targets `kernels` and `ops`, then the `memory` target, of
//! `morph-benches`, one after another; reads criterion's medians and
//! `memory.json` from the target directory; writes `docs/benchmarks.md`
//! and, beside it, `benchmarks-ratios.svg`. Hand-written notes below the
//! `<!-- notes -->` line of the report survive regeneration.
#![forbid(unsafe_code)]
#![warn(clippy::missing_docs_in_private_items)]

mod compare;
mod info;
mod plot;
mod report;
mod results;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use crate::info::RunInfo;
use crate::results::{Measurements, Memory};

/// Command line.
#[derive(Parser)]
#[command(
    name = "morph-bench",
    about = "Runs Morph's benchmarks and writes docs/benchmarks.md"
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
enum Command {
    /// Run the benchmarks (kernels, ops, memory), then write the markdown
    /// report and its SVG chart.
    Bench(BenchArgs),
}

/// Options of `bench`.
#[derive(Args)]
struct BenchArgs {
    /// Pass `--quick` to criterion: far fewer samples, so much faster; fine
    /// for ratios, noisy in the last digits.
    #[arg(long, conflicts_with = "report_only")]
    quick: bool,
    /// Also save the criterion results as baseline NAME (criterion
    /// `--save-baseline`).
    #[arg(long, value_name = "NAME", value_parser = baseline_name, conflicts_with_all = ["baseline", "report_only"])]
    save_baseline: Option<String>,
    /// Compare with baseline NAME (criterion `--baseline`; it must exist),
    /// then print the ratios that moved by more than 10%.
    #[arg(long, value_name = "NAME", value_parser = baseline_name)]
    baseline: Option<String>,
    /// Markdown report to write; a relative path is relative to the
    /// workspace root. The chart goes beside it as `<stem>-ratios.svg`.
    #[arg(long, value_name = "PATH", default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Run only these bench targets (the report still shows every table,
    /// from earlier results where these did not run).
    #[arg(
        long,
        value_name = "TARGET",
        num_args = 1..,
        value_parser = PossibleValuesParser::new(run::all_targets()),
        conflicts_with = "report_only"
    )]
    only: Vec<String>,
    /// Run nothing: only regenerate the report from existing results.
    #[arg(long)]
    report_only: bool,
    /// Cargo target directory holding the results (default:
    /// `$CARGO_TARGET_DIR`, else `<workspace>/target`). For tests: point it
    /// at a fake `criterion/` tree and `morph-bench/memory.json`.
    #[arg(long, value_name = "DIR", hide = true)]
    target_dir: Option<PathBuf>,
}

/// Checks a baseline name: criterion makes it a directory name beside
/// `new`, and this command reads `<NAME>/estimates.json`.
fn baseline_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(name, "." | ".." | "new" | "change" | "report");
    if ok {
        Ok(name.to_owned())
    } else {
        Err(
            "use letters, digits, `_`, `-` and `.` only; not `new`, `change` or `report` \
             (criterion's own directories)"
                .to_owned(),
        )
    }
}

/// Parses the command line and runs it; an error is printed to stderr and
/// exits with status 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this package's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo target directory: `explicit`, else `$CARGO_TARGET_DIR`
/// (relative to the current directory, as cargo reads it), else
/// `<workspace>/target`.
fn target_dir(explicit: Option<PathBuf>, workspace: &Path) -> Result<PathBuf> {
    let dir = explicit
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| workspace.join("target"));
    if dir.is_absolute() {
        Ok(dir)
    } else {
        Ok(std::env::current_dir()
            .context("reading the current directory")?
            .join(dir))
    }
}

/// The `bench` subcommand.
fn bench(args: BenchArgs) -> Result<()> {
    let workspace = workspace_root();
    let target_dir = target_dir(args.target_dir, &workspace)?;
    let state_dir = target_dir.join("morph-bench");
    let run_info_path = state_dir.join("run.json");
    let criterion_dir = target_dir.join("criterion");
    let out = workspace.join(&args.out);
    let chart_file = chart_file_name(&out)?;
    let chart_path = out.with_file_name(&chart_file);

    let mut failed = Vec::new();
    let info = if args.report_only {
        RunInfo::load_or_collect(&run_info_path)
    } else {
        let targets: Vec<&str> = if args.only.is_empty() {
            run::all_targets()
        } else {
            // In run order, whatever order they were given in.
            run::all_targets()
                .into_iter()
                .filter(|t| args.only.iter().any(|o| o == t))
                .collect()
        };
        let info = RunInfo::collect(
            Some(args.quick),
            targets.iter().map(|t| (*t).to_owned()).collect(),
        );
        let mut criterion_args = vec!["--noplot".to_owned()];
        if args.quick {
            criterion_args.push("--quick".to_owned());
        }
        if let Some(name) = &args.save_baseline {
            criterion_args.extend(["--save-baseline".to_owned(), name.clone()]);
        }
        if let Some(name) = &args.baseline {
            criterion_args.extend(["--baseline".to_owned(), name.clone()]);
        }
        let runner = run::Runner {
            workspace: workspace.clone(),
            target_dir: target_dir.clone(),
            log_dir: state_dir.clone(),
            criterion_args,
        };
        // Recorded before running: results written by an interrupted run
        // then still come with the facts of the run that wrote them.
        info.save(&run_info_path)?;
        failed = runner.run(&targets)?;
        info
    };

    let results = Measurements::load(&criterion_dir, "new")?;
    let memory = Memory::load(&run::memory_json(&target_dir))?;
    if results.is_empty() && memory.is_none() {
        eprintln!(
            "warning: no results under {} (criterion/ and morph-bench/memory.json); \
             the report's tables will be empty",
            target_dir.display()
        );
    }
    let lock_path = workspace.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    let engines = info::engine_versions(&lock);

    let svg = plot::svg(&plot::RatioChart::kernels_vs_native(&results))?;
    if let Some(dir) = chart_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&chart_path, svg)
        .with_context(|| format!("writing {}", chart_path.display()))?;
    let markdown = report::render(&report::Inputs {
        info: &info,
        engines: &engines,
        results: &results,
        memory: memory.as_ref(),
        chart_file: &chart_file,
    });
    report::write(&out, &markdown)?;
    println!("wrote {} and {}", out.display(), chart_path.display());

    if let Some(name) = &args.baseline {
        let old = Measurements::load(&criterion_dir, name)?;
        if old.is_empty() {
            bail!(
                "baseline `{name}` not found: no <group>/<function>/{name}/estimates.json \
                 under {}",
                criterion_dir.display()
            );
        }
        let moved = compare::moved(&old.all_ratios(), &results.all_ratios());
        print!("{}", compare::describe(name, &moved));
    }

    if !failed.is_empty() {
        bail!(
            "{} bench target(s) failed: {} (errors above); the report shows earlier results \
             for them, if any",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// `<stem>-ratios.svg` for the report `out` (`benchmarks-ratios.svg` for
/// `benchmarks.md`).
fn chart_file_name(out: &Path) -> Result<String> {
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .with_context(|| format!("--out {} has no usable file name", out.display()))?;
    Ok(format!("{stem}-ratios.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_command_lines() -> Result<()> {
        let cli = Cli::try_parse_from([
            "morph-bench",
            "bench",
            "--quick",
            "--save-baseline",
            "main",
            "--only",
            "ops",
            "kernels",
        ])?;
        let Command::Bench(args) = cli.command;
        assert!(args.quick);
        assert_eq!(args.save_baseline.as_deref(), Some("main"));
        assert_eq!(args.only, ["ops", "kernels"]);
        assert_eq!(args.out, Path::new("docs/benchmarks.md"));
        assert!(Cli::try_parse_from(["morph-bench", "bench", "--only", "nope"]).is_err());
        assert!(
            Cli::try_parse_from([
                "morph-bench",
                "bench",
                "--baseline",
                "a",
                "--save-baseline",
                "b"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["morph-bench", "bench", "--baseline", "../x"]).is_err());
        assert!(Cli::try_parse_from(["morph-bench", "bench", "--baseline", "new"]).is_err());
        Ok(())
    }

    #[test]
    fn chart_sits_beside_the_report() -> Result<()> {
        assert_eq!(
            chart_file_name(Path::new("docs/benchmarks.md"))?,
            "benchmarks-ratios.svg"
        );
        assert_eq!(chart_file_name(Path::new("/tmp/x.md"))?, "x-ratios.svg");
        assert!(chart_file_name(Path::new("/")).is_err());
        Ok(())
    }
}
