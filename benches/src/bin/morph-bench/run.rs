//! Running the benchmarks: `cargo bench` for each criterion target with a
//! progress bar, then the memory benchmark.
//!
//! For each criterion target, `cargo bench … -- --list` first builds it and
//! counts its benchmarks (criterion prints `NAME: benchmark` per benchmark)
//! to size the bar; then the real run advances the bar on every
//! `Benchmarking NAME: Analyzing` line, which criterion prints once per
//! benchmark (on stderr in criterion 0.8; both streams are watched).
//! Everything both commands print goes to `<target dir>/morph-bench/
//! <target>.log`; cargo's compile output is shown only when a command fails
//! (its last lines, with the log's path).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// Criterion bench targets of `morph-benches`, run in this order.
pub const CRITERION_TARGETS: [&str; 2] = ["kernels", "ops"];

/// The memory bench target (`harness = false`; writes `memory.json`).
pub const MEMORY_TARGET: &str = "memory";

/// The package whose bench targets are run.
const PACKAGE: &str = "morph-benches";

/// Lines of output quoted in the error of a failed command.
const TAIL_LINES: usize = 40;

/// Every target `--only` accepts, in run order.
pub fn all_targets() -> Vec<&'static str> {
    CRITERION_TARGETS
        .into_iter()
        .chain(std::iter::once(MEMORY_TARGET))
        .collect()
}

/// How the benchmarks are run.
pub struct Runner {
    /// Workspace root: the directory `cargo bench` runs in.
    pub workspace: PathBuf,
    /// Cargo's target directory, passed to every `cargo bench` as
    /// `CARGO_TARGET_DIR` (the memory benchmark writes its JSON under it).
    pub target_dir: PathBuf,
    /// Where the logs go (`<target dir>/morph-bench`).
    pub log_dir: PathBuf,
    /// Arguments after `--` for criterion targets (`--noplot`, `--quick`,
    /// baseline flags).
    pub criterion_args: Vec<String>,
}

impl Runner {
    /// Runs `targets` (names from [`all_targets`]) one after another. A
    /// target that fails is reported on stderr and the others still run;
    /// returns the names of the failed ones.
    pub fn run(&self, targets: &[&str]) -> Result<Vec<String>> {
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("creating {}", self.log_dir.display()))?;
        let mut failed = Vec::new();
        for &target in targets {
            let result = if target == MEMORY_TARGET {
                self.memory()
            } else {
                self.criterion(target)
            };
            if let Err(e) = result {
                eprintln!("error: {e:#}\n");
                failed.push(target.to_owned());
            }
        }
        Ok(failed)
    }

    /// Lists, then runs, one criterion target with a progress bar.
    fn criterion(&self, target: &str) -> Result<()> {
        let log_path = self.log_dir.join(format!("{target}.log"));
        let mut log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let started = Instant::now();

        let list_args = ["--list".to_owned()];
        let progress = Progress::spinner(target, "building");
        let mut tail = Tail::default();
        let mut count = 0u64;
        let status = stream(self.cargo_bench(target, &list_args), &mut log, |line| {
            if line.ends_with(": benchmark") {
                count += 1;
            } else if let Some(what) = line.trim_start().strip_prefix("Compiling ") {
                progress.message(&format!("compiling {what}"));
            }
            tail.push(line);
        })?;
        progress.finish();
        if !status.success() {
            bail!(failure(
                target,
                "listing its benchmarks",
                &list_args,
                status,
                &tail,
                &log_path
            ));
        }

        let progress = if count == 0 {
            Progress::spinner(target, "running")
        } else {
            Progress::bar(target, count)
        };
        let mut tail = Tail::default();
        let mut done = 0u64;
        let status = stream(
            self.cargo_bench(target, &self.criterion_args),
            &mut log,
            |line| {
                if let Some(name) = analyzing(line) {
                    done += 1;
                    progress.advance(name);
                } else if line.starts_with("Warning:") {
                    progress.println(&format!("{target}: {line}"));
                }
                tail.push(line);
            },
        )?;
        progress.finish();
        if !status.success() {
            bail!(failure(
                target,
                "running",
                &self.criterion_args,
                status,
                &tail,
                &log_path
            ));
        }
        eprintln!(
            "{target}: {done} benchmarks in {} (log: {})",
            format_duration(started.elapsed()),
            log_path.display()
        );
        Ok(())
    }

    /// Runs the memory benchmark and checks that it wrote its JSON.
    fn memory(&self) -> Result<()> {
        let target = MEMORY_TARGET;
        let log_path = self.log_dir.join(format!("{target}.log"));
        let mut log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let started = SystemTime::now();
        let clock = Instant::now();
        let progress = Progress::spinner(target, "building");
        let mut tail = Tail::default();
        let status = stream(self.cargo_bench(target, &[]), &mut log, |line| {
            if let Some(what) = line.trim_start().strip_prefix("Compiling ") {
                progress.message(&format!("compiling {what}"));
            } else if line.trim_start().starts_with("Running ") {
                progress.message("running");
            }
            tail.push(line);
        })?;
        progress.finish();
        if !status.success() {
            bail!(failure(target, "running", &[], status, &tail, &log_path));
        }
        let json = memory_json(&self.target_dir);
        let fresh = std::fs::metadata(&json)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= started);
        if !fresh {
            bail!(
                "bench target `{target}` succeeded but did not write {} (log: {})",
                json.display(),
                log_path.display()
            );
        }
        eprintln!(
            "{target}: done in {} (log: {})",
            format_duration(clock.elapsed()),
            log_path.display()
        );
        Ok(())
    }

    /// `cargo bench -p morph-benches --bench <target> [-- <args>]`, in the
    /// workspace, with this runner's target directory.
    fn cargo_bench(&self, target: &str, args: &[String]) -> Command {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.workspace)
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .args(["bench", "-p", PACKAGE, "--bench", target]);
        if !args.is_empty() {
            cmd.arg("--").args(args);
        }
        cmd
    }
}

