//! # morph-sdk
//!
//! The guest side of Morph's ABI v1 (docs/abi.md) for extensions written in
//! Rust and built for `wasm32-unknown-unknown`: this crate exports
//! `morph_abi_version` and `morph_alloc`, and gives the extension
//! [`describe`], [`execute`], [`call`] and [`log`], so an extension is its
//! two exports and its actions:
//!
//! ```ignore
//! use morph_sdk::{Failure, call};
//! use serde_json::{Value, json};
//!
//! #[unsafe(no_mangle)]
//! pub extern "C" fn describe() -> i64 {
//!     morph_sdk::describe(&json!({"name": "Hello", "version": "1.0.0",
//!         "actions": [{"name": "hello", "description": "Greets.", "parameters": []}],
//!         "events": [], "config_schema": {}}))
//! }
//!
//! #[unsafe(no_mangle)]
//! pub extern "C" fn execute(a: i32, al: i32, p: i32, pl: i32, c: i32, cl: i32) -> i64 {
//!     // SAFETY: the host passes ranges it placed in our memory.
//!     unsafe { morph_sdk::execute(a, al, p, pl, c, cl, run) }
//! }
//!
//! fn run(action: &str, params: Value, _context: Value) -> Result<Value, Failure> {
//!     match action {
//!         "hello" => Ok(json!({"greeting": call("vault.get_secret", json!({"key": "greeting"}))?})),
//!         other => Err(Failure::new("unknown_action", format!("no action {other}"))),
//!     }
//! }
//! ```
//!
//! Every call runs on a fresh instance, so memory handed to the host is
//! simply leaked. Outside wasm32 (tests, docs) host calls fail with
//! `unsupported`.
#![deny(clippy::undocumented_unsafe_blocks)]

use serde_json::{Value, json};

/// An action's failure: the `err` envelope's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A short machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod ffi {
    #[link(wasm_import_module = "morph")]
    unsafe extern "C" {
        pub fn host_call(req_ptr: i32, req_len: i32) -> i32;
        pub fn host_response(dst_ptr: i32, dst_len: i32) -> i32;
        pub fn log(level: i32, ptr: i32, len: i32);
    }
}

/// The ABI version this crate speaks (exported as `morph_abi_version`).
pub const ABI_VERSION: i32 = 1;

/// `morph_abi_version`: the ABI this extension speaks.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn morph_abi_version() -> i32 {
    ABI_VERSION
}

/// `morph_alloc`: memory for the host to place action, params and context.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn morph_alloc(size: i32) -> i32 {
    let mut buf = Vec::<u8>::with_capacity(size.max(1) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

/// Hands `bytes` to the host as a packed `(ptr << 32) | len`; leaked on
/// purpose (every call runs on a fresh instance).
pub fn leak(bytes: Vec<u8>) -> i64 {
    let bytes = bytes.leak();
    ((bytes.as_ptr() as usize as i64) << 32) | bytes.len() as i64
}

/// The body of a `describe` export: the document, serialised and handed
/// to the host.
pub fn describe(doc: &Value) -> i64 {
    leak(doc.to_string().into_bytes())
}

/// The body of an `execute` export: reads action, params and context,
/// runs `handler`, and returns the `ok`/`err` envelope. Params or context
/// that are not JSON arrive as `null`.
///
/// # Safety
///
/// Each `(ptr, len)` pair must be a range of this module's memory, as the
/// host passes them to `execute`.
pub unsafe fn execute(
    a_ptr: i32,
    a_len: i32,
    p_ptr: i32,
    p_len: i32,
    c_ptr: i32,
    c_len: i32,
    handler: impl FnOnce(&str, Value, Value) -> Result<Value, Failure>,
) -> i64 {
    // SAFETY: the caller guarantees the ranges (the host placed them).
    let (action, params, context) = unsafe {
        (
            guest_bytes(a_ptr, a_len),
            guest_bytes(p_ptr, p_len),
            guest_bytes(c_ptr, c_len),
        )
    };
    let action = String::from_utf8_lossy(action);
    let params = serde_json::from_slice(params).unwrap_or(Value::Null);
    let context = serde_json::from_slice(context).unwrap_or(Value::Null);
    leak(envelope(handler(&action, params, context)).into_bytes())
}

/// The envelope text of an action's result.
pub fn envelope(result: Result<Value, Failure>) -> String {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(f) => json!({"err": {"code": f.code, "message": f.message}}),
    }
    .to_string()
}

unsafe fn guest_bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if len <= 0 {
        return &[];
    }
    // SAFETY: see `execute`.
    unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// One host call (`{"op", "args"}`), returning the response envelope as
/// JSON (`{"ok": ...}` or `{"err": {...}}`).
pub fn call_envelope(op: &str, args: Value) -> Value {
    let request = json!({"op": op, "args": args}).to_string();
    match raw_call(request.as_bytes()) {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            json!({"err": {"code": "bad_response", "message": format!("unreadable response: {e}")}})
        }),
        None => json!({"err": {"code": "unsupported", "message": "not running inside Morph"}}),
    }
}

/// One host call: its `ok` value, or the host's error as a [`Failure`]
/// (code from the envelope, message prefixed with the op). A response that
/// is not an envelope is a `bad_response` failure, never a success.
pub fn call(op: &str, args: Value) -> Result<Value, Failure> {
    let mut envelope = call_envelope(op, args);
    if let Some(err) = envelope.get("err") {
        let code = err["code"].as_str().unwrap_or("host_error").to_string();
        let message = err["message"].as_str().unwrap_or_default();
        return Err(Failure::new(code, format!("{op}: {message}")));
    }
    match envelope.get_mut("ok") {
        Some(ok) => Ok(ok.take()),
        None => Err(Failure::new(
            "bad_response",
            format!("{op}: the host's response is not an envelope"),
        )),
    }
}

#[cfg(target_arch = "wasm32")]
fn raw_call(request: &[u8]) -> Option<Vec<u8>> {
    // SAFETY: the two-phase host call: the host reads the request, keeps
    // the response, and copies it into the buffer we size from its length.
    unsafe {
        let n = ffi::host_call(request.as_ptr() as i32, request.len() as i32);
        let mut response = vec![0u8; n.max(0) as usize];
        ffi::host_response(response.as_mut_ptr() as i32, n);
        Some(response)
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn raw_call(_request: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Logs `message` through the host (level 0 trace … 4 error).
pub fn log(level: i32, message: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `message` from our memory during the call.
    unsafe {
        ffi::log(level, message.as_ptr() as i32, message.len() as i32)
    };
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_native_host_calls() {
        assert_eq!(envelope(Ok(json!(1))), r#"{"ok":1}"#);
        let e = envelope(Err(Failure::new("bad", "no")));
        assert_eq!(e, r#"{"err":{"code":"bad","message":"no"}}"#);
        let f = call("vault.get_secret", json!({})).unwrap_err();
        assert_eq!(f.code, "unsupported");
        assert!(f.message.starts_with("vault.get_secret: "));
    }
}
