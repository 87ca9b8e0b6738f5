"""The seed-shaped adapter (get_actions / execute with ExtensionPermission
and ResourceLimits) and the example Python host application."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import morph_runtime as morph
from morph_fixtures import EXAMPLES, ROOT, fixture_as
from morph_runtime.integration import (
    ExtensionPermission,
    JsIntegration,
    MorphIntegration,
    PythonIntegration,
    ResourceLimits,
    WasmIntegration,
)


@pytest.mark.parametrize(
    "cls,example", [(WasmIntegration, "hello"), (JsIntegration, "hello-js"), (PythonIntegration, "hello-py")]
)
def test_an_integration_per_kind_lists_and_runs_its_actions(host, cls, example):
    hello = cls(EXAMPLES / example, [ExtensionPermission.VAULT_READ], morph=host)
    assert hello.name == f"example.{example}"
    actions = {a.name: a for a in hello.get_actions()}
    assert list(actions) == ["hello", "whoami", "secret"]
    assert actions["hello"].ai_access == "allowed" and actions["whoami"].ai_access == "denied"
    ok = asyncio.run(hello.execute("hello"))
    assert ok.success and ok.data == {"message": "Hello from a Morph extension"}
    assert hello.execute_sync("secret").data == {"ok": "hi"}
    missing = hello.execute_sync("nope")
    assert not missing.success and missing.error_kind == "unknown_action"


def test_permissions_and_limits_are_the_hosts_grant(host, tmp_path):
    kitchen = MorphIntegration(
        fixture_as("kitchen", "python", tmp_path),
        permissions=[ExtensionPermission.DATA_READ],
        resource_limits=ResourceLimits(max_execution_ms=300),
        morph=host,
    )
    denied = kitchen.execute_sync("call", {"op": "data.set", "args": {"key": "k", "value": 1}})
    assert denied.success and denied.data["err"]["code"] == "permission_denied"
    looped = kitchen.execute_sync("loop")
    assert not looped.success and looped.error_kind == "timeout"


def test_the_kind_is_checked(host):
    with pytest.raises(morph.Unsupported, match="not js"):
        JsIntegration(EXAMPLES / "hello", morph=host)


def test_the_example_host_application_runs():
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python-host" / "app.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:4] == [
        "clock: now",
        "hello-wasm: hello, whoami, secret",
        "hello-js: hello, whoami, secret",
        "hello-py: hello, whoami, secret",
    ]
    assert lines[5:8] == [str({"message": "Hello from a Morph extension"})] * 3
    assert lines[8] == str({"ok": "hi"})
    assert "permission_denied" in lines[9]
    assert lines[10].startswith("error[unknown_action]")


def test_the_adapter_reports_what_it_granted_and_fails_softly(host, tmp_path):
    kitchen = MorphIntegration(
        fixture_as("kitchen", "wasm", tmp_path),
        permissions=(p for p in [ExtensionPermission.DATA_READ]),
        morph=host,
    )
    assert kitchen.permissions == (ExtensionPermission.DATA_READ,)
    assert kitchen.execute_sync("call", {"op": "data.list", "args": {"prefix": ""}}).data == {"ok": []}
    # The application's context may carry more than Morph's fields.
    seen = kitchen.execute_sync("echo", {"text": "x"}, {"user_id": "u", "session_id": "s"})
    assert seen.success and seen.data["context"]["user_id"] == "u"
    bad = kitchen.execute_sync("echo", {"text": object()})
    assert not bad.success and bad.error_kind == "invalid_params"
