//! Focused tests of the JavaScript glue, on the in-process backend (the
//! worker backend runs the shared conformance suite).

use std::sync::Arc;
use std::time::{Duration, Instant};

use morph_core::host::{MemoryVault, VaultProvider};
use morph_core::script::{ScriptEngine, ScriptInstance};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext,
    ExtensionArtifact, ExtensionManifest, HostPolicy, LimitEnforcement, LoadedExtension,
    MorphError, ResourceLimits,
};
use morph_runtime_js::{JsEngine, in_process_backend};
use serde_json::{Value, json};

const MANIFEST: &str = r#"
extension_id: test.js
version: 1.0.0
schema_version: "1.0"
metadata: {name: Test, description: Unit tests of the JavaScript backend.}
runtime: js
permissions: [vault:read]
resource_limits: {max_execution_ms: 300, max_host_calls: 20}
actions:
  - {name: run, description: Runs.}
"#;

/// A describe() agreeing with MANIFEST.
const DESCRIBE: &str = r#"
function describe() {
  return { name: "Test", version: "1.0.0",
           actions: [{ name: "run", description: "Runs.", parameters: [] }],
           events: [], config_schema: {} };
}
"#;

fn artifact(source: &str) -> ExtensionArtifact {
    let manifest = ExtensionManifest::from_yaml(MANIFEST, "manifest.yaml").expect("test manifest");
    ExtensionArtifact::from_parts(manifest, source.as_bytes().to_vec())
}

fn vault() -> Arc<MemoryVault> {
    let vault = Arc::new(MemoryVault::new());
    vault
        .set("test.js", "token", "s3cret")
        .expect("seed the vault");
    vault
}

async fn load_with(
    source: &str,
    enforcement: LimitEnforcement,
) -> morph_core::Result<Box<dyn LoadedExtension>> {
    let runtime = EngineRuntime::new(in_process_backend())?;
    let artifact = artifact(source);
    let host = Arc::new(CapabilityHost::builder().vault(vault()).build());
    let policy = HostPolicy {
        enforcement,
        ..HostPolicy::allow_requested()
    };
    runtime.load(&artifact, host, &policy).await
}

/// Loads `execute_source` (after DESCRIBE) best effort.
async fn load(execute_source: &str) -> morph_core::Result<Box<dyn LoadedExtension>> {
    load_with(
        &format!("{DESCRIBE}\n{execute_source}"),
        LimitEnforcement::BestEffort,
    )
    .await
}

async fn run(ext: &dyn LoadedExtension) -> morph_core::Result<Value> {
    ext.execute("run", json!({}), &ExecutionContext::default())
        .await
}

async fn run_source(execute_source: &str) -> morph_core::Result<Value> {
    let ext = load(execute_source).await?;
    run(ext.as_ref()).await
}

fn kind<T>(result: &Result<T, MorphError>) -> ErrorKind {
    match result {
        Ok(_) => panic!("expected an error, got a success"),
        Err(e) => e.kind(),
    }
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let source = "function describe() {}\nfunction execute() {\n  let = = 1;\n}\n";
    let error = JsEngine
        .load("extension.js", source, &ResourceLimits::default())
        .map(|_| ())
        .expect_err("a syntax error");
    assert_eq!(error.kind(), ErrorKind::InvalidModule);
    assert!(
        error.message().starts_with("extension.js:3:"),
        "message: {}",
        error.message()
    );
}

#[tokio::test]
async fn describe_returning_a_string_is_invalid_module() {
    let result = load_with(
        "function describe() { return 'v1'; }\nfunction execute() {}",
        LimitEnforcement::BestEffort,
    )
    .await;
    assert_eq!(kind(&result), ErrorKind::InvalidModule);
}

#[tokio::test]
async fn missing_execute_is_invalid_module() {
    let result = load_with(DESCRIBE, LimitEnforcement::BestEffort).await;
    assert_eq!(kind(&result), ErrorKind::InvalidModule);
}

