//! Engine-neutral instrumentation for backends without a native deadline
//! or resource cap, written with `wasmparser` + `wasm-encoder`. How much an
//! engine gets is its [`Instrumentation`]:
//!
//! - **deadline** ([`Instrumentation::Full`]: wasmer, wasm3): at every
//!   function entry and loop header, a counter global is decremented by
//!   the static size of the function or the loop body, and before every
//!   bulk memory or table operation by its length (see [`CHECK_PERIOD`]);
//!   whenever it reaches zero the module calls the host import
//!   `morph:instrument.deadline`, which ends the execution with `timeout`
//!   once the deadline has passed (a cheap counter first, the clock only
//!   every [`CHECK_PERIOD`] steps). Straight-line code, long callees and
//!   `memory.fill` over the whole memory all count, so the overshoot past
//!   the deadline is at most one check period plus one bulk operation;
//! - **memory** ([`Instrumentation::Resources`] and `Full`: wasmi, wasmer,
//!   wasm3): every `memory.grow` becomes a call to an injected function
//!   that compares the resulting size with `max_memory_mb` and calls
//!   `morph:instrument.memory_limit(desired_pages)` (which ends the
//!   execution with `memory_limit`) before growing past it;
//! - **tables** (`Resources` and `Full`): every `table.grow` becomes a call
//!   to an injected function per table that calls
//!   `morph:instrument.table_limit(desired_elements)` (`memory_limit`)
//!   before growing past [`MAX_TABLE_ELEMENTS`], returns -1 past the
//!   table's declared maximum, and grows otherwise. The cap is checked
//!   first, as wasmtime's `ResourceLimiter` does.
//!
//! Only wasmtime (and Pulley) see modules unchanged: their limiter is asked
//! before every growth. wasmer's tables have no limiter at all (a 2^30
//! growth allocated 8 GiB), wasm3 consults nothing, and wasmi answers -1
//! without asking its limiter for growth past the engine's or the
//! module's maximum.
//!
//! The output is validated again under the same feature set. Custom
//! sections (names, producers) are dropped: their indices would be stale.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode, utils};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, EntityType, Function, FunctionSection, GlobalSection,
    GlobalType, ImportSection, Instruction, Module, SectionId, TypeSection, ValType,
};
use wasmparser::{Operator, Parser, Payload, TypeRef, Validator};

use super::module::{MAX_TABLE_ELEMENTS, accepted_features};
use morph_core::Session;
use morph_core::{MorphError, Result};

/// Module name of the instrumentation's host imports.
pub const INSTRUMENT_MODULE: &str = "morph:instrument";
/// `deadline: () -> ()`, called every [`CHECK_PERIOD`] steps.
pub const DEADLINE_IMPORT: &str = "deadline";
/// `memory_limit: (desired_pages: i64) -> ()`, called before a growth past
/// the cap; it must end the execution.
pub const MEMORY_LIMIT_IMPORT: &str = "memory_limit";
/// `table_limit: (desired_elements: i64) -> ()`, called before a table
/// growth past [`MAX_TABLE_ELEMENTS`]; it must end the execution.
pub const TABLE_LIMIT_IMPORT: &str = "table_limit";
/// Steps between two deadline checks. A function entry charges the
/// function's static size in operators, a loop header its body's (a
/// branch can skip code, never run any operator twice without passing a
/// loop header or a function entry again), and a bulk memory or table
/// operation one step plus one per [`BYTES_PER_STEP_SHIFT`] bytes or
/// [`ELEMENTS_PER_STEP_SHIFT`] elements of its length, charged before it
/// runs: between two checks a guest runs at most about this many
/// operators' worth of work, plus one bulk operation.
pub const CHECK_PERIOD: i32 = 100_000;
/// A bulk memory operation (`memory.fill`, `memory.copy`, `memory.init`)
/// charges one step per `1 << BYTES_PER_STEP_SHIFT` bytes (64).
pub const BYTES_PER_STEP_SHIFT: i32 = 6;
/// A bulk table operation (`table.fill`, `table.copy`, `table.init`)
/// charges one step per `1 << ELEMENTS_PER_STEP_SHIFT` elements (8).
pub const ELEMENTS_PER_STEP_SHIFT: i32 = 3;

