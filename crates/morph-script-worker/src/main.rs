//! `morph-worker`: the worker program of Morph's `js` and `python`
//! backends for host programs that cannot be re-executed as their own
//! workers (a Python application's interpreter, for one). Such a host
//! names this binary (`MorphBuilder::worker_program`; the Python package
//! ships it and does so itself), Morph starts it with the worker arguments,
//! and it serves the JavaScript (Boa) and Python (embedded CPython) engines
//! under the same sandbox as any other worker. Started any other way it
//! says what it is and exits with status 2.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    morph::main_if_worker();
    eprintln!(
        "morph-worker: Morph starts this program as the worker process of JavaScript and Python extensions (MorphBuilder::worker_program); it does nothing on its own"
    );
    ExitCode::from(2)
}
