//! wasmi runs on fuel in slices; these pin down what the slices must never
//! do: trap a valid function because its translation or one basic block
//! costs more than a slice, or count fuel that was never used.

use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ExecutionContext, ExtensionArtifact,
    ExtensionManifest, HostPolicy, LoadedExtension,
};
use morph_runtime_wasmi::WasmiOptions;
use serde_json::json;
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, Instruction, MemorySection, MemoryType, Module, TypeSection,
    ValType,
};

const DESCRIBE: &str = r#"{"name":"Long","version":"1.0.0","actions":[{"name":"run","description":"Runs the long function.","parameters":[]}],"events":[],"config_schema":{}}"#;
const TRUE: &str = r#"{"ok":true}"#;
const FALSE: &str = r#"{"ok":false}"#;

fn packed(f: &mut Function, ptr: usize, len: usize) {
    f.instruction(&Instruction::I64Const(((ptr as i64) << 32) | len as i64));
}

/// An ABI v1 module whose `run` calls one function of `statements`
/// straight-line `x = x + 1` statements (a single basic block) and answers
/// `{"ok":true}` when it counted them all.
fn long_function_module(statements: u32) -> Vec<u8> {
    let (d_at, t_at) = (16, 16 + DESCRIBE.len());
    let f_at = t_at + TRUE.len();
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    types.ty().function([ValType::I32], [ValType::I32]);
    types.ty().function([], [ValType::I64]);
    types.ty().function([ValType::I32; 6], [ValType::I64]);
    let mut functions = FunctionSection::new();
    for ty in [0, 1, 2, 3, 1] {
        functions.function(ty);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(4096),
    );
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    for (name, index) in [
        ("morph_abi_version", 0),
        ("morph_alloc", 1),
        ("describe", 2),
        ("execute", 3),
    ] {
        exports.export(name, ExportKind::Func, index);
    }
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instruction(&Instruction::I32Const(1));
    f.instruction(&Instruction::End);
    code.function(&f);
    // morph_alloc: a bump allocator that never runs out in these tests.
    let mut f = Function::new([]);
    for ins in [
        Instruction::GlobalGet(0),
        Instruction::GlobalGet(0),
        Instruction::LocalGet(0),
        Instruction::I32Add,
        Instruction::GlobalSet(0),
        Instruction::End,
    ] {
        f.instruction(&ins);
    }
    code.function(&f);
    let mut f = Function::new([]);
    packed(&mut f, d_at, DESCRIBE.len());
    f.instruction(&Instruction::End);
    code.function(&f);
    let mut f = Function::new([]);
    f.instruction(&Instruction::I32Const(0));
    f.instruction(&Instruction::Call(4));
    f.instruction(&Instruction::I32Const(statements as i32));
    f.instruction(&Instruction::I32Eq);
    f.instruction(&Instruction::If(wasm_encoder::BlockType::Result(
        ValType::I64,
    )));
    packed(&mut f, t_at, TRUE.len());
    f.instruction(&Instruction::Else);
    packed(&mut f, f_at, FALSE.len());
    f.instruction(&Instruction::End);
    f.instruction(&Instruction::End);
    code.function(&f);
    let mut f = Function::new([]);
    for _ in 0..statements {
        f.instruction(&Instruction::LocalGet(0));
        f.instruction(&Instruction::I32Const(1));
        f.instruction(&Instruction::I32Add);
        f.instruction(&Instruction::LocalSet(0));
    }
    f.instruction(&Instruction::LocalGet(0));
    f.instruction(&Instruction::End);
    code.function(&f);
    let mut data = DataSection::new();
    for (at, text) in [(d_at, DESCRIBE), (t_at, TRUE), (f_at, FALSE)] {
        data.active(0, &ConstExpr::i32_const(at as i32), text.bytes());
    }
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&globals)
        .section(&exports)
        .section(&code)
        .section(&data);
    module.finish()
}

fn manifest() -> ExtensionManifest {
    ExtensionManifest::from_yaml(
        "extension_id: test.long\nversion: 1.0.0\nschema_version: \"1.0\"\n\
         metadata: {name: Long, description: One long function.}\n\
         runtime: wasm\nentry: extension.wasm\n\
         actions:\n  - {name: run, description: Runs the long function.}\n",
        "manifest.yaml",
    )
    .expect("manifest")
}

