"""Shared fixtures: the repository's examples and conformance fixtures,
and a host per test module."""

from __future__ import annotations

import pytest

import morph_runtime as morph

from morph_fixtures import KINDS, fixture_as


@pytest.fixture(scope="module")
def host() -> morph.Morph:
    """A host with in-memory providers and the secret `greeting` of each
    hello example."""
    return morph.Morph(secrets={f"example.{name}": {"greeting": "hi"} for name, _ in KINDS.values()})


@pytest.fixture(scope="module")
def kitchens(host, tmp_path_factory):
    """The conformance suite's kitchen fixture on every kind, under a
    policy granting what it asks, execution time capped at 2 s."""
    into = tmp_path_factory.mktemp("kitchen")
    policy = morph.HostPolicy.allow_requested(ceilings=morph.ResourceLimits(max_execution_ms=2000))
    return {kind: host.load(fixture_as("kitchen", kind, into), policy) for kind in KINDS}
