//! The example host application runs and prints the extension's answer.

use std::path::Path;
use std::process::Command;

#[test]
fn the_example_host_runs_hello() {
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hello");
    let o = Command::new(env!("CARGO_BIN_EXE_morph-example-embed"))
        .arg(&hello)
        .env_clear()
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON on stdout");
    assert_eq!(value["message"], "Hello from a Morph extension");
}

#[test]
fn a_missing_extension_is_a_clear_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_morph-example-embed"))
        .arg("/nonexistent/extension")
        .output()
        .expect("the example runs");
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("not_found"), "{stderr}");
}
