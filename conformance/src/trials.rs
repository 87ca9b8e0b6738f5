//! The suite as `cargo test` trials named `backend/case`, so
//! `cargo test -- wasmtime/` runs one backend and a failure names both.

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use morph_core::BaseMorphRuntime;

use crate::case::Suite;
use crate::runner::{Status, run_case};

/// One trial per case for `backend`.
pub fn trials(backend: &str, runtime: Arc<dyn BaseMorphRuntime>, suite: &Arc<Suite>) -> Vec<Trial> {
    suite
        .cases
        .iter()
        .map(|case| {
            let (runtime, suite, backend, name) = (
                runtime.clone(),
                suite.clone(),
                backend.to_string(),
                case.name.clone(),
            );
            let applicable = case
                .runtimes
                .as_ref()
                .is_none_or(|rs| runtime.info().kinds.iter().any(|k| rs.contains(k)));
            Trial::test(format!("{backend}/{name}"), move || {
                let case = suite
                    .cases
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| Failed::from("case vanished"))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(e.to_string()))?;
                let result = rt.block_on(run_case(runtime.as_ref(), &backend, &suite, case));
                match result.status {
                    Status::Fail(why) => Err(why.into()),
                    _ => Ok(()),
                }
            })
            .with_ignored_flag(!applicable)
        })
        .collect()
}

/// The `main` of a backend crate's `tests/conformance.rs`: runs the bundled
/// suite on one backend under libtest's command line.
pub fn main_for_backend(backend: &str, runtime: morph_core::Result<Arc<dyn BaseMorphRuntime>>) {
    let args = Arguments::from_args();
    let suite = match Suite::bundled() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("conformance suite: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("backend {backend}: {e}");
            std::process::exit(2);
        }
    };
    libtest_mimic::run(&args, trials(backend, runtime, &suite)).exit();
}
