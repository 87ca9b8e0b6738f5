//! The one error type every Morph API returns, with stable kind strings.

use std::fmt;

/// The stable error kinds of ABI.md. The conformance suite compares these,
/// never message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The manifest is missing, unreadable or invalid.
    InvalidManifest,
    /// The module or script cannot be loaded (bad bytes, missing export,
    /// refused import, describe() disagreeing with the manifest).
    InvalidModule,
    /// The guest broke the ABI (bad pointer, invalid UTF-8/JSON, ...).
    AbiViolation,
    /// The action is not declared by the extension.
    UnknownAction,
    /// The parameters do not match the action's declaration.
    InvalidParams,
    /// The guest returned an `err` envelope; its code is kept.
    ExtensionError,
    /// The guest trapped (unreachable, division by zero, ...).
    Trap,
    /// `max_execution_ms` was reached.
    Timeout,
    /// The explicit fuel budget was used up.
    FuelExhausted,
    /// `max_memory_mb` was reached.
    MemoryLimit,
    /// The guest exhausted its stack.
    StackOverflow,
    /// A capability was used without the permission to use it.
    PermissionDenied,
    /// A per-execution quota (HTTP requests, host calls, output bytes) ran out.
    QuotaExceeded,
    /// A host capability failed (bad arguments, provider failure).
    HostError,
    /// A signature is missing or does not verify.
    SignatureInvalid,
    /// The backend cannot do what was asked (for example enforce a limit).
    Unsupported,
    /// No such extension, key or reference.
    NotFound,
    /// The host's own files, registry or network failed.
    IoError,
}

impl ErrorKind {
    /// Every kind, in ABI.md order.
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::InvalidManifest,
        ErrorKind::InvalidModule,
        ErrorKind::AbiViolation,
        ErrorKind::UnknownAction,
        ErrorKind::InvalidParams,
        ErrorKind::ExtensionError,
        ErrorKind::Trap,
        ErrorKind::Timeout,
        ErrorKind::FuelExhausted,
        ErrorKind::MemoryLimit,
        ErrorKind::StackOverflow,
        ErrorKind::PermissionDenied,
        ErrorKind::QuotaExceeded,
        ErrorKind::HostError,
        ErrorKind::SignatureInvalid,
        ErrorKind::Unsupported,
        ErrorKind::NotFound,
        ErrorKind::IoError,
    ];

    /// The stable string of ABI.md, e.g. `"invalid_manifest"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidManifest => "invalid_manifest",
            ErrorKind::InvalidModule => "invalid_module",
            ErrorKind::AbiViolation => "abi_violation",
            ErrorKind::UnknownAction => "unknown_action",
            ErrorKind::InvalidParams => "invalid_params",
            ErrorKind::ExtensionError => "extension_error",
            ErrorKind::Trap => "trap",
            ErrorKind::Timeout => "timeout",
            ErrorKind::FuelExhausted => "fuel_exhausted",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::StackOverflow => "stack_overflow",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::HostError => "host_error",
            ErrorKind::SignatureInvalid => "signature_invalid",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotFound => "not_found",
            ErrorKind::IoError => "io_error",
        }
    }

    /// Parses a stable kind string; `None` for anything else.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorInner {
    kind: ErrorKind,
    code: Option<String>,
    message: String,
}

/// The error of every Morph operation: a stable [`ErrorKind`], a message
/// naming what was wrong, and for `extension_error` the guest's own code.
///
/// Boxed so that `Result<T, MorphError>` stays one pointer wide on hot paths.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct MorphError(Box<ErrorInner>);

impl MorphError {
    /// An error of `kind` with a message that names the file, field, action
    /// or op concerned.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        MorphError(Box::new(ErrorInner {
            kind,
            code: None,
            message: message.into(),
        }))
    }

    /// An `extension_error` carrying the guest's code and message.
    pub fn extension(code: impl Into<String>, message: impl Into<String>) -> Self {
        MorphError(Box::new(ErrorInner {
            kind: ErrorKind::ExtensionError,
            code: Some(code.into()),
            message: message.into(),
        }))
    }

    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The guest's code for `extension_error`; `None` for other kinds.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// The human-readable message (without the kind).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Prefixes the message with where the error happened, keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.0.message = format!("{what}: {}", self.0.message);
        self
    }

    fn render(&self) -> String {
        match &self.0.code {
            Some(code) => format!("{} ({}): {}", self.0.kind, code, self.0.message),
            None => format!("{}: {}", self.0.kind, self.0.message),
        }
    }
}

impl fmt::Debug for MorphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MorphError({})", self.render())
    }
}

/// Shorthand constructors, one per kind used across crates.
macro_rules! kind_ctor {
    ($($name:ident => $kind:ident),* $(,)?) => {
        impl MorphError {
            $(
                #[doc = concat!("An error of kind [`ErrorKind::", stringify!($kind), "`].")]
                pub fn $name(message: impl Into<String>) -> Self {
                    MorphError::new(ErrorKind::$kind, message)
                }
            )*
        }
    };
}

kind_ctor! {
    invalid_manifest => InvalidManifest,
    invalid_module => InvalidModule,
    abi_violation => AbiViolation,
    unknown_action => UnknownAction,
    invalid_params => InvalidParams,
    trap => Trap,
    timeout => Timeout,
    fuel_exhausted => FuelExhausted,
    memory_limit => MemoryLimit,
    stack_overflow => StackOverflow,
    permission_denied => PermissionDenied,
    quota_exceeded => QuotaExceeded,
    host_error => HostError,
    signature_invalid => SignatureInvalid,
    unsupported => Unsupported,
    not_found => NotFound,
    io_error => IoError,
}

/// `Result` with [`MorphError`].
pub type Result<T, E = MorphError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(
            std::mem::size_of::<MorphError>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn kinds_round_trip_through_their_strings() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::parse("nope"), None);
    }

    #[test]
    fn display_names_kind_code_and_message() {
        let e = MorphError::extension("bad_title", "title is empty");
        assert_eq!(e.to_string(), "extension_error (bad_title): title is empty");
        let e = MorphError::timeout("limit 10 ms").context("action `loop`");
        assert_eq!(e.to_string(), "timeout: action `loop`: limit 10 ms");
    }
}
