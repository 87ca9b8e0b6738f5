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
    assert failed["err"]["code"] == "host_error" and "secret store" not in failed["err"]["message"]
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


def test_the_vaults_error_text_goes_to_the_log_not_to_the_extension(tmp_path, caplog):
    class Leaky:
        def get_secret(self, extension_id, key):
            raise ConnectionError("postgres://admin:hunter2@10.0.0.5/secrets")

    host = morph.Morph(vault=Leaky())
    kitchen = host.load(fixture_as("kitchen", "python", tmp_path), morph.HostPolicy.allow_requested())
    with caplog.at_level("ERROR", logger="morph_runtime"):
        failed = call(kitchen, "vault.get_secret", {"key": "token"})
    assert failed["err"]["code"] == "host_error"
    assert "hunter2" not in str(failed) and "vault.get_secret" in failed["err"]["message"]
    assert "hunter2" in caplog.text


def test_a_failing_event_sink_is_logged(tmp_path, caplog):
    def sink(event):
        raise RuntimeError("bus down")

    host = morph.Morph(on_event=sink)
    kitchen = host.load(fixture_as("kitchen", "wasm", tmp_path), morph.HostPolicy.allow_requested())
    with caplog.at_level("ERROR", logger="morph_runtime"):
        assert call(kitchen, "events.emit", {"name": "done", "payload": {}}) == {"ok": None}
    assert "bus down" in caplog.text


def test_providers_cannot_execute_extensions(tmp_path):
    kitchen = {}

    class Reentrant:
        def get_secret(self, extension_id, key):
            kitchen["it"].execute("echo", {"text": "inside"})

    host = morph.Morph(vault=Reentrant())
    kitchen["it"] = host.load(fixture_as("kitchen", "wasm", tmp_path), morph.HostPolicy.allow_requested())
    # Refused at once (it would wait for the execution thread it holds).
    assert call(kitchen["it"], "vault.get_secret", {"key": "k"})["err"]["code"] == "host_error"


def test_a_host_held_by_its_own_provider_is_collected():
    import gc

    from test_workers import workers

    from morph_fixtures import EXAMPLES

    class App:
        def __init__(self):
            self.events = []
            self.morph = morph.Morph(on_event=self.handle)
            self.hello = self.morph.load(EXAMPLES / "hello-js", morph.HostPolicy())

        def handle(self, event):
            self.events.append(event)

    others = workers()
    app = App()
    assert app.hello.execute("hello")["message"]
    assert workers() - others, "the app's extension has a worker"
    del app
    gc.collect()
    assert not workers() - others, "the collected app's worker is gone"
