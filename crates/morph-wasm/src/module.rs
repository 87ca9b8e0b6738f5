//! Validation of WebAssembly modules before any engine sees them: one fixed
//! feature set, the ABI's exports and imports, the declared memory, the
//! nesting depth of control instructions, the bounds of active segments.
//! A module with a start function is normalised once here, so that every
//! engine compiles the same bytes: the start section is detached and the
//! function exported as [`START_EXPORT`], which the ABI driver calls
//! first, under the execution's limits (wasmi cannot instantiate without
//! running the start function, and runs it outside its fuel slices).

use std::sync::Arc;

use wasmparser::{
    CompositeInnerType, ConstExpr, DataKind, ElementItems, ElementKind, ExternalKind, FuncType,
    FunctionBody, Operator, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures,
};

use morph_core::{MorphError, Result};

use crate::instrument::{
    DEADLINE_IMPORT, INSTRUMENT_MODULE, MEMORY_LIMIT_IMPORT, TABLE_LIMIT_IMPORT,
};

/// Most table elements a guest may grow a table to.
pub const MAX_TABLE_ELEMENTS: u64 = 1 << 20;

/// Most tables a module may define (checked by validation; engines that
/// preallocate tables, like wasmtime's pool, size for it).
pub const MAX_TABLES: u32 = 8;

/// Deepest nesting of `block`, `loop` and `if` a function may have;
/// deeper is `invalid_module` at load. Cranelift's compile time grows with
/// the square of the loop depth (16,384 nested loops: 18-29 s on wasmtime,
/// Pulley and wasmer), and wasm3's compiler allows 1,000 control frames per
/// function, counting the function itself and the `if` the deadline
/// instrumentation adds inside each loop: 990 is the deepest every backend
/// compiles, each in well under a second.
pub const MAX_CONTROL_DEPTH: usize = 990;

/// Most bytes a module's code section may have; more is `invalid_module`
/// at load, before validation or any engine sees it. Compile time and
/// compiler memory grow with the code (before any execution limit
/// applies); real extensions are far smaller (a Rust extension with
/// `serde_json` has about 200 KiB of code).
pub const MAX_CODE_BYTES: u64 = 8 << 20;

/// Most functions a module may define; more is `invalid_module` at load.
/// Each one costs the compilers fixed work however small its body is.
pub const MAX_FUNCTIONS: u32 = 50_000;

/// Most locals (parameters included) one function may have; more is
/// `invalid_module` at load. A local declaration is a few bytes however
/// many locals it declares, and engines allocate and zero each one.
pub const MAX_LOCALS_PER_FUNCTION: u64 = 10_000;

/// Most locals (parameters included) all of a module's functions may have
/// together; more is `invalid_module` at load.
pub const MAX_TOTAL_LOCALS: u64 = 1_000_000;

/// The export a detached start function gets (see the module docs); a
/// module may not export this name itself.
pub const START_EXPORT: &str = "morph:start";

/// Module name of the ABI's imports.
pub const IMPORT_MODULE: &str = "morph";
/// Module name of WASI preview 1 imports.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The one feature set every backend accepts (ABI.md): MVP + bulk memory,
/// sign-extension, non-trapping float-to-int, multi-value, mutable
/// globals, reference types. No SIMD, threads, memory64, GC or exceptions.
pub fn accepted_features() -> WasmFeatures {
    WasmFeatures::WASM1
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::BULK_MEMORY_OPT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::CALL_INDIRECT_OVERLONG
}

/// A guest export the ABI defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExport {
    /// The module's start function, detached by validation and exported as
    /// [`START_EXPORT`] (`() -> ()`); called before anything else.
    Start,
    /// `_initialize: () -> ()`, optional.
    Initialize,
    /// `morph_abi_version: () -> i32`.
    AbiVersion,
    /// `morph_alloc: (i32) -> i32`.
    Alloc,
    /// `describe: () -> i64`.
    Describe,
    /// `execute: (i32 x 6) -> i64`.
    Execute,
}

impl GuestExport {
    /// The export name.
    pub fn name(self) -> &'static str {
        match self {
            GuestExport::Start => START_EXPORT,
            GuestExport::Initialize => "_initialize",
            GuestExport::AbiVersion => "morph_abi_version",
            GuestExport::Alloc => "morph_alloc",
            GuestExport::Describe => "describe",
            GuestExport::Execute => "execute",
        }
    }

    /// The type of its one result, if it has one.
    pub fn result(self) -> Option<WasmType> {
        match self {
            GuestExport::Start | GuestExport::Initialize => None,
            GuestExport::AbiVersion | GuestExport::Alloc => Some(WasmType::I32),
            GuestExport::Describe | GuestExport::Execute => Some(WasmType::I64),
        }
    }

    fn signature(self) -> (&'static [ValType], &'static [ValType]) {
        use ValType::{I32, I64};
        match self {
            GuestExport::Start | GuestExport::Initialize => (&[], &[]),
            GuestExport::AbiVersion => (&[], &[I32]),
            GuestExport::Alloc => (&[I32], &[I32]),
            GuestExport::Describe => (&[], &[I64]),
            GuestExport::Execute => (&[I32, I32, I32, I32, I32, I32], &[I64]),
        }
    }
}