#[tokio::test]
async fn top_level_exception_fails_the_load() {
    let result = load("throw new RangeError('nope');\nfunction execute() {}").await;
    assert_eq!(kind(&result), ErrorKind::InvalidModule);
    let message = result
        .err()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("RangeError: nope"), "message: {message}");
}

#[tokio::test]
async fn results_and_undefined() {
    let ext =
        load("function execute(a, p, c) { return {action: a, params: p, rid: c.request_id}; }")
            .await
            .expect("load");
    let ctx = ExecutionContext {
        request_id: Some("r-1".into()),
        ..ExecutionContext::default()
    };
    let out = ext.execute("run", json!({}), &ctx).await.expect("run");
    assert_eq!(out, json!({"action": "run", "params": {}, "rid": "r-1"}));
    assert_eq!(
        run_source("function execute() {}").await.expect("run"),
        Value::Null
    );
}

#[tokio::test]
async fn extension_error_keeps_code_and_message() {
    let result = run_source(
        "function execute() { throw new morph.ExtensionError('bad_title', 'title is empty'); }",
    )
    .await;
    let error = result.expect_err("extension error");
    assert_eq!(error.kind(), ErrorKind::ExtensionError);
    assert_eq!(error.code(), Some("bad_title"));
    assert_eq!(error.message(), "title is empty");
}

#[tokio::test]
async fn other_exceptions_are_uncaught_exception() {
    let error = run_source("function execute() { null.x; }")
        .await
        .expect_err("uncaught");
    assert_eq!(error.code(), Some("uncaught_exception"));
    assert!(
        error.message().starts_with("TypeError: "),
        "{}",
        error.message()
    );
    let error = run_source(
        "class MyError extends Error {}\nfunction execute() { throw new MyError('boom'); }",
    )
    .await
    .expect_err("uncaught");
    assert_eq!(error.message(), "MyError: boom");
}

#[tokio::test]
async fn results_that_are_not_json_are_abi_violations() {
    for result in [
        "10n",
        "() => 1",
        "{f() {}}",
        "Symbol('s')",
        "(() => { const a = {}; a.a = a; return a; })()",
    ] {
        let got = run_source(&format!("function execute() {{ return {result}; }}")).await;
        assert_eq!(kind(&got), ErrorKind::AbiViolation, "{result}");
    }
    let deep =
        "function execute() { let a = []; for (let i = 0; i < 5000; i++) a = [a]; return a; }";
    assert_eq!(kind(&run_source(deep).await), ErrorKind::AbiViolation);
    let promise = "async function execute() { return 1; }";
    assert_eq!(kind(&run_source(promise).await), ErrorKind::AbiViolation);
}

#[tokio::test]
async fn endless_loop_times_out_within_the_limit() {
    let ext = load("function execute() { while (true) {} }")
        .await
        .expect("load");
    let started = Instant::now();
    let result = run(ext.as_ref()).await;
    let took = started.elapsed();
    assert_eq!(kind(&result), ErrorKind::Timeout);
    assert!(took < Duration::from_millis(300 + 500), "took {took:?}");
    // The extension stays usable (and the next realm is fresh).
    let ext = load("let n = 0; function execute() { if (n++ > 0) for (;;) {} return n; }")
        .await
        .expect("load");
    assert_eq!(run(ext.as_ref()).await.expect("first"), json!(1));
    assert_eq!(run(ext.as_ref()).await.expect("second"), json!(1));
}

#[tokio::test]
async fn endless_top_level_code_times_out() {
    let ext = load("let go = false;\nfunction execute() { return 1; }\nwhile (go) {}")
        .await
        .expect("load");
    assert_eq!(run(ext.as_ref()).await.expect("run"), json!(1));
    let result = load("for (;;) {}\nfunction execute() {}").await;
    assert_eq!(kind(&result), ErrorKind::Timeout);
}

