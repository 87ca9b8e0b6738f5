//! Compile, evaluate and call: a fresh Boa [`Context`] per guest call, the
//! prelude, the extension's script and a one-line call script, each
//! evaluated under a budget with the deadline checked between slices.

use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::task::{self, Poll, Waker};

use boa_engine::context::HostHooks;
use boa_engine::property::Attribute;
use boa_engine::realm::Realm;
use boa_engine::{
    Context, JsError, JsNativeError, JsResult, JsString, JsValue, Script, Source, js_string,
};
use morph_core::script::{ScriptCall, ScriptEngine, ScriptInstance};
use morph_core::{Deadline, GuestCall, MorphError, ResourceLimits, Result, RuntimeKind};

use crate::marshal::{
    HostData, engine_error, glue_answer, register_natives, syntax_error, take_fatal,
};
use crate::nesting;
use crate::{BOA_VERSION, JsEngine, RECURSION_LIMIT, VALUE_STACK_LIMIT};

/// The glue evaluated before every extension script.
const PRELUDE: &str = include_str!("prelude.js");

/// Boa "clock cycles" between two deadline checks: a few microseconds of
/// guest code, so the overshoot of `max_execution_ms` stays far below a
/// millisecond for code that runs in the budgeted loop.
const BUDGET: u32 = 20_000;

/// The call script of `describe()`. `typeof` keeps a missing function from
/// throwing, and name lookup also finds `const describe = ...`.
const DESCRIBE_CALL: &str = "__morph_describe(typeof describe === 'undefined' ? undefined : describe, \
     typeof execute === 'undefined' ? undefined : execute)";

/// The call script of `execute()`; the inputs are read-only globals.
const EXECUTE_CALL: &str = "__morph_run(typeof execute === 'undefined' ? undefined : execute, \
     __morph_action, __morph_params, __morph_context)";

/// Largest `ArrayBuffer` Boa's default allows (1.5 GiB).
const BOA_MAX_BUFFER: u64 = 1_610_612_736;

/// Boa's host hooks: `ArrayBuffer`s are capped at `max_memory_mb` (the only
/// allocation Boa lets a host refuse).
struct Hooks {
    max_buffer_bytes: u64,
}

impl HostHooks for Hooks {
    fn max_buffer_size(&self, _context: &mut Context) -> u64 {
        self.max_buffer_bytes
    }

    /// `eval` and `Function`: the source is bounded before Boa parses it,
    /// as the entry script is (a catchable `SyntaxError`).
    fn ensure_can_compile_strings(
        &self,
        _realm: Realm,
        parameters: &[JsString],
        body: &JsString,
        _direct: bool,
        _context: &mut Context,
    ) -> JsResult<()> {
        for text in parameters.iter().chain([body]) {
            if let Err(e) = nesting::check(&text.to_std_string_lossy()) {
                return Err(JsNativeError::syntax()
                    .with_message(format!("source refused: {e}"))
                    .into());
            }
        }
        Ok(())
    }
}

impl ScriptEngine for JsEngine {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Js
    }

    fn engine(&self) -> (&'static str, &'static str) {
        ("boa_engine", BOA_VERSION)
    }

    fn stops_at_deadline(&self) -> bool {
        true
    }

    /// Builds and drops one realm, so a worker measures its baseline (and
    /// caps its address space) with Boa's allocations already made once.
    fn warm_up(&self) -> Result<()> {
        drop(Fresh::new("warm-up.js", "", &ResourceLimits::default())?);
        boa_gc::force_collect();
        Ok(())
    }

    fn load(
        &self,
        file: &str,
        source: &str,
        limits: &ResourceLimits,
    ) -> Result<Box<dyn ScriptInstance>> {
        let fresh = Fresh::new(file, source, limits)?;
        Ok(Box::new(JsScript {
            file: file.to_string(),
            source: source.to_string(),
            limits: *limits,
            ready: Some(fresh),
        }))
    }
}

/// A realm with the prelude evaluated and the extension's script parsed,
/// none of its code run yet.
struct Fresh {
    context: Context,
    script: Script,
}

impl Fresh {
    fn new(file: &str, source: &str, limits: &ResourceLimits) -> Result<Fresh> {
        // Before Boa's recursive parser sees it.
        nesting::check(source).map_err(|e| MorphError::invalid_module(format!("{file}: {e}")))?;
        let hooks = Rc::new(Hooks {
            max_buffer_bytes: limits.max_memory_bytes().min(BOA_MAX_BUFFER),
        });
        let glue = |e: JsError| MorphError::host_error(format!("JavaScript glue: {e}"));
        let mut context = Context::builder().host_hooks(hooks).build().map_err(glue)?;
        let runtime_limits = context.runtime_limits_mut();
        runtime_limits.set_recursion_limit(RECURSION_LIMIT);
        runtime_limits.set_stack_size_limit(VALUE_STACK_LIMIT);
        register_natives(&mut context).map_err(glue)?;
        Script::parse(
            Source::from_bytes(PRELUDE).with_path(Path::new("morph-prelude.js")),
            None,
            &mut context,
        )
        .and_then(|prelude| prelude.evaluate(&mut context))
        .map_err(glue)?;
        let script = Script::parse(
            Source::from_bytes(source).with_path(Path::new(file)),
            None,
            &mut context,
        )
        .map_err(|e| syntax_error(file, &e))?;
        Ok(Fresh { context, script })
    }
}