/// The host side of `morph:instrument.deadline`: `timeout` (recorded as
/// fatal) once the deadline has passed.
pub fn check_deadline(session: &mut Session) -> Result<()> {
    if session.deadline().expired() {
        let e = session.timeout_error();
        return Err(session.fail(e));
    }
    Ok(())
}

/// The host side of `morph:instrument.memory_limit`: always `memory_limit`
/// (recorded as fatal).
pub fn memory_limit(session: &mut Session, desired_pages: i64) -> MorphError {
    let e = session.memory_limit_error((desired_pages.max(0) as u64).saturating_mul(65_536));
    session.fail(e)
}

/// The host side of `morph:instrument.table_limit`: always `memory_limit`
/// (recorded as fatal).
pub fn table_limit(session: &mut Session, desired_elements: i64) -> MorphError {
    let e = MorphError::memory_limit(format!(
        "action `{}` tried to grow a table to {} elements, above {MAX_TABLE_ELEMENTS}",
        session.action(),
        desired_elements.max(0)
    ));
    session.fail(e)
}

/// What core's instrumentation adds for an engine (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrumentation {
    /// Nothing: the engine enforces the deadline and every growth cap
    /// itself (wasmtime, Pulley).
    None,
    /// The `memory.grow` and `table.grow` rewrites: the engine stops at the
    /// deadline itself (wasmi).
    Resources,
    /// The growth rewrites and the deadline checks (wasmer, wasm3).
    Full,
}

/// Counts of what the original module defines, from a first pass.
#[derive(Default)]
struct Shape {
    types: u32,
    imported_funcs: u32,
    imported_globals: u32,
    defined_funcs: u32,
    defined_globals: u32,
    /// Each defined table's element type and declared maximum (Morph
    /// refuses table imports).
    tables: Vec<(wasmparser::RefType, Option<u64>)>,
}

struct Instrumenter {
    shape: Shape,
    max_pages: i64,
    deadline: bool,
    emitted_imports: bool,
    emitted_globals: bool,
}

const ADDED_IMPORTS: u32 = 3;
/// Function types added before the per-table ones.
const ADDED_TYPES: u32 = 3;

impl Instrumenter {
    fn t_void(&self) -> u32 {
        self.shape.types
    }
    fn t_i64_void(&self) -> u32 {
        self.shape.types + 1
    }
    fn t_i32_i32(&self) -> u32 {
        self.shape.types + 2
    }
    fn f_deadline(&self) -> u32 {
        self.shape.imported_funcs
    }
    /// `(ref, i32) -> i32`, the type of table `t`'s grow function.
    fn t_table_grow(&self, t: u32) -> u32 {
        self.shape.types + ADDED_TYPES + t
    }
    fn f_memory_limit(&self) -> u32 {
        self.shape.imported_funcs + 1
    }
    fn f_table_limit(&self) -> u32 {
        self.shape.imported_funcs + 2
    }
    fn f_grow(&self) -> u32 {
        self.shape.imported_funcs + ADDED_IMPORTS + self.shape.defined_funcs
    }
    fn f_table_grow(&self, t: u32) -> u32 {
        self.f_grow() + 1 + t
    }
    fn g_counter(&self) -> u32 {
        self.shape.imported_globals + self.shape.defined_globals
    }
    fn g_scratch(&self) -> u32 {
        self.g_counter() + 1
    }

    fn add_imports(&self, imports: &mut ImportSection) {
        imports.import(
            INSTRUMENT_MODULE,
            DEADLINE_IMPORT,
            EntityType::Function(self.t_void()),
        );
        imports.import(
            INSTRUMENT_MODULE,
            MEMORY_LIMIT_IMPORT,
            EntityType::Function(self.t_i64_void()),
        );
        imports.import(
            INSTRUMENT_MODULE,
            TABLE_LIMIT_IMPORT,
            EntityType::Function(self.t_i64_void()),
        );
    }