#[tokio::test]
async fn deep_recursion_is_stack_overflow_and_uncatchable() {
    let ext = load("function f(n) { return f(n + 1) + 1; }\nfunction execute() { try { return f(0); } catch (e) { return 'caught'; } }")
        .await
        .expect("load");
    assert_eq!(kind(&run(ext.as_ref()).await), ErrorKind::StackOverflow);
    // Recursion through a native builtin (sort comparators) is bounded too.
    let through_native = "function f(n) { [2, 1].sort(() => f(n + 1)); return 0; }\nfunction execute() { return f(0); }";
    assert_eq!(
        kind(&run_source(through_native).await),
        ErrorKind::StackOverflow
    );
}

#[tokio::test]
async fn no_state_leaks_between_executions() {
    let ext = load("let count = 0;\nfunction execute() { globalThis.seen = (globalThis.seen || 0) + 1; count += 1; return [count, seen]; }")
        .await
        .expect("load");
    for _ in 0..3 {
        assert_eq!(run(ext.as_ref()).await.expect("run"), json!([1, 1]));
    }
}

#[tokio::test]
async fn host_calls_round_trip_through_the_capability_host() {
    let out = run_source(
        "function execute() {
           const secret = morph.vault.getSecret('token');
           const missing = morph.vault.getSecret('nope');
           let denied;
           try { morph.vault.setSecret('k', 'v'); } catch (e) {
             denied = [e instanceof morph.HostError, e.code, e.op];
           }
           const raw = morph.callEnvelope('vault.set_secret', {key: 'k', value: 'v'});
           return {secret, missing, denied, raw: Object.keys(raw)};
         }",
    )
    .await
    .expect("run");
    assert_eq!(
        out,
        json!({"secret": "s3cret", "missing": null,
               "denied": [true, "permission_denied", "vault.set_secret"], "raw": ["err"]})
    );
}

