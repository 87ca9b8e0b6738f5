"""Providers the application writes in Python: its own vault and a sink for
the events extensions emit, on every kind; what they raise stays a host
call's error."""

from __future__ import annotations

import threading

import pytest

import morph_runtime as morph
from morph_fixtures import KINDS, fixture_as

ALL = list(KINDS)


class Vault:
    """A dict-backed vault that records who asked for what."""

    def __init__(self, secrets):
        self.secrets = dict(secrets)
        self.asked = []
        self.lock = threading.Lock()

    def get_secret(self, extension_id, key):
        with self.lock:
            self.asked.append((extension_id, key))
        return self.secrets.get((extension_id, key))

    def set_secret(self, extension_id, key, value):
        with self.lock:
            self.secrets[(extension_id, key)] = value


def call(extension, op, args):
    return extension.execute("call", {"op": op, "args": args})


@pytest.mark.parametrize("kind", ALL)
def test_the_applications_vault_serves_each_extension_its_own_secrets(tmp_path, kind):
    vault = Vault({("conformance.kitchen", "token"): "s3cret", ("other.ext", "token"): "not yours"})
    host = morph.Morph(vault=vault)
    kitchen = host.load(fixture_as("kitchen", kind, tmp_path), morph.HostPolicy.allow_requested())
    assert call(kitchen, "vault.get_secret", {"key": "token"}) == {"ok": "s3cret"}
    assert call(kitchen, "vault.get_secret", {"key": "missing"}) == {"ok": None}
    assert call(kitchen, "vault.set_secret", {"key": "new", "value": "v"}) == {"ok": None}
    assert vault.secrets[("conformance.kitchen", "new")] == "v"
    assert {ext for ext, _ in vault.asked} == {"conformance.kitchen"}


@pytest.mark.parametrize("kind", ALL)
def test_a_failing_or_read_only_vault_is_an_error_of_the_call_only(tmp_path, kind):
    class Broken:
        def get_secret(self, extension_id, key):
            raise RuntimeError("the secret store is down")

    host = morph.Morph(vault=Broken())
    kitchen = host.load(fixture_as("kitchen", kind, tmp_path), morph.HostPolicy.allow_requested())
    failed = call(kitchen, "vault.get_secret", {"key": "token"})
    assert failed["err"]["code"] == "host_error" and "the secret store is down" in failed["err"]["message"]
    read_only = call(kitchen, "vault.set_secret", {"key": "k", "value": "v"})
    assert read_only["err"]["code"] == "unsupported"
    assert kitchen.execute("echo", {"text": "still here"})["params"] == {"text": "still here"}


def test_a_vault_must_answer_text():
    class Numbers:
        def get_secret(self, extension_id, key):
            return 42

    host = morph.Morph(vault=Numbers())
    from morph_fixtures import EXAMPLES

    hello = host.load(EXAMPLES / "hello", morph.HostPolicy.allow_requested())
    assert hello.execute("secret")["err"]["code"] == "host_error"
    with pytest.raises(TypeError):
        morph.Morph(vault=object())
    with pytest.raises(ValueError, match="not both"):
        morph.Morph(vault=Numbers(), secrets={})


@pytest.mark.parametrize("kind", ALL)
def test_emitted_events_reach_the_application_after_a_successful_execution(tmp_path, kind):
    events = []
    host = morph.Morph(on_event=events.append)
    kitchen = host.load(fixture_as("kitchen", kind, tmp_path), morph.HostPolicy.allow_requested())
    answer = kitchen.execute(
        "call", {"op": "events.emit", "args": {"name": "done", "payload": {"n": 1}}}, {"request_id": "r-1"}
    )
    assert answer == {"ok": None}
    assert [(e["source"], e["name"], e["payload"], e["request_id"]) for e in events] == [
        ("conformance.kitchen", "conformance.kitchen/done", {"n": 1}, "r-1")
    ]


def test_a_failing_event_sink_does_not_fail_the_execution(tmp_path):
    def sink(event):
        raise RuntimeError("bus down")

    host = morph.Morph(on_event=sink)
    kitchen = host.load(fixture_as("kitchen", "wasm", tmp_path), morph.HostPolicy.allow_requested())
    assert call(kitchen, "events.emit", {"name": "done", "payload": {}}) == {"ok": None}