/// Where the memory benchmark writes its results.
pub fn memory_json(target_dir: &Path) -> PathBuf {
    target_dir.join("morph-bench").join("memory.json")
}

/// The benchmark name of a criterion `Benchmarking NAME: Analyzing` line.
pub fn analyzing(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("Benchmarking ")?
        .strip_suffix(": Analyzing")
}

/// The error message of a failed `cargo bench`.
fn failure(
    target: &str,
    doing: &str,
    args: &[String],
    status: ExitStatus,
    tail: &Tail,
    log: &Path,
) -> String {
    let mut command = format!("cargo bench -p {PACKAGE} --bench {target}");
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }
    let mut msg = format!("bench target `{target}` failed while {doing} (`{command}`: {status})");
    if tail
        .lines
        .iter()
        .any(|l| l.contains("no bench target named"))
    {
        msg.push_str(&format!(
            "\n  `{target}` is not a bench target yet: add `[[bench]] name = \"{target}\"` \
             (harness = false) to benches/Cargo.toml and benches/benches/{target}.rs"
        ));
    }
    msg.push_str("\nlast lines of its output:\n");
    for line in &tail.lines {
        msg.push_str("  ");
        msg.push_str(line);
        msg.push('\n');
    }
    msg.push_str(&format!("full output: {}", log.display()));
    msg
}

/// The last [`TAIL_LINES`] lines a command printed.
#[derive(Default)]
struct Tail {
    /// The lines, oldest first.
    lines: VecDeque<String>,
}

impl Tail {
    /// Keeps `line`, dropping the oldest one when full.
    fn push(&mut self, line: &str) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }
}

/// Runs `cmd`, passing each line of its stdout and stderr (interleaved as
/// they arrive) to `on_line` and copying it to `log`; returns its status.
fn stream(mut cmd: Command, log: &mut File, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("{cmd:?}");
    writeln!(log, "$ {described}")?;
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {described}"))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let readers = [spawn_reader(stdout, tx.clone()), spawn_reader(stderr, tx)];
    for line in rx {
        writeln!(log, "{line}")?;
        on_line(&line);
    }
    for reader in readers {
        // A reader only ends at end of file or on a read error; either way
        // every line it read has been handled above.
        let _ = reader.join();
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {described}"))?;
    writeln!(log, "# {status}")?;
    Ok(status)
}

/// A thread sending each line of `input` (lossily decoded, without its line
/// ending) to `tx`.
fn spawn_reader(
    input: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut input = BufReader::new(input);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// "4m05s" or "12.3s".
fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Progress of one target: an indicatif bar or spinner on a terminal, plain
/// lines on stderr otherwise (indicatif draws nothing when stderr is not a
/// terminal, e.g. in CI logs).
struct Progress {
    /// The bar; hidden when stderr is not a terminal.
    bar: ProgressBar,
    /// Whether to print plain lines instead of drawing.
    plain: bool,
    /// The target's name, prefixed to plain lines.
    target: String,
}

impl Progress {
    /// A spinner for a step of unknown length (building, listing).
    fn spinner(target: &str, message: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let progress = Self::new(bar, target);
        progress.bar.enable_steady_tick(Duration::from_millis(120));
        progress.message(message);
        progress
    }

    /// A bar of `total` benchmarks.
    fn bar(target: &str, total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {pos}/{len} {elapsed:>4} (eta {eta}) {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let progress = Self::new(bar, target);
        progress.bar.enable_steady_tick(Duration::from_millis(500));
        if progress.plain {
            eprintln!("{target}: {total} benchmarks");
        }
        progress
    }

    /// Wraps `bar`, deciding between drawing and plain lines.
    fn new(bar: ProgressBar, target: &str) -> Self {
        bar.set_prefix(target.to_owned());
        Self {
            bar,
            plain: !std::io::stderr().is_terminal(),
            target: target.to_owned(),
        }
    }

    /// Shows `message` next to the bar (plain mode prints nothing: compile
    /// steps would flood a log).
    fn message(&self, message: &str) {
        self.bar.set_message(message.to_owned());
    }

    /// One benchmark done: advances the bar and shows its name.
    fn advance(&self, name: &str) {
        self.bar.inc(1);
        self.bar.set_message(name.to_owned());
        if self.plain {
            match self.bar.length() {
                Some(len) => eprintln!("{}: [{}/{len}] {name}", self.target, self.bar.position()),
                None => eprintln!("{}: {name}", self.target),
            }
        }
    }

    /// Prints a line above the bar.
    fn println(&self, line: &str) {
        if self.plain {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_criterion_analyzing_lines() {
        assert_eq!(
            analyzing("Benchmarking kernel_fib/wasmtime-pulley: Analyzing"),
            Some("kernel_fib/wasmtime-pulley")
        );
        assert_eq!(
            analyzing("Benchmarking kernel_fib/native: Warming up for 3.0000 s"),
            None
        );
        assert_eq!(
            analyzing("kernel_fib/native      time:   [1.0 µs 1.1 µs 1.2 µs]"),
            None
        );
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut tail = Tail::default();
        for i in 0..100 {
            tail.push(&i.to_string());
        }
        assert_eq!(tail.lines.len(), TAIL_LINES);
        assert_eq!(tail.lines.front().map(String::as_str), Some("60"));
    }
}
