"""Every extension kind from a Python host: describe, execute, context,
secrets, errors as exception classes per kind."""

from __future__ import annotations

import os

import pytest

import morph_runtime as morph
from morph_fixtures import EXAMPLES, KINDS, fixture_as

ALL = list(KINDS)


@pytest.mark.parametrize("kind", ALL)
def test_hello_describes_and_executes_on_every_kind(host, kind):
    hello = host.load(EXAMPLES / KINDS[kind][0], morph.HostPolicy.allow_requested())
    assert hello.extension_id == f"example.{KINDS[kind][0]}"
    assert [a["name"] for a in hello.describe()["actions"]] == ["hello", "whoami", "secret"]
    assert hello.execute("hello") == {"message": "Hello from a Morph extension"}
    result, report = hello.execute_with_report("hello", {}, {"request_id": f"r-{kind}"})
    assert result == {"message": "Hello from a Morph extension"}
    assert report["request_id"] == f"r-{kind}" and {"duration", "host_calls"} <= set(report)
    context = hello.execute("whoami", {}, {"user_id": "u-1", "space_id": "s-9"})
    assert context["user_id"] == "u-1" and context["space_id"] == "s-9"
    assert context["extension_id"] == hello.extension_id and context["action"] == "whoami"


@pytest.mark.parametrize("kind", ALL)
def test_secrets_come_from_the_configured_vault_and_only_when_granted(host, kind):
    path = EXAMPLES / KINDS[kind][0]
    granted = host.load(path, morph.HostPolicy().grant(morph.Permission.VAULT_READ))
    assert granted.execute("secret") == {"ok": "hi"}
    refused = host.load(path, morph.HostPolicy())
    assert refused.execute("secret")["err"]["code"] == "permission_denied"


@pytest.mark.parametrize("kind", ALL)
def test_errors_are_exception_classes_per_kind(kitchens, kind):
    kitchen = kitchens[kind]
    with pytest.raises(morph.ExtensionError) as failed:
        kitchen.execute("fail")
    assert failed.value.kind == "extension_error" and failed.value.code == "bad_input"
    with pytest.raises(morph.UnknownAction, match="no_such_action"):
        kitchen.execute("no_such_action")
    with pytest.raises(morph.InvalidParams, match="text"):
        kitchen.execute("echo", {"count": 1})
    assert all(issubclass(cls, morph.MorphError) for cls in morph.ERRORS.values())


def test_every_error_kind_has_its_class():
    from morph_runtime import _native

    assert sorted(morph.ERRORS) == sorted(_native.ERROR_KINDS)


def test_a_wasm_trap_is_trap(kitchens):
    with pytest.raises(morph.Trap):
        kitchens["wasm"].execute("trap")
    assert kitchens["wasm"].execute("echo", {"text": "again"})["params"] == {"text": "again"}


def test_the_policy_is_the_hosts_and_must_be_stated(host):
    with pytest.raises(TypeError, match="HostPolicy"):
        host.load(EXAMPLES / "hello", None)
    with pytest.raises(TypeError):
        host.load(EXAMPLES / "hello")  # no policy: no silent grant
    nothing = host.load(EXAMPLES / "hello", morph.HostPolicy())
    assert "vault:read" not in nothing.granted


