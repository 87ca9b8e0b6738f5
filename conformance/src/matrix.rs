//! The matrix: every case on every backend, as a table or JSON.

use std::fmt::Write;
use std::sync::Arc;

use morph_core::{BaseMorphRuntime, RuntimeInfo};
use serde::Serialize;

use crate::case::Suite;
use crate::runner::{CaseResult, run_case};

/// Results of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Backends, in column order, with what they declare.
    pub backends: Vec<RuntimeInfo>,
    /// Case names, in row order.
    pub cases: Vec<String>,
    /// One result per (case, backend).
    pub results: Vec<CaseResult>,
}

impl Matrix {
    /// Runs every case of `suite` on every backend, one after another.
    pub async fn run(suite: &Suite, backends: &[(String, Arc<dyn BaseMorphRuntime>)]) -> Matrix {
        let mut results = Vec::new();
        for case in &suite.cases {
            for (name, runtime) in backends {
                results.push(run_case(runtime.as_ref(), name, suite, case).await);
            }
        }
        Matrix {
            backends: backends.iter().map(|(_, r)| r.info()).collect(),
            cases: suite.cases.iter().map(|c| c.name.clone()).collect(),
            results,
        }
    }

    /// The failures.
    pub fn failures(&self) -> Vec<&CaseResult> {
        self.results
            .iter()
            .filter(|r| r.status.is_failure())
            .collect()
    }

    /// A text table (cases × backends), then a line per failure and a
    /// summary line `N passed, N failed`.
    pub fn render(&self) -> String {
        let width = self.cases.iter().map(String::len).max().unwrap_or(4).max(4);
        let mut out = String::new();
        let _ = write!(out, "{:width$}", "case");
        for b in &self.backends {
            let _ = write!(out, "  {:>12}", b.name);
        }
        out.push('\n');
        for case in &self.cases {
            let _ = write!(out, "{case:width$}");
            for b in &self.backends {
                let cell = self
                    .results
                    .iter()
                    .find(|r| &r.case == case && r.backend == b.name)
                    .map_or("-", |r| r.status.cell());
                let _ = write!(out, "  {cell:>12}");
            }
            out.push('\n');
        }
        let failures = self.failures();
        for f in &failures {
            if let crate::runner::Status::Fail(why) = &f.status {
                let _ = writeln!(out, "FAIL {}/{}: {why}", f.backend, f.case);
            }
        }
        let count = |cell: &str| {
            self.results
                .iter()
                .filter(|r| r.status.cell() == cell)
                .count()
        };
        let _ = writeln!(
            out,
            "conformance: {} passed, {} failed, {} unsupported, {} n/a",
            count("pass") + count("xfail"),
            failures.len(),
            count("unsupported"),
            count("n/a")
        );
        out
    }
}