    fn add_global(&self, globals: &mut GlobalSection) {
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(CHECK_PERIOD),
        );
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(0),
        );
    }

    /// Charge `weight` steps: decrement the counter by it; at or below
    /// zero, reset it and ask the host (when the engine needs deadline
    /// checks).
    fn emit_check(&self, f: &mut Function, weight: u32) {
        if !self.deadline {
            return;
        }
        let g = self.g_counter();
        f.instruction(&Instruction::GlobalGet(g));
        f.instruction(&Instruction::I32Const(
            weight.min(CHECK_PERIOD as u32) as i32
        ));
        self.emit_charge_tail(f);
    }

    /// The rest of a charge, with the counter and the weight on the stack:
    /// subtract, store, and at or below zero reset the counter and call
    /// the deadline import.
    fn emit_charge_tail(&self, f: &mut Function) {
        let g = self.g_counter();
        for ins in [
            Instruction::I32Sub,
            Instruction::GlobalSet(g),
            Instruction::GlobalGet(g),
            Instruction::I32Const(0),
            Instruction::I32LeS,
            Instruction::If(BlockType::Empty),
            Instruction::I32Const(CHECK_PERIOD),
            Instruction::GlobalSet(g),
            Instruction::Call(self.f_deadline()),
            Instruction::End,
        ] {
            f.instruction(&ins);
        }
    }

    /// Before a bulk operation whose length (an `i32`) is on top of the
    /// stack: charge `1 + (length >> shift)` steps, leaving the stack as
    /// it was. The length passes through the scratch global; only the
    /// deadline import runs between its set and its get, and that never
    /// enters the guest.
    fn emit_bulk_check(&self, f: &mut Function, shift: i32) {
        if !self.deadline {
            return;
        }
        let (g, scratch) = (self.g_counter(), self.g_scratch());
        for ins in [
            Instruction::GlobalSet(scratch),
            Instruction::GlobalGet(g),
            Instruction::GlobalGet(scratch),
            Instruction::I32Const(shift),
            Instruction::I32ShrU,
            Instruction::I32Const(1),
            Instruction::I32Add,
        ] {
            f.instruction(&ins);
        }
        self.emit_charge_tail(f);
        f.instruction(&Instruction::GlobalGet(scratch));
    }

    /// `(delta) -> old pages | -1`, refusing growth past `max_pages`.
    fn grow_function(&self) -> Function {
        let mut f = Function::new([]);
        for ins in [
            Instruction::MemorySize(0),
            Instruction::I64ExtendI32U,
            Instruction::LocalGet(0),
            Instruction::I64ExtendI32U,
            Instruction::I64Add,
            Instruction::I64Const(self.max_pages),
            Instruction::I64GtU,
            Instruction::If(BlockType::Empty),
            Instruction::MemorySize(0),
            Instruction::I64ExtendI32U,
            Instruction::LocalGet(0),
            Instruction::I64ExtendI32U,
            Instruction::I64Add,
            Instruction::Call(self.f_memory_limit()),
            Instruction::Unreachable,
            Instruction::End,
            Instruction::LocalGet(0),
            Instruction::MemoryGrow(0),
            Instruction::End,
        ] {
            f.instruction(&ins);
        }
        f
    }

    /// `(init, delta) -> old size | -1` for table `t`: `memory_limit` past
    /// [`MAX_TABLE_ELEMENTS`], -1 past the declared maximum (checked here
    /// because wasm3 reads a declared maximum of 0 as none), else
    /// `table.grow`. Local 2 holds the desired size as i64.
    fn table_grow_function(&self, t: u32, maximum: Option<u64>) -> Function {
        let mut f = Function::new([(1, ValType::I64)]);
        for ins in [
            Instruction::TableSize(t),
            Instruction::I64ExtendI32U,
            Instruction::LocalGet(1),
            Instruction::I64ExtendI32U,
            Instruction::I64Add,
            Instruction::LocalTee(2),
            Instruction::I64Const(MAX_TABLE_ELEMENTS as i64),
            Instruction::I64GtU,
            Instruction::If(BlockType::Empty),
            Instruction::LocalGet(2),
            Instruction::Call(self.f_table_limit()),
            Instruction::Unreachable,
            Instruction::End,
        ] {
            f.instruction(&ins);
        }
        if let Some(max) = maximum {
            for ins in [
                Instruction::LocalGet(2),
                Instruction::I64Const(i64::try_from(max).unwrap_or(i64::MAX)),
                Instruction::I64GtU,
                Instruction::If(BlockType::Empty),
                Instruction::I32Const(-1),
                Instruction::Return,
                Instruction::End,
            ] {
                f.instruction(&ins);
            }
        }
        for ins in [
            Instruction::LocalGet(0),
            Instruction::LocalGet(1),
            Instruction::TableGrow(t),
            Instruction::End,
        ] {
            f.instruction(&ins);
        }
        f
    }
}

