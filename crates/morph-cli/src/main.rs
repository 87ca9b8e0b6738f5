//! The `morph` command line.
#![forbid(unsafe_code)]

mod log_line;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use morph::host::{
    EnvVault, FileVault, JsonLinesAudit, MemoryVault, RedbDataStore, SandboxFs, UreqHttp,
    VaultChain, VaultProvider, data_dir, persistent_host_builder, persistent_module_cache,
    validate_key,
};
use morph::text::{bounded_untrusted, json_for_terminal};
use morph::{
    Backend, BackendOptions, BaseMorphRuntime, CapabilityHost, ExecutionContext, ExtensionArtifact,
    ExtensionManager, HostPolicy, MorphError, Result, RuntimeKind, sha256, validate_id,
};
use morph_conformance::{Matrix, Suite};

/// Run untrusted extensions behind one runtime trait and one capability host.
#[derive(Parser)]
#[command(name = "morph", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Instance slots of wasmtime's pooling allocator (0: allocate each
    /// instance on demand). Default: sized from the address space, which
    /// matters under `ulimit -v`.
    #[arg(long, global = true, value_name = "N")]
    pool_slots: Option<u32>,
}

/// `--pool-slots`, set once in `main`.
static POOL_SLOTS: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// The backend options every command starts from: the engine settings
/// given on the command line.
fn engine_options() -> BackendOptions {
    BackendOptions {
        wasmtime_pool_slots: POOL_SLOTS.get().copied().flatten(),
        ..BackendOptions::default()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Execute an action of the extension in DIR and print its JSON result.
    ///
    /// Grants the manifest's requested permissions up to the default
    /// ceilings (the development path) and prints the grant on stderr.
    /// The extension runs in an isolated namespace of its own directory:
    /// its secrets, key/value store and files live in
    /// `dev/<sha256 of the directory's path>/` of the data directory
    /// ($MORPH_DATA_DIR, default ~/.local/share/morph), never in those of
    /// an installed extension with the same id (the id is the manifest's
    /// claim, so it proves nothing). The audit log is the data directory's.
    Run {
        /// The extension directory (manifest.yaml + entry).
        dir: PathBuf,
        /// The action to execute.
        action: String,
        /// Params as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Execution context as JSON (request_id, user_id, group_id, space_id, config).
        #[arg(long)]
        context: Option<String>,
        /// Backend to use (default: the first compiled one).
        #[arg(long)]
        backend: Option<String>,
        /// A secret for this run only, as KEY=VALUE (repeatable). Secrets
        /// are also read from the namespace's vault file (with
        /// --installed-namespace: the data directory's vault file, then
        /// MORPH_SECRET_<EXTENSION>__<KEY> variables).
        #[arg(long = "secret", value_name = "KEY=VALUE")]
        secrets: Vec<String>,
        /// Run in the namespace of the installed extension with the
        /// manifest's id instead of an isolated one: its secrets (the
        /// vault file and MORPH_SECRET_* variables), data and files. Only
        /// for an extension directory you trust with them.
        #[arg(long)]
        installed_namespace: bool,
        /// Let `http.fetch` reach loopback, private and other non-public
        /// addresses (a local test server, say) when an allowed host
        /// resolves to one. Off by default: no manifest opens them.
        #[arg(long)]
        allow_private_network: bool,
    },
    /// Print the Describe document of the extension in DIR.
    Describe {
        /// The extension directory.
        dir: PathBuf,
        /// Backend to use (default: the first compiled one).
        #[arg(long)]
        backend: Option<String>,
    },
    /// List the compiled backends and what each enforces.
    Backends,
    /// Show the newest audit records (every host call and execution).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Install the extension in DIR into the data directory, approving what
    /// its manifest requests (shown first), capped by the default ceilings.
    Install {
        /// The extension directory.
        dir: PathBuf,
        /// Replace an installed extension with the same id (the new files
        /// get its secrets, data and files). Without it such an install is
        /// refused.
        #[arg(long)]
        replace: bool,
    },
    /// List installed extensions.
    List,
    /// Remove an installed extension.
    Uninstall {
        /// The extension id.
        extension_id: String,
    },
    /// Execute an action of an installed extension (by id) and deliver the
    /// events it emits to installed listeners.
    Exec {
        /// The extension id.
        extension_id: String,
        /// The action.
        action: String,
        /// Params as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
    },
    /// Manage secrets in the data directory's encrypted vault.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Run the conformance suite and print the case × backend matrix.
    Conformance {
        /// A backend name, or `all` (default).
        #[arg(long, default_value = "all")]
        backend: String,
        /// Print the matrix as JSON (with timings and timeout overshoots).
        #[arg(long)]
        json: bool,
        /// The suite directory (default: the one this binary was built from).
        #[arg(long)]
        suite: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Store a secret for an extension (the value from --value or stdin).
    Set {
        /// The extension id.
        extension_id: String,
        /// The secret's key.
        key: String,
        /// The value (read from standard input when absent).
        #[arg(long)]
        value: Option<String>,
    },
    /// List the keys stored for an extension (never the values).
    List {
        /// The extension id.
        extension_id: String,
    },
    /// Remove a secret.
    Rm {
        /// The extension id.
        extension_id: String,
        /// The secret's key.
        key: String,
    },
}

/// The manager over the data directory, with every compiled backend and
/// the persistent host.
fn manager() -> Result<ExtensionManager> {
    let dir = data_dir();
    let vault: Arc<dyn VaultProvider> = Arc::new(VaultChain::new(vec![
        Arc::new(file_vault()?),
        Arc::new(EnvVault),
    ]));
    let options = BackendOptions {
        module_cache: Some(persistent_module_cache(&dir)?),
        ..engine_options()
    };
    let mut runtimes = BTreeMap::new();
    for backend in Backend::compiled() {
        if let std::collections::btree_map::Entry::Vacant(slot) = runtimes.entry(backend.kind()) {
            slot.insert(backend.create_with(&options)?);
        }
    }
    ExtensionManager::new(
        &dir.join("extensions"),
        persistent_host_builder(&dir, vault)?,
        runtimes,
        None,
    )
}

/// The isolated namespace `morph run` keeps the state of the extension
/// directory `dir` in: `dev/<first 32 hex digits of the SHA-256 of its
/// canonical path>/` of the data directory, created when missing. Keyed
/// on where the files are, not on the id their manifest claims.
fn dev_namespace(dir: &std::path::Path) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(dir)
        .map_err(|e| MorphError::io_error(format!("cannot resolve {}: {e}", dir.display())))?;
    let key = sha256(canonical.as_os_str().as_encoded_bytes());
    let dev = data_dir().join("dev").join(&key[..32]);
    std::fs::create_dir_all(&dev)
        .map_err(|e| MorphError::io_error(format!("cannot create {}: {e}", dev.display())))?;
    Ok(dev)
}

fn file_vault() -> Result<FileVault> {
    let dir = data_dir();
    FileVault::open(&dir.join("vault.json"), &dir.join("vault.key"))
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the last N records of the data directory's audit log.
    Tail {
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Print raw JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // A worker process (JavaScript, Python) serves its parent and exits here.
    morph::main_if_worker();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .with_writer(log_line::EscapedStderr)
        .init();
    let cli = Cli::parse();
    let _ = POOL_SLOTS.set(cli.pool_slots);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error[io_error]: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error[{}]: {}", e.kind(), shown(&render_message(&e)));
            ExitCode::FAILURE
        }
    }
}