async fn load(
    wasm: Vec<u8>,
    options: WasmiOptions,
    policy: &HostPolicy,
) -> Box<dyn LoadedExtension> {
    let runtime = EngineRuntime::new(morph_runtime_wasmi::backend(options)).expect("runtime");
    let artifact = ExtensionArtifact::from_parts(manifest(), wasm);
    runtime
        .load(&artifact, Arc::new(CapabilityHost::in_memory()), policy)
        .await
        .expect("the long function loads")
}

/// The issue's module: 300,000 statements, a 2.1 MB body. Translated
/// lazily, its first call needed 15 M fuel in one go, more than a slice,
/// and trapped with "all fuel consumed".
#[tokio::test]
async fn a_function_of_300k_statements_runs_to_the_end() {
    let ext = load(
        long_function_module(300_000),
        WasmiOptions::default(),
        &HostPolicy::allow_requested(),
    )
    .await;
    let out = ext
        .execute("run", json!({}), &ExecutionContext::default())
        .await
        .expect("runs to the end");
    assert_eq!(out, json!(true));
}

/// One basic block of 20,000 statements costs more fuel than a 1,000-fuel
/// slice: the block is charged whole, up front, so the refill must cover
/// it; the fuel left when a slice ran out is kept, so the fuel used is the
/// same whatever the slice.
#[tokio::test]
async fn small_slices_resume_big_blocks_and_count_fuel_exactly() {
    let policy = HostPolicy {
        fuel: Some(1 << 40),
        ..HostPolicy::allow_requested()
    };
    let mut used = Vec::new();
    for fuel_slice in [1_000, 7_777, 1_000_000_000] {
        let options = WasmiOptions {
            fuel_slice,
            ..WasmiOptions::default()
        };
        let ext = load(long_function_module(20_000), options, &policy).await;
        let run = ext
            .execute_with_report("run", json!({}), &ExecutionContext::default())
            .await;
        assert_eq!(run.result.expect("runs to the end"), json!(true));
        used.push(run.report.fuel_used.expect("fuel is counted"));
    }
    assert!(used[0] > 20_000, "{used:?}");
    assert!(
        used.iter().all(|u| *u == used[0]),
        "fuel used per slice size: {used:?}"
    );
}

/// `run`: counts to 1, grows a table by 1,000,000 elements (125,000 fuel,
/// charged at the `table.grow`), counts to 2; true when the count is 2 and
/// the table has 1,000,001 elements.
const TABLE_GROW: &str = r#"(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (global $n (mut i32) (i32.const 0))
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{\"name\":\"Grow\",\"version\":\"1.0.0\",\"actions\":[{\"name\":\"run\",\"description\":\"Grows a table once.\",\"parameters\":[]}],\"events\":[],\"config_schema\":{}}")
  (data (i32.const 256) "{\"ok\":true}{\"ok\":false}")
  (func (export "morph_abi_version") (result i32) (i32.const 1))
  (func (export "morph_alloc") (param i32) (result i32)
    (global.get $heap)
    (global.set $heap (i32.add (global.get $heap) (local.get 0))))
  (func (export "describe") (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 143)))
  (func (export "execute") (param i32 i32 i32 i32 i32 i32) (result i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (drop (table.grow $t (ref.null func) (i32.const 1000000)))
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (result i64)
      (i32.and (i32.eq (global.get $n) (i32.const 2))
               (i32.eq (table.size $t) (i32.const 1000001)))
      (then (i64.or (i64.shl (i64.const 256) (i64.const 32)) (i64.const 11)))
      (else (i64.or (i64.shl (i64.const 267) (i64.const 32)) (i64.const 12))))))"#;

/// A `table.grow` that runs out of fuel resumes where it stopped: the
/// count before it is not done again. wasmi 2.0.0 does not save the
/// instruction pointer on this one out-of-fuel path (its `memory.grow` and
/// `table.copy/fill/init` do), so a resumed call restarts at the last
/// saved position; the guest's count ran twice when this backend did not
/// instrument. Core's resource instrumentation moves every `table.grow`
/// into an injected function whose instructions before it only read, so
/// restarting there is harmless.
#[tokio::test]
async fn a_table_grow_that_runs_out_of_fuel_resumes_in_place() {
    let wasm = wat::parse_str(TABLE_GROW).expect("wat");
    for fuel_slice in [1_000, 1_000_000] {
        let options = WasmiOptions {
            fuel_slice,
            ..WasmiOptions::default()
        };
        let ext = load(wasm.clone(), options, &HostPolicy::allow_requested()).await;
        let out = ext
            .execute("run", json!({}), &ExecutionContext::default())
            .await
            .expect("runs");
        assert_eq!(out, json!(true), "fuel_slice {fuel_slice}");
    }
}
