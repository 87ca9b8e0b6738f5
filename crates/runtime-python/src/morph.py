"""Morph's host API for Python extensions (docs/scripts.md).

Loaded once per worker process as the module ``morph``, before the sandbox
closes. ``_host_call`` and ``_log`` are installed by the Rust glue; they
reach the host's capability layer over the worker's pipe.
"""

import json as _json
import sys as _sys

# The glue's own encoders: a guest that changes json's module-level encoder
# or JSONEncoder's class attributes changes neither.
_plain = _json.JSONEncoder(separators=(",", ":"))
_strict = _json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_loads = _json.loads


def _dumps(obj, allow_nan=True):
    return (_plain if allow_nan else _strict).encode(obj)


_LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "warning": 3, "error": 4}


class ExtensionError(Exception):
    """Raise to end the execution with an ``err`` envelope of your own."""

    def __init__(self, code, message=""):
        super().__init__(message)
        self.code = str(code)
        self.message = str(message)


class HostError(Exception):
    """A host call returned an ``err`` envelope (``code``, ``message``, ``op``)."""

    def __init__(self, op, code, message):
        super().__init__(f"{op}: {code}: {message}")
        self.op = op
        self.code = code
        self.message = message


class SandboxError(PermissionError):
    """What the sandbox raises for files, sockets, processes and ctypes."""


class _Fatal(BaseException):
    """The host ended the execution (quota, deadline); not for extensions."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def call_envelope(op, args=None):
    """Performs a host call and returns its envelope dict, ``{"ok": ...}`` or
    ``{"err": {"code": ..., "message": ...}}``."""
    request = _dumps({"op": op, "args": {} if args is None else args})
    return _loads(_host_call(request))


def call(op, args=None):
    """Performs a host call and returns its ``ok`` value; raises
    :class:`HostError` for an ``err`` envelope."""
    envelope = call_envelope(op, args)
    if "err" in envelope:
        err = envelope["err"] or {}
        raise HostError(op, str(err.get("code", "host_error")), str(err.get("message", "")))
    return envelope.get("ok")


# What the host takes for a level that is no name (morph-core's
# UNNAMED_LOG_LEVEL, i32::MIN): like a number outside 0..4, it ends the
# execution with abi_violation on every backend.
_UNNAMED_LEVEL = -(2**31)


def _level(level):
    """The level number of a name (any case) or of an integer 0..4; anything
    else becomes a level the host refuses."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level if -(2**31) <= level < 2**31 else _UNNAMED_LEVEL
    return _LEVELS.get(str(level).lower(), _UNNAMED_LEVEL)


def log(message, level="info"):
    """Logs ``message`` through the host (counted against max_output_bytes).
    A level that is not trace, debug, info, warn, error (or 0 to 4) ends the
    execution with ``abi_violation``."""
    _log(_level(level), str(message))


class _Namespace:
    def __init__(self, **functions):
        self.__dict__.update(functions)


http = _Namespace(
    fetch=lambda url, method="GET", headers=None, body=None: call(
        "http.fetch",
        {"method": method, "url": url, "headers": [list(h) for h in (headers or [])], "body": body},
    )
)
vault = _Namespace(
    get_secret=lambda key: call("vault.get_secret", {"key": key}),
    set_secret=lambda key, value: call("vault.set_secret", {"key": key, "value": value}),
)
events = _Namespace(emit=lambda name, payload=None: call("events.emit", {"name": name, "payload": payload}))
data = _Namespace(
    get=lambda key: call("data.get", {"key": key}),
    set=lambda key, value: call("data.set", {"key": key, "value": value}),
    delete=lambda key: call("data.delete", {"key": key}),
    list=lambda prefix="": call("data.list", {"prefix": prefix}),
)
fs = _Namespace(
    read=lambda path: call("fs.read", {"path": path}),
    write=lambda path, data: call("fs.write", {"path": path, "data": data}),
    list=lambda path=".": call("fs.list", {"path": path}),
    delete=lambda path: call("fs.delete", {"path": path}),
)


class _LogStream:
    """sys.stdout / sys.stderr of a worker: whole lines go to the host log."""

    def __init__(self, level):
        self._level = level
        self._buffer = ""

    def write(self, text):
        self._buffer += str(text)
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            _log(self._level, line)
        return len(text)

    def flush(self):
        if self._buffer:
            line, self._buffer = self._buffer, ""
            _log(self._level, line)

    def isatty(self):
        return False


