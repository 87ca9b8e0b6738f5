"""What the host grants an extension: :class:`HostPolicy` and
:class:`ResourceLimits`, the Python form of Morph's ``HostPolicy``.

The manifest is a request written by the extension's (untrusted) author;
the effective grant is its intersection with the host's policy, and every
limit is the smaller of the manifest's and the policy's ceiling.
``HostPolicy()`` grants nothing; :meth:`HostPolicy.allow_requested` grants
what the manifest asks for (the development path, or what a person
approved), still under the ceilings.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Iterable


class Permission(str, enum.Enum):
    """A capability permission, written ``area:verb`` as in manifests."""

    HTTP_READ = "http:read"
    HTTP_WRITE = "http:write"
    VAULT_READ = "vault:read"
    VAULT_WRITE = "vault:write"
    EVENT_EMIT = "event:emit"
    EVENT_LISTEN = "event:listen"
    FS_READ = "fs:read"
    FS_WRITE = "fs:write"
    DATA_READ = "data:read"
    DATA_WRITE = "data:write"


@dataclass(frozen=True)
class ResourceLimits:
    """Per-execution limits (ceilings, in a policy). ``None`` keeps
    Morph's default: 128 MiB memory, 30 s, 100 HTTP requests, 10 MiB
    files, 1 MiB output, 1000 host calls (docs/abi.md, Limits)."""

    max_memory_mb: int | None = None
    max_execution_ms: int | None = None
    max_http_requests: int | None = None
    max_file_size_mb: int | None = None
    max_output_bytes: int | None = None
    max_host_calls: int | None = None
    max_http_response_bytes: int | None = None
    max_data_keys: int | None = None
    max_data_bytes: int | None = None

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: a positive integer, not {value!r}")

    def to_dict(self) -> dict:
        """The set limits, by Morph's field names."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def _permission(p: Permission | str) -> str:
    return Permission(p).value


@dataclass(frozen=True)
class HostPolicy:
    """The host's policy for an extension (see the module docs).

    ``granted``: permissions granted (intersected with the manifest's);
    ``hosts``: ``None`` (no HTTP host), ``"requested"`` (the manifest's
    ``allowed_hosts``) or patterns (intersected with them); ``ceilings``;
    ``strict``: refuse a backend that cannot enforce a limit (default
    True); ``fuel``: an instruction budget per execution; and
    ``private_network``: let ``http.fetch`` reach loopback and private
    addresses (never granted by a manifest).
    """

    granted: frozenset[str] = frozenset()
    hosts: str | tuple[str, ...] | None = None
    ceilings: ResourceLimits = field(default_factory=ResourceLimits)
    strict: bool = True
    fuel: int | None = None
    private_network: bool = False

    def __post_init__(self):
        object.__setattr__(self, "granted", frozenset(_permission(p) for p in self.granted))
        if self.hosts is not None and self.hosts != "requested":
            if isinstance(self.hosts, str):
                raise ValueError('hosts: None, "requested" or a sequence of host patterns')
            object.__setattr__(self, "hosts", tuple(self.hosts))
        if not isinstance(self.ceilings, ResourceLimits):
            raise TypeError("ceilings: a ResourceLimits")

    @classmethod
    def allow_requested(cls, **overrides) -> "HostPolicy":
        """Grants whatever the manifest requests (every permission and
        host it lists), capped by the ceilings."""
        base = cls(granted=frozenset(p.value for p in Permission), hosts="requested")
        return dataclasses.replace(base, **overrides)

    def grant(self, *permissions: Permission | str) -> "HostPolicy":
        """This policy granting exactly ``permissions``."""
        return dataclasses.replace(self, granted=frozenset(permissions))

    def allow_hosts(self, patterns: Iterable[str]) -> "HostPolicy":
        """This policy allowing ``http.fetch`` to ``patterns``."""
        return dataclasses.replace(self, hosts=tuple(patterns))

    def with_ceilings(self, ceilings: ResourceLimits) -> "HostPolicy":
        """This policy with ``ceilings``."""
        return dataclasses.replace(self, ceilings=ceilings)

    def to_json(self) -> str:
        """Morph's serialized ``HostPolicy``."""
        if self.hosts is None:
            hosts: object = "none"
        elif self.hosts == "requested":
            hosts = "as_requested"
        else:
            hosts = {"only": list(self.hosts)}
        return json.dumps(
            {
                "granted": sorted(self.granted),
                "hosts": hosts,
                "ceilings": self.ceilings.to_dict(),
                "enforcement": "strict" if self.strict else "best_effort",
                "fuel": self.fuel,
                "private_network": self.private_network,
            }
        )