/// A host import the ABI defines (module `morph`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostImport {
    /// `host_call: (req_ptr, req_len) -> i32`.
    HostCall,
    /// `host_response: (dst_ptr, dst_len) -> i32`.
    HostResponse,
    /// `log: (level, ptr, len) -> ()`.
    Log,
}

impl HostImport {
    /// Every ABI import.
    pub const ALL: [HostImport; 3] = [
        HostImport::HostCall,
        HostImport::HostResponse,
        HostImport::Log,
    ];

    /// The import name within module `morph`.
    pub fn name(self) -> &'static str {
        match self {
            HostImport::HostCall => "host_call",
            HostImport::HostResponse => "host_response",
            HostImport::Log => "log",
        }
    }

    fn signature(self) -> (&'static [ValType], &'static [ValType]) {
        use ValType::I32;
        match self {
            HostImport::HostCall | HostImport::HostResponse => (&[I32, I32], &[I32]),
            HostImport::Log => (&[I32, I32, I32], &[]),
        }
    }
}

/// A value type at the WASI boundary (preview 1 uses only these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

/// What serves an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// An ABI import of module `morph`.
    Abi(HostImport),
    /// A `wasi_snapshot_preview1` function (the shim serves any name;
    /// unknown ones get `ENOSYS`).
    Wasi,
    /// `morph:instrument.deadline`, added by the instrumentation.
    Deadline,
    /// `morph:instrument.memory_limit`, added by the instrumentation.
    MemoryLimit,
    /// `morph:instrument.table_limit`, added by the instrumentation.
    TableLimit,
}

/// A function the module imports, with the type it declares. Every
/// import a validated module has is one of these, and each (module,
/// name) pair appears once, however often the module imports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Module name: `morph`, `wasi_snapshot_preview1` or `morph:instrument`.
    pub module: &'static str,
    /// Function name, e.g. `host_call` or `fd_write`.
    pub name: String,
    /// Parameter types.
    pub params: Vec<WasmType>,
    /// Result types (none or one).
    pub results: Vec<WasmType>,
    /// What serves it.
    pub kind: ImportKind,
}

impl Import {
    fn abi(which: HostImport) -> Import {
        use WasmType::I32;
        let (params, results) = match which {
            HostImport::HostCall | HostImport::HostResponse => (vec![I32, I32], vec![I32]),
            HostImport::Log => (vec![I32, I32, I32], vec![]),
        };
        Import {
            module: IMPORT_MODULE,
            name: which.name().to_string(),
            params,
            results,
            kind: ImportKind::Abi(which),
        }
    }

    /// The imports core's instrumentation adds (see
    /// [`instrument`](crate::instrument)).
    pub fn instrumentation() -> [Import; 3] {
        [
            Import {
                module: INSTRUMENT_MODULE,
                name: DEADLINE_IMPORT.to_string(),
                params: vec![],
                results: vec![],
                kind: ImportKind::Deadline,
            },
            Import {
                module: INSTRUMENT_MODULE,
                name: MEMORY_LIMIT_IMPORT.to_string(),
                params: vec![WasmType::I64],
                results: vec![],
                kind: ImportKind::MemoryLimit,
            },
            Import {
                module: INSTRUMENT_MODULE,
                name: TABLE_LIMIT_IMPORT.to_string(),
                params: vec![WasmType::I64],
                results: vec![],
                kind: ImportKind::TableLimit,
            },
        ]
    }
}

/// A module that passed validation; backends compile only these.
#[derive(Debug, Clone)]
pub struct WasmModule {
    bytes: Arc<[u8]>,
    has_start: bool,
    has_initialize: bool,
    initial_memory_bytes: u64,
    imports: Vec<Import>,
}

impl WasmModule {
    /// Validates binary or text (`.wat`, when `is_text`) module bytes.
    /// `origin` names the file in error messages.
    pub fn parse(bytes: &[u8], is_text: bool, origin: &str) -> Result<WasmModule> {
        let binary = if is_text {
            wat::parse_bytes(bytes)
                .map_err(|e| MorphError::invalid_module(format!("{origin}: {e}")))?
                .into_owned()
        } else {
            bytes.to_vec()
        };
        Self::validate(binary).map_err(|e| e.context(origin))
    }