fn render_message(e: &MorphError) -> String {
    match e.code() {
        Some(code) => format!("({code}) {}", e.message()),
        None => e.message().to_string(),
    }
}

fn compiled_names() -> String {
    Backend::compiled()
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn pick_backend(name: Option<&str>, kind: RuntimeKind) -> Result<Arc<dyn BaseMorphRuntime>> {
    let backend = match name {
        Some(n) => n.parse::<Backend>()?,
        None => Backend::default_for(kind).ok_or_else(|| {
            MorphError::unsupported(format!(
                "this build has no backend for {kind} extensions (compiled: {}); enable its Cargo feature",
                compiled_names()
            ))
        })?,
    };
    let options = BackendOptions {
        module_cache: Some(persistent_module_cache(&data_dir())?),
        ..engine_options()
    };
    backend.create_with(&options)
}

fn parse_json(text: &str, flag: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| MorphError::invalid_params(format!("{flag} is not valid JSON: {e}")))
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            dir,
            action,
            params,
            context,
            backend,
            secrets,
            allow_private_network,
            installed_namespace,
        } => {
            let params = parse_json(&params, "--params")?;
            let context: ExecutionContext = match context {
                Some(text) => serde_json::from_value(parse_json(&text, "--context")?)
                    .map_err(|e| MorphError::invalid_params(format!("--context: {e}")))?,
                None => ExecutionContext::default(),
            };
            let artifact = ExtensionArtifact::from_dir(&dir)?;
            let runtime = pick_backend(backend.as_deref(), artifact.manifest.runtime)?;
            let policy = HostPolicy::allow_requested().private_network(allow_private_network);
            let vault = Arc::new(MemoryVault::new());
            for pair in &secrets {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    MorphError::invalid_params(format!("--secret `{pair}` is not KEY=VALUE"))
                })?;
                validate_key("--secret", key)?;
                vault.set(&artifact.manifest.extension_id, key, value)?;
            }
            let id = &artifact.manifest.extension_id;
            let (host, namespace) = if installed_namespace {
                // --secret values first, then the encrypted vault file, then
                // MORPH_SECRET_<EXTENSION>__<KEY>; `vault.set_secret` writes to
                // the vault file, where the next run reads it.
                let file: Arc<dyn VaultProvider> = Arc::new(file_vault()?);
                let vault = Arc::new(
                    VaultChain::new(vec![vault, file.clone(), Arc::new(EnvVault)]).writing_to(file),
                );
                let host = persistent_host_builder(&data_dir(), vault)?.build();
                let namespace = format!(
                    "the installed namespace of `{}` in {} (--installed-namespace)",
                    shown(id),
                    data_dir().display()
                );
                (host, namespace)
            } else {
                let dev = dev_namespace(&dir)?;
                let file: Arc<dyn VaultProvider> = Arc::new(FileVault::open(
                    &dev.join("vault.json"),
                    &dev.join("vault.key"),
                )?);
                let vault = Arc::new(VaultChain::new(vec![vault, file.clone()]).writing_to(file));
                let host = CapabilityHost::builder()
                    .vault(vault)
                    .fs(Arc::new(SandboxFs::new(dev.join("files"))))
                    .http(Arc::new(UreqHttp::default()))
                    .data(Arc::new(RedbDataStore::open(&dev.join("data.redb"))?))
                    .audit(Arc::new(JsonLinesAudit::open(
                        &data_dir().join("audit.jsonl"),
                    )?))
                    .build();
                let namespace = format!(
                    "an isolated dev namespace (secrets, data and files in {}; not those of an installed `{}`; --installed-namespace shares them)",
                    dev.display(),
                    shown(id)
                );
                (host, namespace)
            };
            let ext = runtime.load(&artifact, Arc::new(host), &policy).await?;
            eprintln!(
                "morph: running `{}` on {} in {namespace} with {}",
                shown(id),
                runtime.info().name,
                shown(&ext.policy().to_string())
            );
            let value = ext.execute(&action, params, &context).await?;
            println!("{}", pretty(&value));
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { dir, backend } => {
            let artifact = ExtensionArtifact::from_dir(&dir)?;
            let runtime = pick_backend(backend.as_deref(), artifact.manifest.runtime)?;
            let policy = HostPolicy::allow_requested();
            let ext = runtime
                .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
                .await?;
            let describe = serde_json::to_value(ext.describe())
                .map_err(|e| MorphError::host_error(e.to_string()))?;
            println!("{}", pretty(&describe));
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { dir, replace } => {
            let artifact = ExtensionArtifact::from_dir(&dir)?;
            let policy = HostPolicy::allow_requested();
            let m = &artifact.manifest;
            eprintln!(
                "morph: `{}` {} requests: {}",
                m.extension_id,
                shown(&m.version),
                shown(&policy.resolve(m).to_string())
            );
            let manager = manager()?;
            let id = if replace {
                manager.install_replacing(&dir, &policy)?
            } else {
                manager.install(&dir, &policy)?
            };
            println!("installed {id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            for i in manager()?.list()? {
                println!(
                    "{:<32} {:<10} {}",
                    i.extension_id,
                    shown(&i.version),
                    i.runtime
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Uninstall { extension_id } => {
            manager()?.uninstall(&extension_id)?;
            println!("uninstalled {extension_id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec {
            extension_id,
            action,
            params,
        } => {
            let params = parse_json(&params, "--params")?;
            let run = manager()?
                .execute(&extension_id, &action, params, &ExecutionContext::default())
                .await?;
            println!("{}", pretty(&run.result?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Secret { command } => {
            let vault = file_vault()?;
            match command {
                SecretCommand::Set {
                    extension_id,
                    key,
                    value,
                } => {
                    validate_id(&extension_id).map_err(MorphError::invalid_params)?;
                    validate_key("secret set", &key)?;
                    let value = match value {
                        Some(v) => v,
                        None => {
                            let mut line = String::new();
                            std::io::stdin().read_line(&mut line).map_err(|e| {
                                MorphError::io_error(format!("reading the value: {e}"))
                            })?;
                            line.trim_end_matches(['\n', '\r']).to_string()
                        }
                    };
                    vault.set(&extension_id, &key, &value)?;
                }
                SecretCommand::List { extension_id } => {
                    for key in vault.list(&extension_id)? {
                        println!("{}", shown(&key));
                    }
                }
                SecretCommand::Rm { extension_id, key } => {
                    if !vault.remove(&extension_id, &key)? {
                        return Err(MorphError::not_found(format!(
                            "no secret `{key}` for `{extension_id}`"
                        )));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Tail { lines, json },
        } => {
            let path = data_dir().join("audit.jsonl");
            for r in JsonLinesAudit::tail(&path, lines)? {
                if json {
                    let line = serde_json::to_string(&r)
                        .map_err(|e| MorphError::host_error(e.to_string()))?;
                    println!("{}", json_for_terminal(&line));
                } else {
                    println!(
                        "{} {:<24} {:<16} {:<18} {:<8} {}{}",
                        r.time_ms,
                        shown(&r.extension_id),
                        shown(&r.action),
                        shown(&r.op),
                        if r.allowed { "allowed" } else { "denied" },
                        shown(&r.outcome),
                        r.reason
                            .map(|why| format!(": {}", shown(&why)))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backends => {
            if Backend::compiled().is_empty() {
                println!("no backend compiled in; enable a Cargo feature (wasmtime, ...)");
            }
            for backend in Backend::compiled() {
                let info = backend.create_with(&engine_options())?.info();
                let limits: Vec<String> = info
                    .limits
                    .iter()
                    .map(|(l, e)| {
                        format!(
                            "{l}={}",
                            serde_json::to_value(e)
                                .unwrap_or_default()
                                .as_str()
                                .unwrap_or("?")
                        )
                    })
                    .collect();
                println!(
                    "{:<16} {} {} ({}), runs {}; limits: {}",
                    info.name,
                    info.engine,
                    info.engine_version,
                    info.execution,
                    info.kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    limits.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Conformance {
            backend,
            json,
            suite,
        } => {
            let suite = match suite {
                Some(dir) => Suite::load(&dir),
                None => Suite::bundled(),
            }
            .map_err(|e| MorphError::io_error(format!("conformance suite: {e}")))?;
            let chosen: Vec<Backend> = if backend == "all" {
                Backend::compiled()
            } else {
                vec![backend.parse()?]
            };
            let mut runtimes = Vec::new();
            for name in chosen {
                let runtime = name.create_with(&engine_options())?;
                let info = runtime.info();
                let unenforced: Vec<String> =
                    info.unenforced().iter().map(|l| l.to_string()).collect();
                if backend == "all" && !unenforced.is_empty() {
                    // Conformance runs under Strict limits, where such a
                    // backend refuses every load: say so instead of a
                    // column of refusals.
                    eprintln!(
                        "morph: `{name}` is not in the matrix: it cannot enforce {} (best effort only)",
                        unenforced.join(", ")
                    );
                    continue;
                }
                runtimes.push((name.to_string(), runtime));
            }
            let matrix = Matrix::run(&suite, &runtimes).await;
            if json {
                let text = serde_json::to_string_pretty(&matrix)
                    .map_err(|e| MorphError::host_error(e.to_string()))?;
                println!("{}", json_for_terminal(&text));
            } else {
                for line in matrix.render().lines() {
                    println!("{}", shown(line));
                }
            }
            Ok(if matrix.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// JSON for stdout: pretty, with every character a terminal could act on
/// escaped (the same JSON value).
fn pretty(value: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    json_for_terminal(&text).into_owned()
}

/// Most bytes of one piece of extension text printed to the terminal.
const MAX_SHOWN: usize = 16 << 10;

/// Text an extension may have chosen (messages, manifest values, audit
/// fields), escaped and bounded for the terminal.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    bounded_untrusted(text, MAX_SHOWN)
}
