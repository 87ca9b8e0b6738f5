"""morph_runtime: run untrusted extensions (WebAssembly, JavaScript, Python)
sandboxed from a Python application, with Morph's policy, limits and
capability host.

>>> import morph_runtime as morph
>>> host = morph.Morph()
>>> hello = host.load("examples/hello", morph.HostPolicy.allow_requested())
>>> hello.execute("hello", {"name": "Ada"})
{'message': 'Hello, Ada!'}

Every extension kind looks the same: :meth:`Extension.describe` says what it
offers and :meth:`Extension.execute` runs an action, returning Python
objects or raising one :class:`MorphError` subclass per stable error kind
(:class:`Timeout`, :class:`PermissionDenied`, ...). Calls release the GIL
while the extension runs; :meth:`Extension.execute_async` awaits one from
asyncio without blocking the event loop. WebAssembly runs in this process
(wasmtime, or wasmi); JavaScript and Python extensions run in sandboxed
worker processes of the ``morph-worker`` program shipped in this package.
(The import name is not ``morph``: that is the module extensions see.)
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
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
    "worker_program",
]

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
    """The native side's view of an application's vault object."""

    def __init__(self, vault):
        if not callable(getattr(vault, "get_secret", None)):
            raise TypeError("vault: an object with get_secret(extension_id, key)")
        self._vault = vault

    def get(self, extension_id: str, key: str) -> str | None:
        value = self._vault.get_secret(extension_id, key)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"get_secret returned {type(value).__name__}, not str or None")
        return value

    def set(self, extension_id: str, key: str, value: str) -> None:
        setter = getattr(self._vault, "set_secret", None)
        if setter is None:
            raise NotImplementedError("the vault is read-only")
        setter(extension_id, key, value)


def _event_sink(on_event: Callable[[dict], Any]) -> Callable[[str], None]:
    if not callable(on_event):
        raise TypeError("on_event: a callable taking an event dict")

    def publish(event_json: str) -> None:
        on_event(json.loads(event_json))

    return publish


class Extension:
    """A loaded extension. Thread-safe; every execution runs on a fresh
    instance (no state survives between executions but the extension's
    data store)."""

    def __init__(self, native):
        self._native = native
        self._describe = json.loads(native.describe_json())
        self._manifest = json.loads(native.manifest_json())

    @property
    def extension_id(self) -> str:
        """Its id from the manifest."""
        return self._manifest["extension_id"]

    @property
    def manifest(self) -> dict:
        """Its validated manifest."""
        return self._manifest

    def describe(self) -> dict:
        """Its validated describe() document: name, version, actions with
        their parameters, events, config schema."""
        return self._describe

    @property
    def granted(self) -> str:
        """What the host's policy granted it (the effective policy)."""
        return self._native.policy_text()

    def execute(
        self, action: str, params: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> Any:
        """Runs ``action`` with ``params`` (a JSON object) in ``context``
        (``user_id``, ``group_id``, ``space_id``, ``request_id``,
        ``config``); returns its result or raises a :class:`MorphError`.
        Blocks the calling thread, not other threads (the GIL is released).
        """
        params_json = "{}" if params is None else json.dumps(dict(params))
        context_json = None if context is None else json.dumps(dict(context))
        return json.loads(_native_call(self._native.execute_json, action, params_json, context_json))

    def execute_with_report(
        self, action: str, params: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> tuple[Any, dict]:
        """:meth:`execute`, also returning the execution's report
        (``duration``, ``host_calls``, ``peak_memory_bytes``,
        ``request_id``)."""
        params_json = "{}" if params is None else json.dumps(dict(params))
        context_json = None if context is None else json.dumps(dict(context))
        result, report = _native_call(self._native.execute_report_json, action, params_json, context_json)
        return json.loads(result), json.loads(report)

    async def execute_async(
        self, action: str, params: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> Any:
        """:meth:`execute` from asyncio: runs in the loop's default
        executor, so the event loop keeps running. Cancelling the await
        does not stop the execution (its own limits do)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.execute, action, params, context))

    def __repr__(self) -> str:
        return f"<morph_runtime.Extension {self.extension_id} {self._manifest.get('version', '')}>"


class Morph:
    """A Morph host: the backends, and the capability host every extension
    loaded through it shares.

    ``backends``: backend names to use, the first per kind winning (default
    every compiled one: wasmtime for wasm, js, python). ``data_dir``: keep
    files, data, the audit log and compiled modules there, with ``http.fetch``
    served (default: everything in memory). ``secrets``: ``{extension_id:
    {key: value}}`` for ``vault.get_secret`` (default, without a data dir:
    none; with one: ``MORPH_SECRET_<EXTENSION>__<KEY>`` from the
    environment). ``http``: serve ``http.fetch`` without a data dir.
    ``files_dir``: sandboxed ``fs.*`` files there without a data dir.
    ``worker_program``: the script worker (default: the packaged one).
    ``vault``: the application's own secret store instead of ``secrets``,
    an object with ``get_secret(extension_id, key) -> str | None`` and,
    to let extensions write, ``set_secret(extension_id, key, value)``
    (without it ``vault.set_secret`` is ``unsupported``). ``on_event``: a
    callable given every event an extension emits (a dict with
    ``source``, ``name``, ``payload``, ``request_id``, ...), after its
    execution succeeds. Both are called from Morph's threads; what they
    raise is the host call's ``host_error``, never the application's.
    ``executor``: ``"pool"`` runs executions on Morph's own execution
    threads (16 MiB stacks, a watchdog backstop; the default), ``"inline"``
    on the calling Python thread (no hop between threads: cheaper per
    call; each calling thread needs the stack the extension uses).
    """

    def __init__(
        self,
        *,
        backends: Iterable[str] | None = None,
        data_dir: str | os.PathLike | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        http: bool = False,
        files_dir: str | os.PathLike | None = None,
        worker_program: str | os.PathLike | None = None,
        vault: Any = None,
        on_event: Callable[[dict], Any] | None = None,
        executor: str = "pool",
    ):
        program = Path(worker_program) if worker_program is not None else globals()["worker_program"]()
        config = {
            "backends": None if backends is None else list(backends),
            "data_dir": None if data_dir is None else os.fspath(data_dir),
            "secrets": None if secrets is None else {k: dict(v) for k, v in secrets.items()},
            "http": bool(http),
            "files_dir": None if files_dir is None else os.fspath(files_dir),
            "worker_program": os.fspath(program),
            "executor": executor,
        }
        adapter = None if vault is None else _VaultAdapter(vault)
        sink = None if on_event is None else _event_sink(on_event)
        self._native = _native_call(_native.Host, json.dumps(config), adapter, sink)

    def load(self, path: str | os.PathLike, policy: HostPolicy) -> Extension:
        """Loads the extension in directory ``path`` under ``policy`` (the
        host's grant: required, there is no implicit "grant what the
        manifest asks")."""
        if not isinstance(policy, HostPolicy):
            raise TypeError("policy: a morph_runtime.HostPolicy (HostPolicy() grants nothing)")
        return Extension(_native_call(self._native.load, os.fspath(path), policy.to_json()))

    async def load_async(self, path: str | os.PathLike, policy: HostPolicy) -> Extension:
        """:meth:`load` from asyncio, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.load, path, policy))

    def runtimes(self) -> list[dict]:
        """What each backend in use is and enforces (RuntimeInfo)."""
        return json.loads(self._native.runtimes_json())

    def audit(self) -> list[dict] | None:
        """The audit records so far (in-memory hosts; with a data dir they
        are in ``<data_dir>/audit.jsonl``)."""
        records = self._native.audit_json()
        return None if records is None else json.loads(records)
