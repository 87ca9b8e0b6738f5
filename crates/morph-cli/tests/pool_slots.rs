//! `--pool-slots` reaches wasmtime's pool, and `morph` runs extensions
//! under `ulimit -v 8000000` whatever the pool size asked for: the default
//! is sized from the address space, and a pool that cannot be mapped falls
//! back to on-demand allocation with a warning.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `morph args…` under `ulimit -v 8000000`, with a fresh data directory.
fn morph_limited(data: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 8000000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_morph"))
        .args(args)
        .env("MORPH_DATA_DIR", data)
        .current_dir(repo())
        .output()
        .expect("sh runs morph")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn morph_run_works_under_ulimit_v_with_any_pool_size() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut backends = vec!["wasmtime"];
    if cfg!(feature = "wasmer") {
        backends.push("wasmer");
    }
    for backend in backends {
        for slots in [None, Some("0"), Some("2"), Some("1000000")] {
            let mut args = vec!["run", "examples/hello", "hello", "--backend", backend];
            if let Some(n) = slots {
                args.extend(["--pool-slots", n]);
            }
            let o = morph_limited(data.path(), &args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
            assert_eq!(v["message"], "Hello from a Morph extension", "{args:?}");
            if backend == "wasmtime" && slots == Some("1000000") {
                assert!(err.contains("allocating each instance on demand"), "{err}");
            }
        }
    }
}

#[test]
fn the_conformance_matrix_runs_under_ulimit_v() {
    let data = tempfile::tempdir().expect("temp dir");
    let o = morph_limited(
        data.path(),
        &["conformance", "--backend", "wasmtime", "--pool-slots", "4"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

#[test]
fn a_pool_size_that_is_not_a_number_is_refused() {
    let data = tempfile::tempdir().expect("temp dir");
    let o = morph_limited(data.path(), &["backends", "--pool-slots", "lots"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--pool-slots"),
        "{}",
        text(&o.stderr)
    );
}
