//! The benchmark kernels as a Morph extension (guest ABI v1 through
//! `morph-sdk`). Actions: one per kernel (`{"n": size}`),
//! `noop`, and `host_calls` (`{"count", "bytes"}`: that many `data.set`
//! host calls with a value of that many bytes, for the round-trip bench).

use morph_sdk::Failure;
use serde_json::{Value, json};

#[unsafe(no_mangle)]
pub extern "C" fn describe() -> i64 {
    let n = json!([{"name": "n", "type": "integer", "required": true}]);
    let mut actions: Vec<Value> = morph_kernels::KERNELS
        .iter()
        .map(|(name, _)| json!({"name": name, "description": format!("The {name} kernel."), "parameters": n}))
        .collect();
    actions.push(json!({"name": "noop", "description": "Does nothing.", "parameters": []}));
    actions.push(json!({"name": "host_calls", "description": "`count` data.set host calls of `bytes` bytes.",
        "parameters": [{"name": "count", "type": "integer", "required": true},
                       {"name": "bytes", "type": "integer", "required": true}]}));
    let doc = json!({"name": "Kernels", "version": "1.0.0", "actions": actions, "events": [], "config_schema": {}});
    morph_sdk::describe(&doc)
}

fn run(action: &str, params: Value, _context: Value) -> Result<Value, Failure> {
    match action {
        "noop" => Ok(Value::Null),
        "host_calls" => {
            let count = params["count"].as_u64().unwrap_or(0);
            let value = "x".repeat(params["bytes"].as_u64().unwrap_or(0) as usize);
            for _ in 0..count {
                morph_sdk::call("data.set", json!({"key": "k", "value": value}))?;
            }
            Ok(json!(count))
        }
        kernel => morph_kernels::run(kernel, params["n"].as_u64().unwrap_or(0))
            .map_err(|e| Failure::new("kernel", e)),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn execute(a_ptr: i32, a_len: i32, p_ptr: i32, p_len: i32, c_ptr: i32, c_len: i32) -> i64 {
    // SAFETY: the host passes ranges it placed in this module's memory.
    unsafe { morph_sdk::execute(a_ptr, a_len, p_ptr, p_len, c_ptr, c_len, run) }
}
