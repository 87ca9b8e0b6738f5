"""morph_runtime: run untrusted extensions (WebAssembly, JavaScript, Python)
sandboxed from a Python application, with Morph's policy, limits and
capability host.

>>> import morph_runtime as morph
>>> host = morph.Morph()
>>> hello = host.load("examples/hello", morph.HostPolicy.allow_requested())
>>> hello.execute("hello")
{'message': 'Hello from a Morph extension'}

Every extension kind looks the same: :meth:`Extension.describe` says what it
offers and :meth:`Extension.execute` runs an action, returning Python
objects or raising one :class:`MorphError` subclass per stable error kind
(:class:`Timeout`, :class:`PermissionDenied`, ...). Calls release the GIL
while the extension runs; :meth:`Extension.execute_async` awaits one from
asyncio without blocking the event loop. WebAssembly runs in this process
(wasmtime, or wasmi); JavaScript and Python extensions run in sandboxed
worker processes of the ``morph-worker`` program shipped in this package.
(The import name is not ``morph``: that is the module extensions see.)

Text an extension chose (error messages and codes, describe() and manifest
strings, results) is returned as it is; :func:`escape_untrusted` makes it
safe to print, as ``str()`` of a :class:`MorphError` already does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import json
import logging
import os
import resource
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import _native
from .errors import (
    ERRORS,
    AbiViolation,
    ExtensionError,
    FuelExhausted,
    HostError,
    InvalidManifest,
    InvalidModule,
    InvalidParams,
    IoError,
    MemoryLimit,
    MorphError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    SignatureInvalid,
    StackOverflow,
    Timeout,
    Trap,
    UnknownAction,
    Unsupported,
    from_native,
)
from .policy import HostPolicy, Permission, ResourceLimits

__all__ = [
    "COMPILED_BACKENDS",
    "ERRORS",
    "AbiViolation",
    "Extension",
    "ExtensionError",
    "FuelExhausted",
    "HostError",
    "HostPolicy",
    "InvalidManifest",
    "InvalidModule",
    "InvalidParams",
    "IoError",
    "MemoryLimit",
    "Morph",
    "MorphError",
    "NotFound",
    "Permission",
    "PermissionDenied",
    "QuotaExceeded",
    "ResourceLimits",
    "SignatureInvalid",
    "StackOverflow",
    "Timeout",
    "Trap",
    "UnknownAction",
    "Unsupported",
    "escape_untrusted",
    "read_manifest",
    "worker_program",
]

_log = logging.getLogger("morph_runtime")

#: Native stack an inline execution needs on the calling thread (wasmtime
#: keeps guest code within 512 KiB of it; the rest is the engine's own).
MIN_INLINE_STACK = 4 << 20

#: Threads of a host's pool for ``execute_async`` / ``load_async``.
ASYNC_THREADS = 32


def escape_untrusted(text: str) -> str:
    """``text`` (from an extension) with every character a terminal could
    act on written as a visible escape (``\\n``, ``\\u{1b}``) and
    backslashes doubled: for printing what an extension chose."""
    return _native.escape_untrusted(text)


# Set while the application's vault or event sink runs on this thread: an
# execution started there would wait for a thread of the pool the provider
# call is holding (a deadlock), so it is refused.
_in_provider = threading.local()


#: Backend names this package was built with.
COMPILED_BACKENDS: tuple[str, ...] = tuple(_native.COMPILED_BACKENDS)


def worker_program() -> Path:
    """The ``morph-worker`` binary shipped in this package (the program
    JavaScript and Python extensions run in)."""
    return Path(__file__).resolve().parent / "bin" / "morph-worker"


def _native_call(fn, *args):
    try:
        return fn(*args)
    except _native.NativeError as error:
        raise from_native(error) from None


class _VaultAdapter:
    """The native side's view of an application's vault object (held by
    its Morph; the native side has a weak reference). What the vault
    raises is logged here and reaches the extension only as the op's
    ``host_error``, without its text."""

    def __init__(self, vault):
        if not callable(getattr(vault, "get_secret", None)):
            raise TypeError("vault: an object with get_secret(extension_id, key)")
        self._vault = vault

    def _call(self, op, fn, *args):
        _in_provider.active = True
        try:
            return fn(*args)
        except NotImplementedError:
            raise
        except BaseException:
            _log.exception("%s for extension %s: the application's vault raised", op, escape_untrusted(args[0]))
            raise RuntimeError(f"{op} failed") from None
        finally:
            _in_provider.active = False

    def get(self, extension_id: str, key: str) -> str | None:
        value = self._call("vault.get_secret", self._vault.get_secret, extension_id, key)
        if value is not None and not isinstance(value, str):
            _log.error("vault.get_secret returned %s, not str or None", type(value).__name__)
            raise TypeError("vault.get_secret: not text")
        return value

    def set(self, extension_id: str, key: str, value: str) -> None:
        setter = getattr(self._vault, "set_secret", None)
        if setter is None:
            raise NotImplementedError("the vault is read-only")
        self._call("vault.set_secret", setter, extension_id, key, value)


class _EventSink:
    """The native side's view of ``on_event`` (held by its Morph). What the
    callback raises is logged, and the event is dropped; the execution
    that emitted it has already succeeded."""

    def __init__(self, on_event: Callable[[dict], Any]):
        if not callable(on_event):
            raise TypeError("on_event: a callable taking an event dict")
        self._on_event = on_event

    def publish(self, event_json: str) -> None:
        event = json.loads(event_json)
        _in_provider.active = True
        try:
            self._on_event(event)
        except BaseException:
            _log.exception("on_event raised for event %s; it is dropped", escape_untrusted(event.get("name", "")))
        finally:
            _in_provider.active = False


class Extension:
    """A loaded extension. Thread-safe; every execution runs on a fresh
    instance (no state survives between executions but the extension's
    data store). Its worker process, for JavaScript and Python, ends when
    the last reference to it goes."""

    def __init__(self, native, host: "Morph"):
        self._native = native
        # The host's providers live as long as the extensions that use them.
        self._host = host
        self._describe = json.loads(native.describe_json())
        self._manifest = json.loads(native.manifest_json())

    @property
    def extension_id(self) -> str:
        """Its id from the manifest."""
        return self._manifest["extension_id"]

    @property
    def manifest(self) -> dict:
        """Its validated manifest (a copy; strings are the author's, see
        :func:`escape_untrusted`)."""
        return copy.deepcopy(self._manifest)

    def describe(self) -> dict:
        """Its validated describe() document: name, version, actions with
        their parameters, events, config schema (a copy)."""
        return copy.deepcopy(self._describe)

    @property
    def granted(self) -> str:
        """What the host's policy granted it (the effective policy)."""
        return self._native.policy_text()

    def _arguments(self, params, context) -> tuple[str, str | None]:
        if getattr(_in_provider, "active", False):
            raise Unsupported(
                "an extension cannot be executed from inside the host's vault or on_event "
                "(the call would wait for the execution thread it holds)"
            )
        self._host._check_stack()
        params_json = "{}" if params is None else json.dumps(dict(params))
        context_json = None if context is None else json.dumps(dict(context))
        return params_json, context_json

    def execute(
        self, action: str, params: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> Any:
        """Runs ``action`` with ``params`` (a JSON object) in ``context``
        (``user_id``, ``group_id``, ``space_id``, ``request_id``,
        ``config``); returns its result or raises a :class:`MorphError`.
        Blocks the calling thread, not other threads (the GIL is released);
        on the main thread Ctrl-C interrupts the wait and cancels the
        execution. JSON numbers beyond 64-bit integers arrive as floats, and
        object keys in sorted order.
        """
        params_json, context_json = self._arguments(params, context)
        return json.loads(_native_call(self._native.execute_json, action, params_json, context_json))

    def execute_with_report(
        self, action: str, params: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> tuple[Any, dict]:
        """:meth:`execute`, also returning the execution's report
        (``duration``, ``host_calls``, ``peak_memory_bytes``,
        ``request_id``)."""
        params_json, context_json = self._arguments(params, context)
        result, report = _native_call(self._native.execute_report_json, action, params_json, context_json)
        return json.loads(result), json.loads(report)

    async def execute_async(
        self, action: str, params: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> Any:
        """:meth:`execute` from asyncio: runs on its host's own thread pool
        (not the event loop's default executor, which asyncio needs for
        ``getaddrinfo`` and ``to_thread``), so the event loop keeps running.
        Cancelling the await does not stop the execution (its limits do)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._host._async_pool(), functools.partial(self.execute, action, params, context)
        )

    def __repr__(self) -> str:
        return f"<morph_runtime.Extension {self.extension_id} {self._manifest.get('version', '')}>"


def _require_policy(policy) -> None:
    if not isinstance(policy, HostPolicy):
        raise TypeError("policy: a morph_runtime.HostPolicy (HostPolicy() grants nothing)")


class Morph:
    """A Morph host: the backends, and the capability host every extension
    loaded through it shares.

    ``backends``: backend names to use, the first per kind winning (default
    every compiled one: wasmtime for wasm, js, python). ``data_dir``: keep
    files, data, the audit log and compiled modules there, with ``http.fetch``
    served (default: everything in memory). ``secrets``: ``{extension_id:
    {key: value}}`` for ``vault.get_secret`` (default, without a data dir:
    none; with one: ``MORPH_SECRET_<EXTENSION>__<KEY>`` from the
    environment). ``http``: serve ``http.fetch`` without a data dir (a data
    dir always serves it). ``files_dir``: sandboxed ``fs.*`` files there
    without a data dir. ``worker_program``: the script worker (default: the
    packaged one).

    ``vault``: the application's own secret store instead of ``secrets``,
    an object with ``get_secret(extension_id, key) -> str | None`` and,
    to let extensions write, ``set_secret(extension_id, key, value)``
    (without it ``vault.set_secret`` is ``unsupported``); it is called on
    Morph's execution threads. ``on_event``: a callable given every event
    an extension emits (a dict with ``source``, ``name``, ``payload``,
    ``request_id``, ...) once its execution succeeded, before ``execute``
    returns. What either raises is logged on the ``morph_runtime`` logger;
    the extension sees only the op's ``host_error``. Neither may execute an
    extension itself (``unsupported``).

    ``executor``: ``"pool"`` runs executions on execution threads (16 MiB
    stacks, a watchdog backstop; the default), ``"inline"`` on the calling
    Python thread (no hop between threads: cheaper per call; the thread
    needs at least ``MIN_INLINE_STACK`` of stack, which is checked).
    ``threads``: the pool's size (default Morph's shared pool, one thread
    per CPU: that many executions run at once, the others wait their turn).
    """

    def __init__(
        self,
        *,
        backends: Iterable[str] | None = None,
        data_dir: str | os.PathLike | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        http: bool | None = None,
        files_dir: str | os.PathLike | None = None,
        worker_program: str | os.PathLike | None = None,
        vault: Any = None,
        on_event: Callable[[dict], Any] | None = None,
        executor: str = "pool",
        threads: int | None = None,
    ):
        if data_dir is not None and http is False:
            raise ValueError("http: a data_dir always serves http.fetch")
        if executor == "inline":
            soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
            if soft != resource.RLIM_INFINITY and soft < MIN_INLINE_STACK:
                raise ValueError(
                    f"executor: inline needs {MIN_INLINE_STACK >> 20} MiB of stack; "
                    f"the main thread has {soft >> 10} KiB (ulimit -s)"
                )
        program = Path(worker_program) if worker_program is not None else globals()["worker_program"]()
        config = {
            "backends": None if backends is None else list(backends),
            "data_dir": None if data_dir is None else os.path.abspath(data_dir),
            "secrets": None if secrets is None else {k: dict(v) for k, v in secrets.items()},
            "http": bool(http),
            "files_dir": None if files_dir is None else os.path.abspath(files_dir),
            "worker_program": os.path.abspath(program),
            "executor": executor,
            "threads": threads,
        }
        self._inline = executor == "inline"
        # The providers are held here; the native host has weak references,
        # so a cycle through an application object stays collectable.
        self._vault = None if vault is None else _VaultAdapter(vault)
        self._sink = None if on_event is None else _EventSink(on_event)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._native = _native_call(
            _native.Host,
            json.dumps(config),
            None if self._vault is None else weakref.ref(self._vault),
            None if self._sink is None else weakref.ref(self._sink),
        )

    def _check_stack(self) -> None:
        if not self._inline or threading.current_thread() is threading.main_thread():
            return
        size = threading.stack_size()
        if 0 < size < MIN_INLINE_STACK:
            raise Unsupported(
                f"an inline execution needs {MIN_INLINE_STACK >> 20} MiB of thread stack; "
                f"threading.stack_size() is {size >> 10} KiB"
            )

    def _async_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(ASYNC_THREADS, thread_name_prefix="morph-async")
            return self._pool

    def load(self, path: str | os.PathLike, policy: HostPolicy) -> Extension:
        """Loads the extension in directory ``path`` under ``policy`` (the
        host's grant: required, there is no implicit "grant what the
        manifest asks")."""
        _require_policy(policy)
        return Extension(_native_call(self._native.load, os.fspath(path), policy.to_json()), self)

    def load_artifact(self, manifest: str, entry: bytes, policy: HostPolicy) -> Extension:
        """Loads an extension held in memory: the text of its
        ``manifest.yaml`` and the bytes of its entry file (``.wasm``,
        ``.wat``, ``.js`` or ``.py``, as the manifest's ``runtime`` says),
        under ``policy``; bounded and validated as a directory's files are."""
        _require_policy(policy)
        if not isinstance(manifest, str) or not isinstance(entry, (bytes, bytearray, memoryview)):
            raise TypeError("load_artifact(manifest: str, entry: bytes, policy)")
        return Extension(_native_call(self._native.load_parts, manifest, bytes(entry), policy.to_json()), self)

    async def load_async(self, path: str | os.PathLike, policy: HostPolicy) -> Extension:
        """:meth:`load` from asyncio, on this host's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._async_pool(), functools.partial(self.load, path, policy))

    def runtimes(self) -> list[dict]:
        """What each backend in use is and enforces (RuntimeInfo)."""
        return json.loads(self._native.runtimes_json())

    def audit(self) -> list[dict] | None:
        """The audit records so far (in-memory hosts; with a data dir they
        are in ``<data_dir>/audit.jsonl``)."""
        records = self._native.audit_json()
        return None if records is None else json.loads(records)


def read_manifest(path: str | os.PathLike) -> dict:
    """The validated manifest of the extension in directory ``path``,
    without loading it."""
    return json.loads(_native_call(_native.manifest_json_of, os.fspath(path)))