def test_bad_extensions_are_refused_with_their_kind(host, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("extension_id: x\nversion: [1\n")
    with pytest.raises(morph.InvalidManifest):
        host.load(broken, morph.HostPolicy())
    with pytest.raises(morph.MorphError) as missing:
        host.load(tmp_path / "does-not-exist", morph.HostPolicy())
    assert missing.value.kind in {"not_found", "io_error", "invalid_manifest"}
    garbage = fixture_as("kitchen", "js", tmp_path)
    (garbage / "extension.js").write_text("function describe( {")
    with pytest.raises(morph.InvalidModule):
        host.load(garbage, morph.HostPolicy.allow_requested())


def test_runtimes_list_a_backend_per_kind(host):
    kinds = {kind for info in host.runtimes() for kind in info["kinds"]}
    assert kinds == {"wasm", "js", "python"}
    assert {"wasmtime", "wasmi", "js", "python"} <= set(morph.COMPILED_BACKENDS)


def test_another_wasm_backend_by_name(tmp_path):
    wasmi = morph.Morph(backends=["wasmi"])
    assert [info["name"] for info in wasmi.runtimes() if "wasm" in info["kinds"]] == ["wasmi"]
    hello = wasmi.load(EXAMPLES / "hello", morph.HostPolicy())
    assert hello.execute("hello") == {"message": "Hello from a Morph extension"}
    with pytest.raises(morph.NotFound, match="wasmtimee"):
        morph.Morph(backends=["wasmtimee"])


@pytest.mark.parametrize("kind", ALL)
def test_executions_can_run_on_the_calling_thread(tmp_path, kind):
    inline = morph.Morph(executor="inline")
    policy = morph.HostPolicy.allow_requested(ceilings=morph.ResourceLimits(max_execution_ms=300))
    kitchen = inline.load(fixture_as("kitchen", kind, tmp_path), policy)
    assert kitchen.execute("echo", {"text": "here"})["params"] == {"text": "here"}
    with pytest.raises(morph.Timeout):
        kitchen.execute("loop")
    with pytest.raises(ValueError, match="executor"):
        morph.Morph(executor="threads")


def test_guest_text_in_an_error_cannot_drive_the_terminal(host, tmp_path):
    # A Python extension whose error code and message carry a newline
    # (a forged second line), ESC sequences (clear screen, set the title)
    # and a right-to-left override.
    forger = fixture_as("minimal", "python", tmp_path)
    source = (forger / "extension.py").read_text()
    source = source.replace(
        'return "ran"',
        'import morph\n    raise morph.ExtensionError("c\\x1b[2J", "ok\\nerror[timeout]: forged\\x1b]0;owned\\x07 \\u202e")',
    )
    (forger / "extension.py").write_text(source)
    extension = host.load(forger, morph.HostPolicy())
    with pytest.raises(morph.ExtensionError) as raised:
        extension.execute("run")
    shown = str(raised.value)
    assert not any(c in shown for c in "\n\x1b\x07\u202e"), shown
    assert "error[timeout]: forged" in shown and "\\n" in shown
    # The data keeps the text as it was.
    assert raised.value.message.startswith("ok\nerror[timeout]") and raised.value.code == "c\x1b[2J"


def test_ctrl_c_interrupts_a_long_execution_and_cancels_it(tmp_path):
    import signal
    import threading
    import time

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted()

    host = morph.Morph()
    policy = morph.HostPolicy.allow_requested(ceilings=morph.ResourceLimits(max_execution_ms=10_000))
    kitchen = host.load(fixture_as("kitchen", "wasm", tmp_path), policy)
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            kitchen.execute("loop")
        waited = time.monotonic() - started
    finally:
        signal.signal(signal.SIGINT, previous)
    # Well before the 10 s limit; and the extension is usable again.
    assert waited < 5.0, f"the interrupt waited {waited:.1f} s"
    assert kitchen.execute("echo", {"text": "again"})["params"] == {"text": "again"}


def test_an_inline_host_refuses_threads_with_a_small_stack(tmp_path):
    import threading

    inline = morph.Morph(executor="inline")
    kitchen = inline.load(fixture_as("kitchen", "wasm", tmp_path), morph.HostPolicy.allow_requested())
    outcome = []

    def run():
        try:
            kitchen.execute("recurse")
        except morph.MorphError as error:
            outcome.append(error.kind)

    threading.stack_size(256 << 10)
    try:
        small = threading.Thread(target=run)
        small.start()
        small.join()
    finally:
        threading.stack_size(0)
    assert outcome == ["unsupported"]
    with pytest.raises(morph.StackOverflow):
        kitchen.execute("recurse")


def test_limits_are_positive_integers():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_execution_ms"):
            morph.ResourceLimits(max_execution_ms=bad)
    with pytest.raises(ValueError, match="http"):
        morph.Morph(data_dir="/tmp/x", http=False)


@pytest.mark.parametrize("kind", ALL)
def test_an_extension_held_in_memory_loads_like_a_directory(host, kind):
    directory = EXAMPLES / KINDS[kind][0]
    manifest = (directory / "manifest.yaml").read_text()
    entry = (directory / KINDS[kind][1]).read_bytes()
    hello = host.load_artifact(manifest, entry, morph.HostPolicy())
    assert hello.extension_id == f"example.{KINDS[kind][0]}"
    assert hello.execute("hello") == {"message": "Hello from a Morph extension"}
    with pytest.raises(morph.InvalidManifest, match="in memory"):
        host.load_artifact("extension_id: [", entry, morph.HostPolicy())
    with pytest.raises(morph.InvalidModule, match="more than"):
        host.load_artifact(manifest, b" " * ((64 << 20) + 1), morph.HostPolicy())
    with pytest.raises(TypeError):
        host.load_artifact(manifest, "not bytes", morph.HostPolicy())
