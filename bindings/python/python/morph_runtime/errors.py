"""One exception class per stable Morph error kind (docs/abi.md, Error kinds).

Every class derives from :class:`MorphError`, which carries the ``kind``
string the conformance suite compares, the ``message`` (naming the file,
field, action or op concerned) and, for ``extension_error``, the guest's
``code``. ``message`` and ``code`` are the text as it is, and may hold
what an untrusted extension chose (newlines, terminal escape sequences);
``str()`` of the exception, which tracebacks and logs print, shows them
escaped (``\\n``, ``\\u{1b}``), so an extension cannot forge lines or
drive the terminal.
"""

from __future__ import annotations

from ._native import escape_untrusted as _escape


class MorphError(Exception):
    """A Morph error: ``kind`` (stable), ``message``, ``code`` (or None)."""

    kind = "morph_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message, code)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        if self.code:
            return f"{self.kind} [{_escape(self.code)}]: {_escape(self.message)}"
        return f"{self.kind}: {_escape(self.message)}"


def _kind(name: str, kind: str, doc: str) -> type[MorphError]:
    cls = type(name, (MorphError,), {"kind": kind, "__doc__": doc})
    return cls


InvalidManifest = _kind("InvalidManifest", "invalid_manifest", "The manifest is malformed or inconsistent.")
InvalidModule = _kind("InvalidModule", "invalid_module", "The entry code does not load (invalid wasm, a syntax error).")
AbiViolation = _kind("AbiViolation", "abi_violation", "The guest broke the ABI contract.")
UnknownAction = _kind("UnknownAction", "unknown_action", "No such action in the extension's describe().")
InvalidParams = _kind("InvalidParams", "invalid_params", "The params do not match the action's parameters.")
ExtensionError = _kind("ExtensionError", "extension_error", "The extension returned an error (see ``code``).")
Trap = _kind("Trap", "trap", "The guest trapped (unreachable, out of bounds, ...).")
Timeout = _kind("Timeout", "timeout", "The execution ran past max_execution_ms.")
FuelExhausted = _kind("FuelExhausted", "fuel_exhausted", "The execution used up its instruction fuel.")
MemoryLimit = _kind("MemoryLimit", "memory_limit", "The execution needed more than max_memory_mb.")
StackOverflow = _kind("StackOverflow", "stack_overflow", "The guest's call stack overflowed.")
PermissionDenied = _kind("PermissionDenied", "permission_denied", "A host call the extension was not granted.")
QuotaExceeded = _kind("QuotaExceeded", "quota_exceeded", "A per-execution quota (requests, output, ...) was exceeded.")
HostError = _kind("HostError", "host_error", "A host provider or the host itself failed.")
SignatureInvalid = _kind("SignatureInvalid", "signature_invalid", "The extension's signature or digest does not verify.")
Unsupported = _kind("Unsupported", "unsupported", "The backend or build cannot do what was asked.")
NotFound = _kind("NotFound", "not_found", "No such extension, file or backend.")
IoError = _kind("IoError", "io_error", "Reading or writing a host file failed.")

#: Every error class by its kind string.
ERRORS: dict[str, type[MorphError]] = {
    cls.kind: cls
    for cls in (
        InvalidManifest,
        InvalidModule,
        AbiViolation,
        UnknownAction,
        InvalidParams,
        ExtensionError,
        Trap,
        Timeout,
        FuelExhausted,
        MemoryLimit,
        StackOverflow,
        PermissionDenied,
        QuotaExceeded,
        HostError,
        SignatureInvalid,
        Unsupported,
        NotFound,
        IoError,
    )
}


def from_native(error: BaseException) -> MorphError:
    """The exception for a ``_native.NativeError`` (args: kind, message, code)."""
    kind, message, code = error.args
    cls = ERRORS.get(kind, MorphError)
    return cls(message, code)
