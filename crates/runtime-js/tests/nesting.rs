//! The nesting check against Boa itself: for each construct that makes
//! Boa's parser or compiler recurse, the deepest source the check accepts
//! loads and runs on a 16 MiB thread (morph-core's execution threads)
//! without overflowing it. Each source runs in a child process of this
//! test, since an overflow aborts the process.

use morph_core::script::{ScriptCall, ScriptEngine, ScriptHost, SharedHost};
use morph_core::{Deadline, GuestCall, MorphError, ResourceLimits};
use morph_runtime_js::JsEngine;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn body(kind: &str, n: usize) -> String {
    match kind {
        "brackets" => format!("var x = {}{};", "[".repeat(n), "]".repeat(n)),
        "parens" => format!("var x = {}1{};", "(".repeat(n), ")".repeat(n)),
        "objects" => format!("var x = {}1{};", "{a: ".repeat(n), "}".repeat(n)),
        "braces" => format!("{}{}", "{".repeat(n), "}".repeat(n)),
        "unary" => format!("var x = {}1;", "!".repeat(n)),
        "minus" => format!("var x = {}1;", "- ".repeat(n)),
        "ternary" => format!("var x = {}1;", "a ? 1 : ".repeat(n)),
        "assign" => format!("var a, x = {}1;", "a = ".repeat(n)),
        "arrow" => format!("var x = {}1;", "a => ".repeat(n)),
        "plus" => format!("var x = 1{};", " + 1".repeat(n)),
        "member" => format!("var a = {{}}; a.b = a; var x = a{};", ".b".repeat(n)),
        "call" => format!("var a = () => a; var x = a{};", "()".repeat(n)),
        "ifs" => format!("var a = 0; {}1;", "if (a) ".repeat(n)),
        "elseif" => format!("var a = 0; if (a) {{}}{}", " else if (a) {{}}".repeat(n)),
        "elseif2" => format!("var a = 0; if (a) a;{}", " else if (a) a;".repeat(n)),
        "exp" => format!("var x = 1{};", " ** 1".repeat(n)),
        "new" => format!(
            "var a = function () {{ return a; }}; var x = {}a;",
            "new ".repeat(n)
        ),
        "comma" => format!("var x = (1{});", ", 1".repeat(n)),
        "template" => format!("var x = {}1{};", "`${".repeat(n), "}`".repeat(n)),
        "funcs" => format!("{}{}", "function f(){".repeat(n), "}".repeat(n)),
        "typeof" => format!("var x = {}1;", "typeof ".repeat(n)),
        "mixed" => format!(
            "var a = 0, x = {}1{};",
            "[!(a ? ".repeat(n),
            ": 1)]".repeat(n)
        ),
        "labels" => format!(
            "{}1;",
            (0..n).map(|i| format!("l{i}: ")).collect::<String>()
        ),
        "loops" => format!("var a = 0; {}a;", "while (a) ".repeat(n)),
        _ => panic!("kind"),
    }
}

fn source(kind: &str, n: usize) -> String {
    format!(
        "function describe() {{ return {{}}; }}\nfunction execute() {{\n{}\nreturn 1; }}",
        body(kind, n)
    )
}

struct NoHost;
impl ScriptHost for NoHost {
    fn call(&mut self, _: &[u8]) -> morph_core::Result<Vec<u8>> {
        Err(MorphError::host_error("none"))
    }
    fn log(&mut self, _: i32, _: &str) -> morph_core::Result<()> {
        Ok(())
    }
}

const KINDS: &[&str] = &[
    "brackets", "parens", "objects", "braces", "unary", "minus", "ternary", "assign", "arrow",
    "plus", "member", "call", "ifs", "elseif", "elseif2", "exp", "new", "comma", "template",
    "funcs", "typeof", "mixed", "labels", "loops",
];

#[test]
fn the_deepest_accepted_sources_run_on_a_16_mib_stack() {
    if let Ok(spec) = std::env::var("PROBE") {
        let (kind, n) = spec.split_once(':').unwrap();
        let src = source(kind, n.parse().unwrap());
        let out = std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn(move || {
                let limits = ResourceLimits::default();
                let mut inst = match JsEngine.load("x.js", &src, &limits) {
                    Ok(i) => i,
                    Err(e) => return format!("load err {e}"),
                };
                let host: SharedHost = Arc::new(Mutex::new(NoHost));
                let r = inst.run(ScriptCall {
                    call: GuestCall::Execute {
                        action: "a",
                        params: b"{}",
                        context: b"{}",
                    },
                    host,
                    deadline: Deadline::after(Duration::from_secs(20)),
                    limits,
                });
                match r {
                    Ok(b) => String::from_utf8_lossy(&b).chars().take(40).collect(),
                    Err(e) => format!("err {}", e.kind()),
                }
            })
            .unwrap()
            .join()
            .unwrap();
        println!("RESULT {out}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut died = Vec::new();
    for kind in KINDS {
        // The largest n the check accepts.
        let (mut lo, mut hi) = (1usize, 1usize << 20);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if morph_runtime_js::nesting::check(&source(kind, mid)).is_ok() {
                lo = mid
            } else {
                hi = mid - 1
            }
        }
        let out = Command::new(&exe)
            .args([
                "the_deepest_accepted_sources_run_on_a_16_mib_stack",
                "--exact",
                "--nocapture",
            ])
            .env("PROBE", format!("{kind}:{lo}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let r = if let Some(i) = text.find("RESULT ") {
            text[i + 7..].lines().next().unwrap_or("").to_string()
        } else {
            format!("DIED {:?}", out.status)
        };
        eprintln!("{kind:10} max accepted {lo:7}: {r}");
        if !r.starts_with('{') {
            died.push(format!("{kind} at {lo}: {r}"));
        }
    }
    assert!(
        died.is_empty(),
        "accepted sources crashed the engine: {died:?}"
    );
}

#[test]
fn real_code_passes_the_nesting_check() {
    for f in [
        "../../examples/markdown-js/extension.js",
        "../../examples/issue-tracker-js/extension.js",
        "../../examples/hello-js/extension.js",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let source = std::fs::read_to_string(&path).expect("example source");
        assert_eq!(morph_runtime_js::nesting::check(&source), Ok(()), "{f}");
    }
}
