//! Strings in and out of Boa: the two native functions the prelude builds
//! on, the glue's answers, and Boa errors as `MorphError`s.

use std::cell::RefCell;

use boa_engine::error::{EngineError, PanicError};
use boa_engine::{Context, JsError, JsResult, JsString, JsValue, NativeFunction, js_string};
use morph_core::script::{SharedHost, lock_host};
use morph_core::{MorphError, Result};

/// What the native functions of one call reach through
/// [`Context::get_data`]: the host, and the error that ended the call.
pub(crate) struct HostData {
    host: SharedHost,
    fatal: RefCell<Option<MorphError>>,
}

impl HostData {
    pub(crate) fn new(host: SharedHost) -> Self {
        HostData {
            host,
            fatal: RefCell::new(None),
        }
    }
}

/// The fatal error a native function recorded, if any.
pub(crate) fn take_fatal(context: &Context) -> Option<MorphError> {
    context
        .get_data::<HostData>()
        .and_then(|data| data.fatal.borrow_mut().take())
}

/// Installs `__morph_host` and `__morph_log` (the prelude takes them and
/// deletes the globals).
pub(crate) fn register_natives(context: &mut Context) -> JsResult<()> {
    context.register_global_builtin_callable(
        js_string!("__morph_host"),
        1,
        NativeFunction::from_fn_ptr(host_call),
    )?;
    context.register_global_builtin_callable(
        js_string!("__morph_log"),
        2,
        NativeFunction::from_fn_ptr(host_log),
    )
}

/// Records `error` as the end of the call and unwinds the script with an
/// engine error, which no `catch` or `finally` can intercept.
fn fatal(context: &Context, error: MorphError) -> JsError {
    let message = error.to_string();
    if let Some(data) = context.get_data::<HostData>() {
        data.fatal.borrow_mut().get_or_insert(error);
    }
    PanicError::new(message).into()
}

fn string_arg(args: &[JsValue], i: usize, context: &mut Context) -> JsResult<String> {
    let value = args.get(i).cloned().unwrap_or_default();
    Ok(value.to_string(context)?.to_std_string_lossy())
}

/// `__morph_host(requestJson)`: the response envelope as JSON text.
fn host_call(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let request = string_arg(args, 0, context)?;
    let Some(data) = context.get_data::<HostData>() else {
        return Err(fatal(
            context,
            MorphError::host_error("host call outside an execution"),
        ));
    };
    let result = lock_host(&data.host).call(request.as_bytes());
    match result {
        Ok(envelope) => Ok(JsString::from(String::from_utf8_lossy(&envelope).as_ref()).into()),
        Err(e) => Err(fatal(context, e)),
    }
}

/// `__morph_log(level, text)`.
fn host_log(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let level = args
        .first()
        .cloned()
        .unwrap_or_default()
        // Not clamped: a level outside 0..4 is the session's
        // `abi_violation`, as for a wasm guest.
        .to_i32(context)?;
    let text = string_arg(args, 1, context)?;
    let Some(data) = context.get_data::<HostData>() else {
        return Err(fatal(
            context,
            MorphError::host_error("log outside an execution"),
        ));
    };
    let result = lock_host(&data.host).log(level, &text);
    match result {
        Ok(()) => Ok(JsValue::undefined()),
        Err(e) => Err(fatal(context, e)),
    }
}

/// What the glue's `__morph_describe` / `__morph_run` answered.
pub(crate) fn glue_answer(value: &JsValue, what: &str) -> Result<Vec<u8>> {
    let Some(text) = value.as_string() else {
        return Err(MorphError::host_error(format!(
            "the JavaScript glue answered {what} with a non-string"
        )));
    };
    let text = text.to_std_string_lossy();
    match text.strip_prefix('!') {
        None => Ok(text.into_bytes()),
        Some(error) => {
            let (kind, message) = error.split_once(' ').unwrap_or((error, ""));
            Err(match kind {
                "invalid_module" => MorphError::invalid_module(message),
                "abi_violation" => MorphError::abi_violation(format!("{what} {message}")),
                _ => MorphError::host_error(format!("{what}: {message}")),
            })
        }
    }
}

/// A Boa error that ends the call whatever the script does: a runtime
/// limit (`stack_overflow`), or the fatal error a native function recorded.
/// `None` for exceptions the glue handles.
pub(crate) fn engine_error(error: &JsError, context: &Context, what: &str) -> Option<MorphError> {
    let engine = error.as_engine()?;
    if let Some(fatal) = take_fatal(context) {
        return Some(fatal);
    }
    Some(match engine {
        EngineError::RuntimeLimit(limit) => MorphError::stack_overflow(format!("{what}: {limit}")),
        other => MorphError::host_error(format!("{what}: Boa engine error: {other}")),
    })
}

/// `file:line:col: message` of a Boa syntax error, whose message ends with
/// ` at line L, col C`.
pub(crate) fn syntax_error(file: &str, error: &JsError) -> MorphError {
    let text = error
        .as_native()
        .map(|n| n.message().to_string())
        .unwrap_or_else(|| error.to_string());
    let located = text.rsplit_once(" at line ").and_then(|(message, at)| {
        let (line, col) = at.split_once(", col ")?;
        let line: u32 = line.trim().parse().ok()?;
        let col: u32 = col.trim().parse().ok()?;
        Some(format!("{file}:{line}:{col}: {message}"))
    });
    MorphError::invalid_module(located.unwrap_or_else(|| format!("{file}: {text}")))
}
