//! Compile (instrumented), instantiate, call.

use morph_core::wasm::instrument::{self, DEADLINE_IMPORT, INSTRUMENT_MODULE, MEMORY_LIMIT_IMPORT};
use morph_core::wasm::{
    GuestExport, GuestInstance, HostImport, IMPORT_MODULE, WASI_MODULE, WasmModule, WasmType,
    drive, wasi,
};
use morph_core::{
    EffectivePolicy, GuestCall, GuestRun, ModuleCache, MorphError, PreparedExtension, Result,
    Session,
};
use wasmer::{
    Engine, Function, FunctionEnv, FunctionEnvMut, FunctionType, Imports, Instance, Memory, Module,
    RuntimeError, Store, Type, Value,
};

use crate::WASMER_VERSION;
use crate::marshal::{fail, map_error, with_memory};

/// What a store's function environment carries.
pub struct StoreState {
    pub session: Session,
    pub memory: Option<Memory>,
}

/// An instrumented, compiled module: each run instantiates it afresh.
pub struct Prepared {
    engine: Engine,
    module: Module,
    validated: WasmModule,
}

impl Prepared {
    pub fn new(
        engine: &Engine,
        module: &WasmModule,
        policy: &EffectivePolicy,
        cache: Option<&ModuleCache>,
    ) -> Result<Self> {
        let bytes = instrument::instrument(module.bytes(), policy.limits.max_memory_bytes())?;
        let fingerprint = format!("wasmer-{WASMER_VERSION}-{}", engine.deterministic_id());
        let (compiled, _) = ModuleCache::load(
            cache,
            &fingerprint,
            &bytes,
            // SAFETY: `ModuleCache::load` passes only bytes whose keyed MAC
            // checked out under this installation's key, i.e. an artifact
            // this installation serialized with this engine (fingerprint
            // included in the MAC).
            |artifact| {
                unsafe { Module::deserialize(engine, artifact.to_vec()) }.map_err(|e| e.to_string())
            },
            || {
                Module::new(engine, &bytes).map_err(|e| {
                    MorphError::invalid_module(format!("wasmer cannot compile it: {e}"))
                })
            },
            |compiled| {
                compiled
                    .serialize()
                    .map(|b| b.to_vec())
                    .map_err(|e| e.to_string())
            },
        )?;
        Ok(Prepared {
            engine: engine.clone(),
            module: compiled,
            validated: module.clone(),
        })
    }

    fn imports(&self, store: &mut Store, env: &FunctionEnv<StoreState>) -> Imports {
        let mut imports = Imports::new();
        for import in self.validated.imports() {
            let name = import.name();
            let function = match import {
                HostImport::HostCall | HostImport::HostResponse => {
                    let import = *import;
                    Function::new_typed_with_env(
                        store,
                        env,
                        move |mut env: FunctionEnvMut<StoreState>, ptr: i32, len: i32| {
                            with_memory(&mut env, import.name(), |m, s| {
                                s.serve_pair(import, m, ptr as u32, len as u32)
                            })
                            .map(|n| n as i32)
                        },
                    )
                }
                HostImport::Log => Function::new_typed_with_env(
                    store,
                    env,
                    |mut env: FunctionEnvMut<StoreState>, level: i32, ptr: i32, len: i32| {
                        with_memory(&mut env, "log", |m, s| {
                            s.log(m, level, ptr as u32, len as u32)
                        })
                    },
                ),
            };
            imports.define(IMPORT_MODULE, name, function);
        }
        for import in self.validated.wasi_imports() {
            let valtype = |t: &WasmType| match t {
                WasmType::I32 => Type::I32,
                WasmType::I64 => Type::I64,
            };
            let ty = FunctionType::new(
                import.params.iter().map(valtype).collect::<Vec<_>>(),
                import.results.iter().map(valtype).collect::<Vec<_>>(),
            );
            let name = import.name.clone();
            let function = Function::new_with_env(
                store,
                env,
                ty,
                move |mut env: FunctionEnvMut<StoreState>,
                      params: &[Value]|
                      -> std::result::Result<Vec<Value>, RuntimeError> {
                    let args: Vec<i64> = params
                        .iter()
                        .map(|v| match v {
                            Value::I32(x) => i64::from(*x),
                            Value::I64(x) => *x,
                            _ => 0,
                        })
                        .collect();
                    let errno =
                        with_memory(&mut env, &name, |m, s| wasi::call(s, m, &name, &args))?;
                    Ok(errno.map(Value::I32).into_iter().collect())
                },
            );
            imports.define(WASI_MODULE, &import.name, function);
        }
        imports.define(
            INSTRUMENT_MODULE,
            DEADLINE_IMPORT,
            Function::new_typed_with_env(store, env, |mut env: FunctionEnvMut<StoreState>| {
                instrument::check_deadline(&mut env.data_mut().session)
                    .map_err(|e| RuntimeError::user(Box::new(e)))
            }),
        );
        imports.define(
            INSTRUMENT_MODULE,
            MEMORY_LIMIT_IMPORT,
            Function::new_typed_with_env(
                store,
                env,
                |mut env: FunctionEnvMut<StoreState>,
                 pages: i64|
                 -> std::result::Result<(), RuntimeError> {
                    let state = env.data_mut();
                    let e = instrument::memory_limit(&mut state.session, pages);
                    Err(fail(&mut state.session, e))
                },
            ),
        );
        imports
    }
}

