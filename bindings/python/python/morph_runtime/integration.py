"""Morph extensions shaped like an application's built-in integrations.

The seed's InterfaceManager holds integrations that list their actions
(``get_actions()``) and run them (``execute()``), each declaring the
permissions (``ExtensionPermission``) and limits (``ResourceLimits``) it
runs under. :class:`MorphIntegration` is one of those backed by a Morph
extension of any kind; :class:`WasmIntegration`, :class:`JsIntegration`
and :class:`PythonIntegration` insist on the kind. The permissions and
limits given here are the host's grant (capping the manifest's request),
not the manifest's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import HostPolicy, Morph, MorphError, ResourceLimits, Unsupported, read_manifest
from .policy import Permission

#: The seed's name for a capability permission (``ExtensionPermission.HTTP_READ``
#: is ``"http:read"``).
ExtensionPermission = Permission

__all__ = [
    "ActionDefinition",
    "ActionParameter",
    "ActionResult",
    "ExtensionPermission",
    "JsIntegration",
    "MorphIntegration",
    "PythonIntegration",
    "ResourceLimits",
    "WasmIntegration",
]


@dataclass(frozen=True)
class ActionParameter:
    """One parameter of an action."""

    name: str
    type: str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class ActionDefinition:
    """An action as an InterfaceManager lists it. ``ai_access``: whether an
    AI agent may call it (``"allowed"``, ``"confirm"``, ``"denied"``, as
    in the manifest)."""

    name: str
    description: str = ""
    parameters: tuple[ActionParameter, ...] = ()
    ai_access: str | None = None


@dataclass(frozen=True)
class ActionResult:
    """The outcome of :meth:`MorphIntegration.execute`: ``success`` and
    ``data``, or ``error`` with its stable ``error_kind`` (and the
    extension's ``error_code`` for ``extension_error``)."""

    success: bool
    data: Any = None
    error: str | None = None
    error_kind: str | None = None
    error_code: str | None = None


#: The context fields Morph passes to an extension; an application's
#: context may carry more, which integrations leave out.
CONTEXT_FIELDS = ("request_id", "user_id", "group_id", "space_id", "config")


def _context(context: Mapping[str, Any] | None) -> dict | None:
    if context is None:
        return None
    return {k: v for k, v in context.items() if k in CONTEXT_FIELDS and v is not None}


def _failed(error: Exception) -> ActionResult:
    """A failed ActionResult: a Morph error with its kind, or parameters
    that are not JSON (``invalid_params``). Messages may hold an
    extension's text (see ``escape_untrusted``)."""
    if isinstance(error, MorphError):
        return ActionResult(False, error=error.message, error_kind=error.kind, error_code=error.code)
    return ActionResult(False, error=str(error), error_kind="invalid_params")


_SHARED: list[Morph] = []


def _shared_morph() -> Morph:
    # One host for integrations created without one (backends and the
    # capability host are shared; each extension keeps its own namespaces).
    if not _SHARED:
        _SHARED.append(Morph())
    return _SHARED[0]


@dataclass
class MorphIntegration:
    """An integration backed by the Morph extension in ``path``.

    ``permissions`` and ``allowed_hosts``: what the host grants (each
    intersected with the manifest's request); ``resource_limits``: the
    ceilings. ``morph``: the host to load into (default: one shared host
    with in-memory providers).
    """

    path: str | os.PathLike
    permissions: Iterable[ExtensionPermission | str] = ()
    allowed_hosts: Iterable[str] = ()
    resource_limits: ResourceLimits = field(default_factory=ResourceLimits)
    morph: Morph | None = None

    #: The runtime kind this class insists on (None: any).
    kind = None

    def __post_init__(self):
        # Read once: a generator given as permissions must grant what the
        # integration then reports.
        self.permissions = tuple(ExtensionPermission(p) for p in self.permissions)
        self.allowed_hosts = tuple(self.allowed_hosts)
        if self.kind is not None:
            runtime = read_manifest(self.path)["runtime"]
            if runtime != self.kind:
                raise Unsupported(f"{self.path}: a {runtime} extension, not {self.kind}")
        policy = HostPolicy(
            granted=frozenset(p.value for p in self.permissions),
            hosts=self.allowed_hosts,
            ceilings=self.resource_limits,
        )
        host = self.morph or _shared_morph()
        self.extension = host.load(self.path, policy)

    @property
    def name(self) -> str:
        """The extension's id (the integration's name in the manager)."""
        return self.extension.extension_id

    @property
    def description(self) -> str:
        """Its metadata's description."""
        return self.extension.manifest.get("metadata", {}).get("description", "")

    def get_actions(self) -> list[ActionDefinition]:
        """Its actions, from describe() and the manifest's ``ai_access``."""
        ai_access = {a["name"]: a.get("ai_access") for a in self.extension.manifest.get("actions", [])}
        actions = []
        for action in self.extension.describe().get("actions", []):
            parameters = tuple(
                ActionParameter(
                    name=p["name"],
                    type=p.get("type", "any"),
                    required=bool(p.get("required", False)),
                    description=p.get("description", ""),
                )
                for p in action.get("parameters", [])
            )
            actions.append(
                ActionDefinition(
                    name=action["name"],
                    description=action.get("description", ""),
                    parameters=parameters,
                    ai_access=ai_access.get(action["name"]),
                )
            )
        return actions

    def execute_sync(
        self, action_name: str, parameters: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> ActionResult:
        """Runs an action on the calling thread."""
        try:
            return ActionResult(True, self.extension.execute(action_name, parameters, _context(context)))
        except (MorphError, TypeError, ValueError) as error:
            return _failed(error)

    async def execute(
        self, action_name: str, parameters: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> ActionResult:
        """Runs an action without blocking the event loop."""
        try:
            data = await self.extension.execute_async(action_name, parameters, _context(context))
            return ActionResult(True, data)
        except (MorphError, TypeError, ValueError) as error:
            return _failed(error)


class WasmIntegration(MorphIntegration):
    """A :class:`MorphIntegration` of a WebAssembly extension."""

    kind = "wasm"


class JsIntegration(MorphIntegration):
    """A :class:`MorphIntegration` of a JavaScript extension."""

    kind = "js"


class PythonIntegration(MorphIntegration):
    """A :class:`MorphIntegration` of a Python extension."""

    kind = "python"