def _describe(module):
    """describe() as JSON text; anything wrong is the loader's problem."""
    describe = getattr(module, "describe", None)
    execute = getattr(module, "execute", None)
    if not callable(describe):
        return _error("invalid_module", "the module defines no describe() function")
    if not callable(execute):
        return _error("invalid_module", "the module defines no execute() function")
    try:
        doc = describe()
        return _dumps({"value": _dumps(doc, allow_nan=False)})
    except _Fatal as e:
        return _error(e.kind, e.message)
    except BaseException as e:
        return _error("invalid_module", f"describe() failed: {_name(e)}: {e}")


def _run(module, action, params, context):
    """execute(action, params, context) as a result envelope (JSON text)."""
    try:
        result = module.execute(action, _loads(params), _loads(context))
        envelope = {"ok": result}
    except ExtensionError as e:
        envelope = {"err": {"code": e.code, "message": e.message}}
    except HostError as e:
        envelope = {"err": {"code": e.code, "message": f"{e.op}: {e.message}"}}
    except _Fatal as e:
        return _error(e.kind, e.message)
    except RecursionError as e:
        if not _limit_hit("stack_overflow", e):
            envelope = _uncaught(e)
        else:
            return _error("stack_overflow", f"action `{action}`: {e}")
    except MemoryError as e:
        if not _limit_hit("memory_limit", e):
            envelope = _uncaught(e)
        else:
            return _error("memory_limit", f"action `{action}` ran out of memory under max_memory_mb")
    except PermissionError as e:
        if not _limit_hit("permission_denied", e):
            envelope = _uncaught(e)
        else:
            return _error("permission_denied", f"action `{action}`: {e}")
    except SystemExit as e:
        envelope = {"err": {"code": "exit", "message": f"exit status {e.code}"}}
    except BaseException as e:
        envelope = _uncaught(e)
    for stream in (_stdout, _stderr):
        stream.flush()
    try:
        return _dumps({"value": _dumps(envelope, allow_nan=False)})
    except (TypeError, ValueError, RecursionError) as e:
        return _error("abi_violation", f"action `{action}` returned a value that is not JSON: {e}")


def _exec_module(code, file):
    """A fresh module namespace for one execution: module-level state never
    carries over."""
    import types

    module = types.ModuleType("extension")
    module.__file__ = file
    exec(code, module.__dict__)
    return module


def _load(code, file):
    """_exec_module, mapped like _run when the module's top level fails."""
    try:
        return _exec_module(code, file), None
    except _Fatal as e:
        return None, _error(e.kind, e.message)
    except RecursionError as e:
        if _limit_hit("stack_overflow", e):
            return None, _error("stack_overflow", f"{file}: {e}")
        return None, _module_failed(file, e)
    except MemoryError as e:
        if _limit_hit("memory_limit", e):
            return None, _error("memory_limit", f"{file} ran out of memory under max_memory_mb")
        return None, _module_failed(file, e)
    except PermissionError as e:
        if _limit_hit("permission_denied", e):
            return None, _error("permission_denied", f"{file}: {e}")
        return None, _module_failed(file, e)
    except BaseException as e:
        return None, _module_failed(file, e)


def _name(e):
    return type(e).__name__


def _uncaught(e):
    # Any exception the extension lets out, limits aside: its own error.
    return {"err": {"code": "uncaught_exception", "message": f"{_name(e)}: {e}"}}


def _module_failed(file, e):
    return _dumps({"value": _dumps({"err": {"code": "uncaught_exception", "message": f"{file}: {_name(e)}: {e}"}})})


def _error(kind, message):
    return _dumps({"error": {"kind": kind, "message": message}})


# The sandbox's audit hook (refusing files, sockets, processes, ctypes and
# imports of modules not loaded yet) is native, installed by the Rust glue
# after _seal: no Python code can switch it off or reach its state.


def _seal(preload):
    """Imports the modules extensions may use and points the standard
    streams at the host log; the glue then installs the audit hook."""
    global _stdout, _stderr
    import importlib
    import sys

    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    _stdout, _stderr = _LogStream(2), _LogStream(3)
    sys.stdout, sys.stderr = _stdout, _stderr


_stdout = _stderr = None