struct WasmerInstance {
    store: Store,
    env: FunctionEnv<StoreState>,
    instance: Instance,
    memory: Memory,
}

impl GuestInstance for WasmerInstance {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        let exports = &self.instance.exports;
        let store = &mut self.store;
        let missing =
            |e: wasmer::ExportError| MorphError::invalid_module(format!("export `{name}`: {e}"));
        let result = match (export, args) {
            (GuestExport::Initialize, []) => exports
                .get_typed_function::<(), ()>(store, name)
                .map_err(missing)?
                .call(store)
                .map(|()| 0),
            (GuestExport::AbiVersion, []) => exports
                .get_typed_function::<(), i32>(store, name)
                .map_err(missing)?
                .call(store)
                .map(i64::from),
            (GuestExport::Alloc, [size]) => exports
                .get_typed_function::<i32, i32>(store, name)
                .map_err(missing)?
                .call(store, *size)
                .map(|p| i64::from(p as u32)),
            (GuestExport::Describe, []) => exports
                .get_typed_function::<(), i64>(store, name)
                .map_err(missing)?
                .call(store),
            (GuestExport::Execute, [a, b, c, d, e, f]) => exports
                .get_typed_function::<(i32, i32, i32, i32, i32, i32), i64>(store, name)
                .map_err(missing)?
                .call(store, *a, *b, *c, *d, *e, *f),
            _ => {
                return Err(MorphError::host_error(format!(
                    "`{name}` called with {} arguments",
                    args.len()
                )));
            }
        };
        result.map_err(|e| map_error(e, name))
    }

    fn memory(&mut self) -> &mut [u8] {
        let view = self.memory.view(&self.store);
        let (ptr, len) = (view.data_ptr(), view.data_size() as usize);
        // SAFETY: the slice borrows `self` mutably, so no export call (the
        // only thing that could grow or touch the memory) can run while it
        // lives; memories are never shared (no threads).
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    fn session(&mut self) -> &mut Session {
        &mut self.env.as_mut(&mut self.store).session
    }
}

impl PreparedExtension for Prepared {
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun {
        let mut store = Store::new(self.engine.clone());
        let env = FunctionEnv::new(
            &mut store,
            StoreState {
                session,
                memory: None,
            },
        );
        let imports = self.imports(&mut store, &env);
        let instance = Instance::new(&mut store, &self.module, &imports)
            .map_err(|e| MorphError::trap(format!("instantiation failed: {e}")))
            .and_then(|instance| {
                let memory = instance
                    .exports
                    .get_memory("memory")
                    .map_err(|e| MorphError::invalid_module(format!("export `memory`: {e}")))?
                    .clone();
                Ok((instance, memory))
            });
        let (mut store, env, result) = match instance {
            Ok((instance, memory)) => {
                env.as_mut(&mut store).memory = Some(memory.clone());
                let mut live = WasmerInstance {
                    store,
                    env,
                    instance,
                    memory,
                };
                let result = drive(&mut live, &self.validated, &call);
                (live.store, live.env, result)
            }
            Err(e) => (store, env, Err(e)),
        };
        let mut session = env.as_mut(&mut store).session.take();
        let result = result.map_err(|e| session.take_fatal().unwrap_or(e));
        GuestRun { session, result }
    }
}
