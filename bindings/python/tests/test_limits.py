"""Limits and denials from a Python host, with their kinds, on every
extension kind; the extension stays usable after each."""

from __future__ import annotations

import time

import pytest

import morph_runtime as morph
from morph_fixtures import KINDS, fixture_as

ALL = list(KINDS)


def again(extension):
    assert extension.execute("echo", {"text": "again"})["params"] == {"text": "again"}


@pytest.fixture(scope="module")
def limited(host, tmp_path_factory):
    """The kitchen fixture under tight ceilings: 300 ms, 16 MiB."""
    into = tmp_path_factory.mktemp("limited")
    policy = morph.HostPolicy.allow_requested(
        ceilings=morph.ResourceLimits(max_execution_ms=300, max_memory_mb=16)
    )
    return {kind: host.load(fixture_as("kitchen", kind, into), policy) for kind in KINDS}


@pytest.mark.parametrize("kind", ALL)
def test_an_endless_loop_is_timeout(limited, kind):
    started = time.monotonic()
    with pytest.raises(morph.Timeout):
        limited[kind].execute("loop")
    overshoot = time.monotonic() - started - 0.3
    # The limit plus max(500 ms, limit): a bound, not a benchmark.
    assert overshoot < 0.5, f"{kind}: stopped {overshoot * 1000:.0f} ms past the limit"
    again(limited[kind])


@pytest.mark.parametrize("kind", ALL)
def test_growing_memory_past_the_cap_is_memory_limit(limited, kind):
    with pytest.raises(morph.MemoryLimit):
        limited[kind].execute("memory_bomb")
    again(limited[kind])


@pytest.mark.parametrize("kind", ALL)
def test_endless_recursion_is_stack_overflow(limited, kind):
    with pytest.raises(morph.StackOverflow):
        limited[kind].execute("recurse")
    again(limited[kind])


@pytest.mark.parametrize("kind", ALL)
def test_output_past_the_quota_is_quota_exceeded(host, tmp_path, kind):
    policy = morph.HostPolicy.allow_requested(ceilings=morph.ResourceLimits(max_output_bytes=64 << 10))
    kitchen = host.load(fixture_as("kitchen", kind, tmp_path), policy)
    with pytest.raises(morph.QuotaExceeded):
        kitchen.execute("huge_output")
    again(kitchen)


@pytest.mark.parametrize("kind", ALL)
def test_an_ungranted_host_call_is_denied_and_audited(host, tmp_path, kind):
    # The manifest asks for data:write; the host grants only data:read.
    kitchen = host.load(
        fixture_as("kitchen", kind, tmp_path), morph.HostPolicy().grant(morph.Permission.DATA_READ)
    )
    answer = kitchen.execute("call", {"op": "data.set", "args": {"key": "k", "value": 1}}, {"request_id": f"deny-{kind}"})
    assert answer["err"]["code"] == "permission_denied"
    assert kitchen.execute("call", {"op": "data.list", "args": {"prefix": ""}}) == {"ok": []}
    records = [r for r in host.audit() if r.get("request_id") == f"deny-{kind}"]
    denied = [r for r in records if r.get("op") == "data.set"]
    assert denied and not denied[0]["allowed"], records