/// A loaded extension script. Every run takes a fresh realm: the one made
/// by `load` for the first run, a new one after that.
struct JsScript {
    file: String,
    source: String,
    limits: ResourceLimits,
    ready: Option<Fresh>,
}

impl ScriptInstance for JsScript {
    fn run(&mut self, call: ScriptCall<'_>) -> Result<Vec<u8>> {
        let Fresh {
            mut context,
            script,
        } = match self.ready.take() {
            Some(fresh) => fresh,
            None => Fresh::new(&self.file, &self.source, &self.limits)?,
        };
        context.insert_data(HostData::new(call.host.clone()));
        let result = run_call(&mut context, &script, &call, &self.file);
        // A host error ends the call even if a builtin swallowed the unwind.
        let result = match take_fatal(&context) {
            Some(fatal) => Err(fatal),
            None => result,
        };
        if let Err(e) = &result {
            tracing::debug!(file = %morph_core::text::loggable(&self.file), error = %morph_core::text::loggable(&e), "JavaScript call failed");
        }
        if in_throwaway_process() {
            // A worker's call runs in a child that exits after it: freeing
            // the realm would only touch (and copy) the zygote's pages.
            std::mem::forget(script);
            std::mem::forget(context);
        } else {
            drop(script);
            drop(context);
            // The realm is garbage now: free it before the next call rather
            // than whenever Boa's allocation threshold next trips.
            boa_gc::force_collect();
        }
        result
    }

    /// In a worker, between calls: the next realm (prelude evaluated,
    /// script parsed, none of the extension's code run) is built while
    /// nobody waits for it.
    fn prepare_next(&mut self) {
        if self.ready.is_none() {
            self.ready = Fresh::new(&self.file, &self.source, &self.limits).ok();
        }
    }
}

/// Whether this is a worker, where every call runs in a child process of
/// its own that exits after the call.
fn in_throwaway_process() -> bool {
    #[cfg(target_os = "linux")]
    {
        morph_worker::is_worker()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Evaluates `script` in slices of [`BUDGET`], checking the deadline
/// between them. `None`: the deadline passed.
fn evaluate(
    script: &Script,
    context: &mut Context,
    deadline: &Deadline,
) -> Option<JsResult<JsValue>> {
    if deadline.expired() {
        return None;
    }
    let mut future = pin!(script.evaluate_async_with_budget(context, BUDGET));
    let mut cx = task::Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(result) = future.as_mut().poll(&mut cx) {
            return Some(result);
        }
        if deadline.expired() {
            return None;
        }
    }
}

fn run_call(
    context: &mut Context,
    script: &Script,
    call: &ScriptCall<'_>,
    file: &str,
) -> Result<Vec<u8>> {
    let what = call.what();
    let call_source = match call.call {
        GuestCall::Describe => DESCRIBE_CALL,
        GuestCall::Execute {
            action,
            params,
            context: ctx,
        } => {
            let inputs = [
                (js_string!("__morph_action"), action.as_bytes()),
                (js_string!("__morph_params"), params),
                (js_string!("__morph_context"), ctx),
            ];
            for (name, bytes) in inputs {
                let value = JsString::from(String::from_utf8_lossy(bytes).as_ref());
                context
                    .register_global_property(name, value, Attribute::empty())
                    .map_err(|e| MorphError::host_error(format!("JavaScript glue: {e}")))?;
            }
            EXECUTE_CALL
        }
    };

    // The extension's top-level code, every call.
    match evaluate(script, context, &call.deadline) {
        None => return Err(call.timeout_error()),
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            if let Some(fatal) = engine_error(&e, context, &what) {
                return Err(fatal);
            }
            let text = format!("{file}: {}", error_text(e, context));
            return match call.call {
                GuestCall::Describe => Err(MorphError::invalid_module(text)),
                GuestCall::Execute { .. } => Ok(uncaught(&text)),
            };
        }
    }

    let glue = Script::parse(Source::from_bytes(call_source), None, context)
        .map_err(|e| MorphError::host_error(format!("JavaScript glue: {e}")))?;
    match evaluate(&glue, context, &call.deadline) {
        None => Err(call.timeout_error()),
        Some(Ok(answer)) => glue_answer(&answer, &what),
        Some(Err(e)) => {
            if let Some(fatal) = engine_error(&e, context, &what) {
                return Err(fatal);
            }
            // Only a name the extension left uninitialised gets here.
            let text = error_text(e, context);
            match call.call {
                GuestCall::Describe => {
                    Err(MorphError::invalid_module(format!("describe(): {text}")))
                }
                GuestCall::Execute { .. } => Ok(uncaught(&text)),
            }
        }
    }
}

/// The `err` envelope of an exception the extension did not catch.
fn uncaught(message: &str) -> Vec<u8> {
    serde_json::json!({"err": {"code": "uncaught_exception", "message": message}})
        .to_string()
        .into_bytes()
}

/// `<Name>: <message>` of a thrown value, by the prelude's
/// `__morph_error_text`.
fn error_text(error: JsError, context: &mut Context) -> String {
    let fallback = error.to_string();
    let Ok(value) = error.into_opaque(context) else {
        return fallback;
    };
    let describe = context
        .global_object()
        .get(js_string!("__morph_error_text"), context)
        .ok()
        .and_then(|f| f.as_callable());
    describe
        .and_then(|f| f.call(&JsValue::undefined(), &[value], context).ok())
        .and_then(|text| text.as_string())
        .map(|text| text.to_std_string_lossy())
        .unwrap_or(fallback)
}