    fn validate(bytes: Vec<u8>) -> Result<WasmModule> {
        if !bytes.starts_with(b"\0asm") {
            return Err(MorphError::invalid_module(
                "not a WebAssembly module (no `\\0asm` header)",
            ));
        }
        check_budgets(&bytes)?;
        Validator::new_with_features(accepted_features())
            .validate_all(&bytes)
            .map_err(|e| MorphError::invalid_module(format!("validation failed: {e}")))?;

        let mut types: Vec<Option<FuncType>> = Vec::new();
        let mut funcs: Vec<u32> = Vec::new(); // function index -> type index
        let mut imports: Vec<Import> = Vec::new();
        let mut memories: Vec<u64> = Vec::new();
        let mut tables: Vec<u64> = Vec::new();
        let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
        let mut start: Option<u32> = None;
        let mut segments: Vec<Segment> = Vec::new();
        let mut imported_funcs = 0u32;
        let mut bodies = 0u32;
        let invalid = |e: wasmparser::BinaryReaderError| MorphError::invalid_module(e.to_string());

        for payload in Parser::new(0).parse_all(&bytes) {
            match payload.map_err(invalid)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(invalid)?.into_types() {
                            types.push(match sub.composite_type.inner {
                                CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(invalid)?;
                        let qualified = format!("{}.{}", import.module, import.name);
                        let TypeRef::Func(ty) = import.ty else {
                            return Err(MorphError::invalid_module(format!(
                                "import `{qualified}` is not a function; only `morph` functions may be imported"
                            )));
                        };
                        match import.module {
                            IMPORT_MODULE => {
                                let which = HostImport::ALL
                                    .into_iter()
                                    .find(|h| h.name() == import.name)
                                    .ok_or_else(|| {
                                        MorphError::invalid_module(format!(
                                            "import `{qualified}` is not part of ABI v1 (host_call, host_response, log)"
                                        ))
                                    })?;
                                check_signature(
                                    &qualified,
                                    func_type(&types, ty),
                                    which.signature(),
                                )?;
                                add_import(&mut imports, Import::abi(which))?;
                            }
                            WASI_MODULE => {
                                add_import(
                                    &mut imports,
                                    wasi_import(&qualified, import.name, func_type(&types, ty))?,
                                )?;
                            }
                            _ => {
                                return Err(MorphError::invalid_module(format!(
                                    "import `{qualified}` is refused: only module `morph` may be imported"
                                )));
                            }
                        }
                        funcs.push(ty);
                        imported_funcs += 1;
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        funcs.push(ty.map_err(invalid)?);
                    }
                }
                Payload::MemorySection(reader) => {
                    for mem in reader {
                        memories.push(mem.map_err(invalid)?.initial);
                    }
                }
                Payload::TableSection(reader) => {
                    if reader.count() > MAX_TABLES {
                        return Err(MorphError::invalid_module(format!(
                            "declares {} tables; Morph allows at most {MAX_TABLES}",
                            reader.count(),
                        )));
                    }
                    for table in reader {
                        let initial = table.map_err(invalid)?.ty.initial;
                        if initial > MAX_TABLE_ELEMENTS {
                            return Err(MorphError::memory_limit(format!(
                                "a table starts with {initial} elements, above {MAX_TABLE_ELEMENTS}"
                            )));
                        }
                        tables.push(initial);
                    }
                }
                Payload::StartSection { func, .. } => start = Some(func),
                Payload::ElementSection(reader) => {
                    for (index, element) in reader.into_iter().enumerate() {
                        let element = element.map_err(invalid)?;
                        if let ElementKind::Active {
                            table_index,
                            offset_expr,
                        } = element.kind
                        {
                            let len = match element.items {
                                ElementItems::Functions(r) => r.count(),
                                ElementItems::Expressions(_, r) => r.count(),
                            };
                            segments.push(Segment {
                                what: "element",
                                index,
                                target: table_index.unwrap_or(0),
                                offset: constant_offset(&offset_expr),
                                len: len.into(),
                            });
                        }
                    }
                }
                Payload::DataSection(reader) => {
                    for (index, data) in reader.into_iter().enumerate() {
                        let data = data.map_err(invalid)?;
                        if let DataKind::Active {
                            memory_index,
                            offset_expr,
                        } = data.kind
                        {
                            segments.push(Segment {
                                what: "data",
                                index,
                                target: memory_index,
                                offset: constant_offset(&offset_expr),
                                len: data.data.len() as u64,
                            });
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    check_nesting(imported_funcs + bodies, &body)?;
                    bodies += 1;
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let e = export.map_err(invalid)?;
                        exports.push((e.name.to_string(), e.kind, e.index));
                    }
                }
                _ => {}
            }
        }

        let find = |name: &str| exports.iter().find(|(n, _, _)| n == name);
        if find(START_EXPORT).is_some() {
            return Err(MorphError::invalid_module(format!(
                "exports `{START_EXPORT}`, a name Morph reserves for the module's start function"
            )));
        }
        if find("_start").is_some() {
            return Err(MorphError::invalid_module(
                "exports `_start` (a command); Morph runs reactors: build with `-mexec-model=reactor` or as a cdylib",
            ));
        }
        match find("memory") {
            Some((_, ExternalKind::Memory, _)) => {}
            _ => {
                return Err(MorphError::invalid_module(
                    "missing export `memory` (the guest's linear memory)",
                ));
            }
        }
        let mut has_initialize = false;
        for export in [
            GuestExport::Initialize,
            GuestExport::AbiVersion,
            GuestExport::Alloc,
            GuestExport::Describe,
            GuestExport::Execute,
        ] {
            let name = export.name();
            match find(name) {
                Some((_, ExternalKind::Func, index)) => {
                    let ty = funcs.get(*index as usize).copied().unwrap_or(u32::MAX);
                    check_signature(name, func_type(&types, ty), export.signature())?;
                    has_initialize |= export == GuestExport::Initialize;
                }
                Some(_) => {
                    return Err(MorphError::invalid_module(format!(
                        "export `{name}` is not a function"
                    )));
                }
                None if export == GuestExport::Initialize => {}
                None => {
                    return Err(MorphError::invalid_module(format!(
                        "missing export `{name}` (ABI v1 requires memory, morph_abi_version, morph_alloc, describe, execute)"
                    )));
                }
            }
        }
        let initial_memory_bytes = memories
            .first()
            .copied()
            .unwrap_or(0)
            .saturating_mul(65_536);
        check_segments(&segments, &tables, &memories)?;
        let bytes = match start {
            Some(func) => detach_start(&bytes, func)?,
            None => bytes,
        };
        Ok(WasmModule {
            bytes: bytes.into(),
            has_start: start.is_some(),
            has_initialize,
            initial_memory_bytes,
            imports,
        })
    }

    /// The validated binary.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether it has a start function (detached and exported as
    /// [`START_EXPORT`]).
    pub fn has_start(&self) -> bool {
        self.has_start
    }

    /// Whether it exports `_initialize`.
    pub fn has_initialize(&self) -> bool {
        self.has_initialize
    }

    /// The declared initial size of its memory, in bytes.
    pub fn initial_memory_bytes(&self) -> u64 {
        self.initial_memory_bytes
    }

    /// The functions it imports (ABI and WASI), each (module, name) once.
    pub fn imports(&self) -> &[Import] {
        &self.imports
    }

    /// `memory_limit` when the declared minimum memory exceeds `max_bytes`.
    pub fn check_memory_limit(&self, max_bytes: u64) -> Result<()> {
        if self.initial_memory_bytes > max_bytes {
            return Err(MorphError::memory_limit(format!(
                "the module declares {} MiB of initial memory, above max_memory_mb = {}",
                self.initial_memory_bytes >> 20,
                max_bytes >> 20
            )));
        }
        Ok(())
    }
}

/// An active element or data segment, for the bounds check.
struct Segment {
    what: &'static str,
    index: usize,
    target: u32,
    /// `None` when the offset is not a constant (never under Morph's
    /// feature set: a constant expression may read only imported globals,
    /// and only functions may be imported).
    offset: Option<u64>,
    len: u64,
}

/// The offset of an active segment when it is an `i32.const`.
fn constant_offset(expr: &ConstExpr<'_>) -> Option<u64> {
    let mut reader = expr.get_operators_reader();
    match (reader.read().ok()?, reader.read().ok()?) {
        (Operator::I32Const { value }, Operator::End) => Some(u64::from(value as u32)),
        _ => None,
    }
}

/// Instantiation initialises active segments and traps on the first that
/// does not fit its table or memory (elements first, then data). Engines
/// disagreed on what to call that at load (wasm3: `unsupported`); Morph
/// says `trap`, before any engine sees the module. Tables and memory are
/// never imported, so their initial sizes are known here.
fn check_segments(segments: &[Segment], tables: &[u64], memories: &[u64]) -> Result<()> {
    for s in segments {
        let (size, unit) = match s.what {
            "element" => (
                tables.get(s.target as usize).copied().unwrap_or(0),
                "elements",
            ),
            _ => (
                memories
                    .get(s.target as usize)
                    .copied()
                    .unwrap_or(0)
                    .saturating_mul(65_536),
                "bytes",
            ),
        };
        let Some(offset) = s.offset else { continue };
        let end = offset.saturating_add(s.len);
        if end > size {
            let of = if s.what == "element" {
                "table"
            } else {
                "memory"
            };
            return Err(MorphError::trap(format!(
                "{} segment {} covers [{offset}, {end}), outside the initial {of} of {size} {unit}: instantiation traps",
                s.what, s.index
            )));
        }
    }
    Ok(())
}

/// `invalid_module` when the module is over one of the static compile
/// budgets ([`MAX_CODE_BYTES`], [`MAX_FUNCTIONS`],
/// [`MAX_LOCALS_PER_FUNCTION`], [`MAX_TOTAL_LOCALS`]), naming it and the
/// numbers. Runs before full validation and reads only section headers,
/// the function types and local declarations, so a hostile module is
/// refused in time linear in what it declares, before anything costly.
fn check_budgets(bytes: &[u8]) -> Result<()> {
    let invalid = |e: wasmparser::BinaryReaderError| MorphError::invalid_module(e.to_string());
    let over = |what: String, limit: u64, name: &str| {
        MorphError::invalid_module(format!("{what}, above Morph's limit of {limit} ({name})"))
    };
    let mut params: Vec<u64> = Vec::new(); // type index -> parameter count
    let mut funcs: Vec<u32> = Vec::new(); // defined function -> type index
    let mut imported_funcs = 0u32;
    let mut body = 0usize;
    let mut total = 0u64;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        params.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => f.params().len() as u64,
                            _ => 0,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let TypeRef::Func(_) = import.map_err(invalid)?.ty {
                        imported_funcs = imported_funcs.saturating_add(1);
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                let all = u64::from(imported_funcs) + u64::from(reader.count());
                if all > u64::from(MAX_FUNCTIONS) {
                    return Err(over(
                        format!(
                            "has {all} functions ({imported_funcs} imported, {} defined)",
                            reader.count()
                        ),
                        MAX_FUNCTIONS.into(),
                        "MAX_FUNCTIONS",
                    ));
                }
                for ty in reader {
                    funcs.push(ty.map_err(invalid)?);
                }
            }
            Payload::CodeSectionStart { size, .. } if u64::from(size) > MAX_CODE_BYTES => {
                return Err(over(
                    format!("has a code section of {size} bytes"),
                    MAX_CODE_BYTES,
                    "MAX_CODE_BYTES",
                ));
            }
            Payload::CodeSectionEntry(entry) => {
                let index = u64::from(imported_funcs) + body as u64;
                let mut locals = funcs
                    .get(body)
                    .and_then(|ty| params.get(*ty as usize))
                    .copied()
                    .unwrap_or(0);
                body += 1;
                for declared in entry.get_locals_reader().map_err(invalid)? {
                    let (count, _) = declared.map_err(invalid)?;
                    locals = locals.saturating_add(count.into());
                    if locals > MAX_LOCALS_PER_FUNCTION {
                        return Err(over(
                            format!(
                                "function {index} declares at least {locals} locals (parameters included)"
                            ),
                            MAX_LOCALS_PER_FUNCTION,
                            "MAX_LOCALS_PER_FUNCTION",
                        ));
                    }
                }
                total = total.saturating_add(locals);
                if total > MAX_TOTAL_LOCALS {
                    return Err(over(
                        format!(
                            "functions {imported_funcs} to {index} declare {total} locals together (parameters included)"
                        ),
                        MAX_TOTAL_LOCALS,
                        "MAX_TOTAL_LOCALS",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `invalid_module` when function `index` nests `block`, `loop` and `if`
/// deeper than [`MAX_CONTROL_DEPTH`].
fn check_nesting(index: u32, body: &FunctionBody<'_>) -> Result<()> {
    let invalid = |e: wasmparser::BinaryReaderError| MorphError::invalid_module(e.to_string());
    let mut reader = body.get_operators_reader().map_err(invalid)?;
    let mut depth = 0usize;
    while !reader.eof() {
        match reader.read().map_err(invalid)? {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                depth += 1;
                if depth > MAX_CONTROL_DEPTH {
                    return Err(MorphError::invalid_module(format!(
                        "function {index} nests blocks, loops and ifs more than {MAX_CONTROL_DEPTH} deep, Morph's limit (MAX_CONTROL_DEPTH)"
                    )));
                }
            }
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The module without its start section, exporting the start function as
/// [`START_EXPORT`] instead; every other section is copied byte for byte.
fn detach_start(bytes: &[u8], start: u32) -> Result<Vec<u8>> {
    let invalid = |e: wasmparser::BinaryReaderError| MorphError::invalid_module(e.to_string());
    let mut out = wasm_encoder::Module::new();
    let mut exported = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        match &payload {
            Payload::StartSection { .. } => continue,
            Payload::ExportSection(reader) => {
                let mut section = wasm_encoder::ExportSection::new();
                for export in reader.clone() {
                    let e = export.map_err(invalid)?;
                    section.export(e.name, e.kind.into(), e.index);
                }
                section.export(START_EXPORT, wasm_encoder::ExportKind::Func, start);
                out.section(&section);
                exported = true;
                continue;
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&wasm_encoder::RawSection {
                id,
                data: &bytes[range],
            });
        }
    }
    if !exported {
        return Err(MorphError::invalid_module(
            "has a start function but no export section",
        ));
    }
    let out = out.finish();
    Validator::new_with_features(accepted_features())
        .validate_all(&out)
        .map_err(|e| MorphError::invalid_module(format!("detaching the start function: {e}")))?;
    Ok(out)
}

/// Adds `import` unless the module imported the same function before; the
/// same name with another type cannot be linked and is refused.
fn add_import(imports: &mut Vec<Import>, import: Import) -> Result<()> {
    match imports
        .iter()
        .find(|i| i.module == import.module && i.name == import.name)
    {
        None => {
            imports.push(import);
            Ok(())
        }
        Some(seen) if *seen == import => Ok(()),
        Some(_) => Err(MorphError::invalid_module(format!(
            "imports `{}.{}` twice with different types",
            import.module, import.name
        ))),
    }
}

fn wasi_import(qualified: &str, name: &str, ty: Option<&FuncType>) -> Result<Import> {
    let convert = |types: &[ValType]| -> Option<Vec<WasmType>> {
        types
            .iter()
            .map(|t| match t {
                ValType::I32 => Some(WasmType::I32),
                ValType::I64 => Some(WasmType::I64),
                _ => None,
            })
            .collect()
    };
    let shape = ty.and_then(|f| Some((convert(f.params())?, convert(f.results())?)));
    match shape {
        Some((params, results)) if results.is_empty() || results == [WasmType::I32] => Ok(Import {
            module: WASI_MODULE,
            name: name.to_string(),
            params,
            results,
            kind: ImportKind::Wasi,
        }),
        _ => Err(MorphError::invalid_module(format!(
            "import `{qualified}` does not have a WASI preview 1 type (i32/i64 parameters, an i32 errno or no result)"
        ))),
    }
}

fn func_type(types: &[Option<FuncType>], index: u32) -> Option<&FuncType> {
    types.get(index as usize).and_then(Option::as_ref)
}

fn check_signature(
    what: &str,
    actual: Option<&FuncType>,
    (params, results): (&[ValType], &[ValType]),
) -> Result<()> {
    match actual {
        Some(f) if f.params() == params && f.results() == results => Ok(()),
        _ => Err(MorphError::invalid_module(format!(
            "`{what}` has type {} but ABI v1 requires {params:?} -> {results:?}",
            actual.map_or_else(
                || "(not a function type)".to_string(),
                |f| format!("{:?} -> {:?}", f.params(), f.results())
            )
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph_core::ErrorKind;

    const EXPORTS: &str = r#"
        (memory (export "memory") 1)
        (func (export "morph_abi_version") (result i32) i32.const 1)
        (func (export "morph_alloc") (param i32) (result i32) i32.const 8)
        (func (export "describe") (result i64) i64.const 0)
        (func (export "execute") (param i32 i32 i32 i32 i32 i32) (result i64) i64.const 0)"#;

    fn parse(body: &str) -> Result<WasmModule> {
        WasmModule::parse(format!("(module {body})").as_bytes(), true, "t.wat")
    }

    #[test]
    fn accepts_a_minimal_abi_module() {
        let m = parse(&format!(
            r#"(import "morph" "log" (func (param i32 i32 i32))) {EXPORTS}"#
        ))
        .unwrap();
        let kinds: Vec<ImportKind> = m.imports().iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [ImportKind::Abi(HostImport::Log)]);
        assert_eq!(m.initial_memory_bytes(), 65_536);
        assert!(!m.has_initialize());
    }

    #[test]
    fn refuses_what_the_abi_does_not_allow() {
        let kind = |body: &str| parse(body).unwrap_err().kind();
        assert_eq!(
            kind(&EXPORTS.replace("\"describe\"", "\"describe2\"")),
            ErrorKind::InvalidModule
        );
        assert_eq!(
            kind(&format!(r#"(import "env" "f" (func)) {EXPORTS}"#)),
            ErrorKind::InvalidModule
        );
        assert_eq!(
            kind(&format!(r#"(import "morph" "log" (func)) {EXPORTS}"#)),
            ErrorKind::InvalidModule
        );
        assert_eq!(
            kind(&format!(r#"{EXPORTS} (func (export "_start"))"#)),
            ErrorKind::InvalidModule
        );
        assert_eq!(
            kind(&format!(
                r#"{EXPORTS} (func (result v128) v128.const i64x2 0 0)"#
            )),
            ErrorKind::InvalidModule
        );
        let e = WasmModule::parse(b"garbage!", false, "x.wasm").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModule);
        assert!(e.message().starts_with("x.wasm: "), "{e}");
    }

    #[test]
    fn wasi_imports_are_recorded_with_their_types() {
        let m = parse(&format!(
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) {EXPORTS}"#
        ))
        .unwrap();
        let names: Vec<&str> = m.imports().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["fd_write", "proc_exit"]);
        assert_eq!(m.imports()[1].results, []);
        let e = parse(&format!(
            r#"(import "wasi_snapshot_preview1" "x" (func (result f64))) {EXPORTS}"#
        ))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModule);
    }

    #[test]
    fn a_function_imported_twice_is_linked_once() {
        let m = parse(&format!(
            r#"(import "morph" "host_call" (func (param i32 i32) (result i32)))
               (import "morph" "host_call" (func (param i32 i32) (result i32)))
               (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
               (import "wasi_snapshot_preview1" "sched_yield" (func (result i32))) {EXPORTS}"#
        ))
        .unwrap();
        let names: Vec<&str> = m.imports().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["host_call", "sched_yield"]);
        let e = parse(&format!(
            r#"(import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
               (import "wasi_snapshot_preview1" "sched_yield" (func (param i32) (result i32))) {EXPORTS}"#
        ))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModule);
        assert!(e.message().contains("twice"), "{e}");
    }

    #[test]
    fn a_start_function_is_detached_and_exported() {
        let m = parse(&format!(
            r#"(global $g (mut i32) (i32.const 0))
               (func $init (global.set $g (i32.const 1)))
               (start $init) {EXPORTS}"#
        ))
        .unwrap();
        assert!(m.has_start());
        let mut start_section = false;
        let mut exported = None;
        for payload in Parser::new(0).parse_all(m.bytes()) {
            match payload.unwrap() {
                Payload::StartSection { .. } => start_section = true,
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.unwrap();
                        if e.name == START_EXPORT {
                            exported = Some((e.kind, e.index));
                        }
                    }
                }
                _ => {}
            }
        }
        assert!(!start_section, "the start section is gone");
        assert_eq!(exported, Some((ExternalKind::Func, 0)));
        assert!(!parse(EXPORTS).unwrap().has_start());
    }

    #[test]
    fn the_start_export_name_is_reserved() {
        let e = parse(&format!(r#"(func (export "morph:start")) {EXPORTS}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModule);
        assert!(e.message().contains("morph:start"), "{e}");
    }

    fn nested(depth: usize, open: &str) -> String {
        format!(
            "(func {} {}) {EXPORTS}",
            open.repeat(depth),
            "end ".repeat(depth)
        )
    }

    #[test]
    fn control_nesting_deeper_than_the_limit_is_invalid_module() {
        for open in ["block ", "loop ", "i32.const 0 if "] {
            assert!(parse(&nested(MAX_CONTROL_DEPTH, open)).is_ok(), "{open}");
            let e = parse(&nested(MAX_CONTROL_DEPTH + 1, open)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidModule, "{open}");
            assert!(e.message().contains("MAX_CONTROL_DEPTH"), "{e}");
            assert!(e.message().starts_with("t.wat: function 0 "), "{e}");
        }
        // Siblings do not add up: only nesting counts.
        let siblings = format!(
            "(func {}) {EXPORTS}",
            "block end ".repeat(MAX_CONTROL_DEPTH * 2)
        );
        assert!(parse(&siblings).is_ok());
    }

    #[test]
    fn active_segments_outside_their_table_or_memory_are_trap() {
        let with = |items: &str| parse(&format!("(table 4 funcref) {items} {EXPORTS}"));
        // Inside, up to the last byte and element, and empty at the end.
        assert!(with(r#"(data (i32.const 65526) "0123456789")"#).is_ok());
        assert!(with(r#"(data (i32.const 65536) "")"#).is_ok());
        assert!(with("(elem (i32.const 2) func 0 0)").is_ok());
        assert!(with("(elem (i32.const 4))").is_ok());
        assert!(with(r#"(data "passive, never checked")"#).is_ok());
        for (items, what) in [
            (r#"(data (i32.const 65530) "0123456789")"#, "data segment 0"),
            (r#"(data (i32.const -1) "x")"#, "data segment 0"),
            (r#"(data (i32.const 65537) "")"#, "data segment 0"),
            ("(elem (i32.const 3) func 0 0)", "element segment 0"),
            (
                "(elem (i32.const 0) func 0) (elem (i32.const 5))",
                "element segment 1",
            ),
        ] {
            let e = with(items).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Trap, "{items}: {e}");
            assert!(e.message().contains(what), "{items}: {e}");
        }
    }

    /// An ABI module (the EXPORTS functions, types 0-3) plus `extra`
    /// functions of type `() -> ()` (type 4), each with `locals` i32
    /// locals in one declaration and a body of `body_bytes` nops.
    fn generated(extra: u32, locals: u32, body_bytes: usize) -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction,
            MemorySection, MemoryType, Module, TypeSection, ValType as V,
        };
        let mut types = TypeSection::new();
        types.ty().function([], [V::I32]);
        types.ty().function([V::I32], [V::I32]);
        types.ty().function([], [V::I64]);
        types.ty().function([V::I32; 6], [V::I64]);
        types.ty().function([], []);
        let mut funcs = FunctionSection::new();
        for ty in 0..4 {
            funcs.function(ty);
        }
        for _ in 0..extra {
            funcs.function(4);
        }
        let mut memory = MemorySection::new();
        memory.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = ExportSection::new();
        exports.export("memory", ExportKind::Memory, 0);
        for (i, name) in ["morph_abi_version", "morph_alloc", "describe", "execute"]
            .into_iter()
            .enumerate()
        {
            exports.export(name, ExportKind::Func, i as u32);
        }
        let mut code = CodeSection::new();
        for result in [
            Instruction::I32Const(1),
            Instruction::I32Const(8),
            Instruction::I64Const(0),
            Instruction::I64Const(0),
        ] {
            let mut f = Function::new([]);
            f.instruction(&result);
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        for _ in 0..extra {
            let mut f = Function::new(if locals > 0 {
                vec![(locals, V::I32)]
            } else {
                vec![]
            });
            f.raw(std::iter::repeat_n(0x01, body_bytes));
            f.instruction(&Instruction::End);
            code.function(&f);
        }
        let mut module = Module::new();
        module
            .section(&types)
            .section(&funcs)
            .section(&memory)
            .section(&exports)
            .section(&code);
        module.finish()
    }

    fn refused(bytes: &[u8]) -> MorphError {
        let started = std::time::Instant::now();
        let e = WasmModule::parse(bytes, false, "hostile.wasm").unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "refused in {:?}: {e}",
            started.elapsed()
        );
        assert_eq!(e.kind(), ErrorKind::InvalidModule, "{e}");
        e
    }

    #[test]
    fn modules_over_a_compile_budget_are_refused_at_once_naming_it() {
        // At the limits: accepted.
        let at = MAX_FUNCTIONS - 4;
        assert!(WasmModule::parse(&generated(at, 0, 0), false, "ok.wasm").is_ok());
        assert!(
            WasmModule::parse(
                &generated(1, MAX_LOCALS_PER_FUNCTION as u32, 0),
                false,
                "ok.wasm"
            )
            .is_ok()
        );

        let e = refused(&generated(at + 1, 0, 0));
        assert!(e.message().contains("MAX_FUNCTIONS"), "{e}");
        assert!(
            e.message()
                .contains(&format!("has {} functions", MAX_FUNCTIONS + 1)),
            "{e}"
        );

        let e = refused(&generated(1, MAX_LOCALS_PER_FUNCTION as u32 + 1, 0));
        assert!(e.message().contains("MAX_LOCALS_PER_FUNCTION"), "{e}");
        assert!(
            e.message()
                .contains("function 4 declares at least 10001 locals"),
            "{e}"
        );
        // Far more than wasmparser's own cap: still our budget, at once.
        let e = refused(&generated(1, u32::MAX, 0));
        assert!(e.message().contains("MAX_LOCALS_PER_FUNCTION"), "{e}");

        let per = MAX_LOCALS_PER_FUNCTION as u32;
        let e = refused(&generated(
            (MAX_TOTAL_LOCALS / u64::from(per)) as u32 + 1,
            per,
            0,
        ));
        assert!(e.message().contains("MAX_TOTAL_LOCALS"), "{e}");

        let e = refused(&generated(2, 0, MAX_CODE_BYTES as usize / 2 + 1));
        assert!(e.message().contains("MAX_CODE_BYTES"), "{e}");
        assert!(
            e.message()
                .starts_with("hostile.wasm: has a code section of "),
            "{e}"
        );
    }

    #[test]
    fn declared_memory_above_the_cap_is_memory_limit() {
        let m = parse(&EXPORTS.replace("\"memory\") 1", "\"memory\") 40")).unwrap();
        assert_eq!(
            m.check_memory_limit(1 << 20).unwrap_err().kind(),
            ErrorKind::MemoryLimit
        );
        assert!(m.check_memory_limit(128 << 20).is_ok());
    }
}