/// Where a section sits in the binary order (data count before code, tags
/// between memories and globals).
fn rank(id: SectionId) -> u8 {
    match id {
        SectionId::Tag => 55,
        SectionId::DataCount => 95,
        other => (other as u8) * 10,
    }
}

impl Reencode for Instrumenter {
    type Error = std::convert::Infallible;

    fn function_index(
        &mut self,
        func: u32,
    ) -> std::result::Result<u32, ReencodeError<Self::Error>> {
        Ok(if func < self.shape.imported_funcs {
            func
        } else {
            func + ADDED_IMPORTS
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        utils::parse_type_section(self, types, section)?;
        types.ty().function([], []);
        types.ty().function([ValType::I64], []);
        types.ty().function([ValType::I32], [ValType::I32]);
        for (element, _) in self.shape.tables.clone() {
            let element = self.ref_type(element)?;
            types
                .ty()
                .function([ValType::Ref(element), ValType::I32], [ValType::I32]);
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        utils::parse_import_section(self, imports, section)?;
        self.add_imports(imports);
        self.emitted_imports = true;
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        utils::parse_function_section(self, functions, section)?;
        functions.function(self.t_i32_i32());
        for t in 0..self.shape.tables.len() as u32 {
            functions.function(self.t_table_grow(t));
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        utils::parse_global_section(self, globals, section)?;
        self.add_global(globals);
        self.emitted_globals = true;
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        utils::parse_code_section(self, code, section)?;
        code.function(&self.grow_function());
        for (t, (_, maximum)) in self.shape.tables.iter().enumerate() {
            code.function(&self.table_grow_function(t as u32, *maximum));
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        let mut f = utils::new_function_with_parsed_locals(self, &func)?;
        // First pass: the static size of the body and of each loop, in
        // operators, so that a check charges for everything that can run
        // before the next one (see `CHECK_PERIOD`).
        let mut reader = func.get_operators_reader()?;
        let (mut total, mut loops, mut open) = (0u32, Vec::new(), Vec::new());
        while !reader.eof() {
            match reader.read()? {
                Operator::Block { .. } | Operator::If { .. } => open.push(None),
                Operator::Loop { .. } => {
                    open.push(Some((loops.len(), total)));
                    loops.push(0u32);
                }
                Operator::End => {
                    if let Some(Some((i, start))) = open.pop() {
                        loops[i] = total - start;
                    }
                }
                _ => {}
            }
            total = total.saturating_add(1);
        }
        self.emit_check(&mut f, total);
        let mut loops = loops.into_iter();
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            match op {
                Operator::MemoryGrow { .. } => {
                    f.instruction(&Instruction::Call(self.f_grow()));
                }
                Operator::TableGrow { table } => {
                    f.instruction(&Instruction::Call(self.f_table_grow(table)));
                }
                Operator::Loop { .. } => {
                    f.instruction(&self.instruction(op)?);
                    self.emit_check(&mut f, loops.next().unwrap_or(1));
                }
                Operator::MemoryFill { .. }
                | Operator::MemoryCopy { .. }
                | Operator::MemoryInit { .. } => {
                    self.emit_bulk_check(&mut f, BYTES_PER_STEP_SHIFT);
                    f.instruction(&self.instruction(op)?);
                }
                Operator::TableFill { .. }
                | Operator::TableCopy { .. }
                | Operator::TableInit { .. } => {
                    self.emit_bulk_check(&mut f, ELEMENTS_PER_STEP_SHIFT);
                    f.instruction(&self.instruction(op)?);
                }
                _ => {
                    f.instruction(&self.instruction(op)?);
                }
            }
        }
        code.function(&f);
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        _module: &mut Module,
        _section: wasmparser::CustomSectionReader<'_>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> std::result::Result<(), ReencodeError<Self::Error>> {
        let comes_before = |id: SectionId| before.is_none_or(|b| rank(b) > rank(id));
        if !self.emitted_imports
            && comes_before(SectionId::Import)
            && before != Some(SectionId::Import)
        {
            let mut imports = ImportSection::new();
            self.add_imports(&mut imports);
            module.section(&imports);
            self.emitted_imports = true;
        }
        if !self.emitted_globals
            && comes_before(SectionId::Global)
            && before != Some(SectionId::Global)
        {
            let mut globals = GlobalSection::new();
            self.add_global(&mut globals);
            module.section(&globals);
            self.emitted_globals = true;
        }
        Ok(())
    }
}

fn shape(bytes: &[u8]) -> Result<Shape> {
    let invalid = |e: wasmparser::BinaryReaderError| MorphError::invalid_module(e.to_string());
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(r) => {
                for group in r {
                    shape.types += group.map_err(invalid)?.types().len() as u32;
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    match import.map_err(invalid)?.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => shape.imported_funcs += 1,
                        TypeRef::Global(_) => shape.imported_globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(r) => shape.defined_funcs += r.count(),
            Payload::GlobalSection(r) => shape.defined_globals += r.count(),
            Payload::TableSection(r) => {
                for table in r {
                    let ty = table.map_err(invalid)?.ty;
                    shape.tables.push((ty.element_type, ty.maximum));
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// Instruments validated module bytes for `max_memory_bytes` as `how`
/// says, and validates the result. With [`Instrumentation::None`] the
/// bytes come back unchanged.
pub fn instrument(bytes: &[u8], max_memory_bytes: u64, how: Instrumentation) -> Result<Vec<u8>> {
    if how == Instrumentation::None {
        return Ok(bytes.to_vec());
    }
    let mut instrumenter = Instrumenter {
        shape: shape(bytes)?,
        max_pages: i64::try_from(max_memory_bytes / 65_536).unwrap_or(i64::MAX),
        deadline: how == Instrumentation::Full,
        emitted_imports: false,
        emitted_globals: false,
    };
    let mut module = Module::new();
    instrumenter
        .parse_core_module(&mut module, Parser::new(0), bytes)
        .map_err(|e| MorphError::invalid_module(format!("instrumentation failed: {e}")))?;
    let out = module.finish();
    Validator::new_with_features(accepted_features())
        .validate_all(&out)
        .map_err(|e| MorphError::invalid_module(format!("instrumented module is invalid: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports_of(bytes: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            if let Ok(Payload::ImportSection(r)) = payload {
                for i in r.into_imports().flatten() {
                    names.push(format!("{}.{}", i.module, i.name));
                }
            }
        }
        names
    }

    #[test]
    fn adds_the_checks_to_a_module_with_and_without_imports() {
        for src in [
            r#"(module (memory (export "memory") 1)
                 (func (export "f") (param i32) (result i32)
                   (loop $l (br_if $l (i32.const 0)))
                   (drop (memory.grow (local.get 0)))
                   (call 1))
                 (func (result i32) i32.const 7))"#,
            r#"(module (import "morph" "log" (func (param i32 i32 i32)))
                 (global $g (mut i32) (i32.const 0))
                 (memory (export "memory") 1)
                 (func (export "f") (param i32) (result i32)
                   (global.set $g (i32.const 1)) (call 2))
                 (func (result i32) i32.const 7))"#,
        ] {
            let wasm = wat::parse_str(src).unwrap();
            let out = instrument(&wasm, 2 << 20, Instrumentation::Full).unwrap();
            let names = imports_of(&out);
            assert!(
                names.contains(&"morph:instrument.deadline".to_string()),
                "{names:?}"
            );
            assert!(
                names.contains(&"morph:instrument.memory_limit".to_string()),
                "{names:?}"
            );
        }
    }

    fn calls_to(bytes: &[u8], import: u32) -> usize {
        let mut n = 0;
        for payload in Parser::new(0).parse_all(bytes) {
            if let Ok(Payload::CodeSectionEntry(body)) = payload {
                let mut r = body.get_operators_reader().unwrap();
                while !r.eof() {
                    if let Operator::Call { function_index } = r.read().unwrap()
                        && function_index == import
                    {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    fn has_table_grow(bytes: &[u8], in_body: usize) -> bool {
        let mut i = 0;
        for payload in Parser::new(0).parse_all(bytes) {
            if let Ok(Payload::CodeSectionEntry(body)) = payload {
                let mut r = body.get_operators_reader().unwrap();
                let here = i == in_body;
                i += 1;
                while !r.eof() {
                    if matches!(r.read().unwrap(), Operator::TableGrow { .. }) && here {
                        return true;
                    }
                }
            }
        }
        false
    }

    #[test]
    fn table_grow_goes_through_a_checking_function_per_table() {
        let src = r#"(module (memory (export "memory") 1)
             (table $f 1 funcref) (table $e 0 4 externref)
             (func (export "f") (result i32)
               (drop (table.grow $f (ref.null func) (i32.const 3)))
               (table.grow $e (ref.null extern) (i32.const 1))))"#;
        let wasm = wat::parse_str(src).unwrap();
        for how in [Instrumentation::Resources, Instrumentation::Full] {
            let out = instrument(&wasm, 2 << 20, how).unwrap();
            // No import before: deadline 0, memory_limit 1, table_limit 2.
            // Both injected table functions call table_limit; the guest's
            // own function (body 0) no longer grows a table itself.
            assert_eq!(calls_to(&out, 2), 2, "{how:?}");
            assert!(!has_table_grow(&out, 0), "{how:?}");
            assert!(
                has_table_grow(&out, 2) && has_table_grow(&out, 3),
                "{how:?}"
            );
        }
    }

    #[test]
    fn resources_only_adds_no_deadline_checks() {
        let src = r#"(module (memory (export "memory") 1)
             (func (export "f") (param i32) (result i32)
               (loop $l (br_if $l (i32.const 0)))
               (memory.grow (local.get 0))))"#;
        let wasm = wat::parse_str(src).unwrap();
        let resources = instrument(&wasm, 2 << 20, Instrumentation::Resources).unwrap();
        assert_eq!(calls_to(&resources, 0), 0, "no deadline calls");
        let full = instrument(&wasm, 2 << 20, Instrumentation::Full).unwrap();
        assert_eq!(calls_to(&full, 0), 2, "entry and loop header");
        assert_eq!(
            instrument(&wasm, 2 << 20, Instrumentation::None).unwrap(),
            wasm
        );
    }

    /// The weights the deadline checks charge, in order: each
    /// `i32.const` right after a `global.get` of the counter.
    fn charges(bytes: &[u8], counter: u32) -> Vec<Option<i32>> {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            if let Ok(Payload::CodeSectionEntry(body)) = payload {
                let mut r = body.get_operators_reader().unwrap();
                // A charge starts with a `global.get` of the counter that
                // does not follow a `global.set` of it (that is the test
                // after the subtraction).
                let (mut after_get, mut after_set) = (false, false);
                while !r.eof() {
                    let op = r.read().unwrap();
                    if after_get {
                        out.push(match op {
                            Operator::I32Const { value } => Some(value),
                            _ => None,
                        });
                    }
                    after_get = !after_set
                        && matches!(op, Operator::GlobalGet { global_index } if global_index == counter);
                    after_set = matches!(op, Operator::GlobalSet { global_index } if global_index == counter);
                }
            }
        }
        out
    }

    #[test]
    fn checks_charge_static_sizes_and_bulk_lengths() {
        let src = r#"(module (memory (export "memory") 1) (data $d "abc")
             (table 2 funcref)
             (func (export "f")
               (loop $l (br_if $l (i32.const 0)))
               (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536))
               (memory.copy (i32.const 0) (i32.const 1) (i32.const 2))
               (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3))
               (table.fill (i32.const 0) (ref.null func) (i32.const 2))
               (table.copy (i32.const 0) (i32.const 1) (i32.const 1))))"#;
        let wasm = wat::parse_str(src).unwrap();
        let out = instrument(&wasm, 2 << 20, Instrumentation::Full).unwrap();
        // No global before: the counter is global 0. Entry: the whole
        // body (25 operators); the loop: its 3; then five bulk charges,
        // computed from the length at run time (no constant weight).
        assert_eq!(
            charges(&out, 0),
            [Some(25), Some(3), None, None, None, None, None]
        );
        // Five bulk operations: five more places that may call the
        // deadline import, besides the entry and the loop header.
        assert_eq!(calls_to(&out, 0), 7);
        // Resources only: the bulk operations are left alone.
        let resources = instrument(&wasm, 2 << 20, Instrumentation::Resources).unwrap();
        assert_eq!(calls_to(&resources, 0), 0);
    }

    #[test]
    fn a_huge_body_charges_at_most_one_period() {
        let body = "(drop (i32.const 1)) ".repeat(CHECK_PERIOD as usize);
        let src = format!(r#"(module (memory (export "memory") 1) (func (export "f") {body}))"#);
        let wasm = wat::parse_str(src).unwrap();
        let out = instrument(&wasm, 2 << 20, Instrumentation::Full).unwrap();
        assert_eq!(charges(&out, 0), [Some(CHECK_PERIOD)]);
    }
}