#[tokio::test]
async fn uncaught_host_error_keeps_the_host_code() {
    let error = run_source("function execute() { return morph.vault.setSecret('k', 'v'); }")
        .await
        .expect_err("denied");
    assert_eq!(error.code(), Some("permission_denied"));
    assert!(
        error.message().starts_with("vault.set_secret: "),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn fatal_host_errors_cannot_be_caught() {
    // max_host_calls is 20: the quota error ends the execution even though
    // every call is wrapped in try/catch.
    let result = run_source(
        "function execute() {
           for (let i = 0; i < 100; i++) { try { morph.vault.getSecret('token'); } catch (e) {} finally { continue; } }
           return 'survived';
         }",
    )
    .await;
    assert_eq!(kind(&result), ErrorKind::QuotaExceeded);
}

#[tokio::test]
async fn logs_and_console() {
    let out = run_source(
        "function execute() { console.log('a', 1, {b: 2}); console.error(new Error('e')); morph.log('x', 'warn'); return 'logged'; }",
    )
    .await
    .expect("run");
    assert_eq!(out, json!("logged"));
}

#[tokio::test]
async fn tampering_with_globals_does_not_break_the_envelope() {
    let source = format!(
        "{DESCRIBE}
         function tamper() {{
           globalThis.JSON = {{ stringify() {{ return '\"tampered\"'; }}, parse() {{ return {{}}; }} }};
           Object.prototype.toJSON = function () {{ return 'tampered'; }};
           Array.prototype.toJSON = function () {{ return 'tampered'; }};
           Map.prototype.get = function () {{ throw new Error('tampered'); }};
           String.prototype.toLowerCase = function () {{ return 'tampered'; }};
           try {{ morph = null; }} catch (e) {{}}
           try {{ morph.vault = null; }} catch (e) {{}}
         }}
         tamper();
         function execute() {{ tamper(); return {{a: [1, {{b: morph.vault.getSecret('token')}}], d: new Date(0)}}; }}"
    );
    let ext = load_with(&source, LimitEnforcement::BestEffort)
        .await
        .expect("load");
    let out = run(ext.as_ref()).await.expect("run");
    assert_eq!(
        out,
        json!({"a": [1, {"b": "s3cret"}], "d": "1970-01-01T00:00:00.000Z"})
    );
}

#[tokio::test]
async fn in_process_backend_refuses_strict_memory() {
    let result = load_with(
        &format!("{DESCRIBE}\nfunction execute() {{}}"),
        LimitEnforcement::Strict,
    )
    .await;
    assert_eq!(kind(&result), ErrorKind::Unsupported);
}

#[test]
fn each_run_is_a_fresh_realm_on_the_engine_directly() {
    // Without a runtime: load once, run twice, through the ScriptEngine trait.
    use std::sync::Mutex;

    use morph_core::script::{ScriptCall, ScriptHost, SharedHost};
    use morph_core::{Deadline, GuestCall};

    struct NoHost;
    impl ScriptHost for NoHost {
        fn call(&mut self, _: &[u8]) -> morph_core::Result<Vec<u8>> {
            Err(MorphError::host_error("no host here"))
        }
        fn log(&mut self, _: i32, _: &str) -> morph_core::Result<()> {
            Ok(())
        }
    }
    let limits = ResourceLimits::default();
    let source =
        format!("{DESCRIBE}\nvar n = 0;\nfunction execute(a, p) {{ n += p.k; return n; }}");
    let mut instance: Box<dyn ScriptInstance> = JsEngine
        .load("extension.js", &source, &limits)
        .expect("load");
    for _ in 0..2 {
        let host: SharedHost = Arc::new(Mutex::new(NoHost));
        let out = instance
            .run(ScriptCall {
                call: GuestCall::Execute {
                    action: "run",
                    params: br#"{"k": 5}"#,
                    context: b"{}",
                },
                host,
                deadline: Deadline::after(Duration::from_secs(5)),
                limits,
            })
            .expect("run");
        assert_eq!(out, br#"{"ok":5}"#);
    }
    // A host error is fatal: it comes back from run, whatever the script does.
    let source = format!(
        "{DESCRIBE}\nfunction execute() {{ try {{ morph.call('x', {{}}); }} catch (e) {{}} return 1; }}"
    );
    let mut instance = JsEngine
        .load("extension.js", &source, &limits)
        .expect("load");
    let host: SharedHost = Arc::new(Mutex::new(NoHost));
    let error = instance
        .run(ScriptCall {
            call: GuestCall::Execute {
                action: "run",
                params: b"{}",
                context: b"{}",
            },
            host,
            deadline: Deadline::after(Duration::from_secs(5)),
            limits,
        })
        .expect_err("fatal");
    assert_eq!(error.kind(), ErrorKind::HostError);
}

/// In process, a source that would overflow Boa's recursive parser must
/// not abort the host: the entry script is refused at load, and `eval` or
/// `Function` of one throws a catchable SyntaxError.
#[tokio::test]
async fn deeply_nested_sources_never_abort_the_host() {
    for nested in [
        format!("var x = {}{};", "[".repeat(20_000), "]".repeat(20_000)),
        format!("var x = {}1;", "!".repeat(100_000)),
        format!("var x = {}1;", "a ? 1 : ".repeat(50_000)),
        format!("var x = (1{});", ", 1".repeat(100_000)),
    ] {
        let result = load(&format!("{nested}\nfunction execute() {{}}")).await;
        assert_eq!(kind(&result), ErrorKind::InvalidModule);
        let message = result
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains("extension.js: line 8"), "{message}");
    }
    for call in ["eval(src)", "new Function(src)", "Function('a', src)"] {
        let out = run_source(&format!(
            "function execute() {{
               const src = '['.repeat(100000) + ']'.repeat(100000);
               try {{ {call}; return 'compiled'; }} catch (e) {{ return [e.name, e.message.slice(0, 15)]; }}
             }}"
        ))
        .await
        .expect("run");
        assert_eq!(out, json!(["SyntaxError", "source refused:"]), "{call}");
    }
    // JSON.parse and RegExp have limits of their own.
    let out = run_source(
        "function execute() {
           const r = [];
           for (const f of [() => JSON.parse('['.repeat(100000) + ']'.repeat(100000)),
                            () => new RegExp('('.repeat(100000) + ')'.repeat(100000))]) {
             try { f(); r.push('ok'); } catch (e) { r.push(e.name); }
           }
           return r;
         }",
    )
    .await
    .expect("run");
    assert_eq!(out, json!(["SyntaxError", "SyntaxError"]));
}
