"""A Python host application that holds Morph extensions next to its own
built-in integrations, the way the seed's InterfaceManager does: every
integration lists its actions (get_actions) and runs them (execute), and the
manager cannot tell a WebAssembly, JavaScript or Python extension from a
built-in one.

Run it from the repository root after `pip install ./bindings/python`:

    python examples/python-host/app.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from morph_runtime import Morph, escape_untrusted
from morph_runtime.integration import (
    ActionDefinition,
    ActionResult,
    ExtensionPermission,
    JsIntegration,
    PythonIntegration,
    ResourceLimits,
    WasmIntegration,
)

EXAMPLES = Path(__file__).resolve().parent.parent


class ClockIntegration:
    """A built-in integration, written in the application itself."""

    name = "builtin.clock"
    description = "Tells the time."

    def get_actions(self) -> list[ActionDefinition]:
        return [ActionDefinition("now", "The current time.", ai_access="allowed")]

    async def execute(self, action_name, parameters=None, context=None) -> ActionResult:
        if action_name != "now":
            return ActionResult(False, error=f"no action {action_name}", error_kind="unknown_action")
        import datetime

        return ActionResult(True, {"now": datetime.datetime.now(datetime.timezone.utc).isoformat()})


class InterfaceManager:
    """Holds integrations by name and routes calls to them."""

    def __init__(self):
        self.integrations = {}

    def register(self, key, integration):
        self.integrations[key] = integration

    def list_actions(self):
        return {key: [a.name for a in i.get_actions()] for key, i in self.integrations.items()}

    async def execute(self, key, action, parameters=None, context=None) -> ActionResult:
        return await self.integrations[key].execute(action, parameters, context)


async def main():
    morph = Morph(secrets={"example.hello": {"greeting": "hi"}})  # the wasm hello's vault
    limits = ResourceLimits(max_execution_ms=2000, max_memory_mb=64)
    manager = InterfaceManager()
    manager.register("clock", ClockIntegration())
    manager.register(
        "hello-wasm",
        WasmIntegration(EXAMPLES / "hello", [ExtensionPermission.VAULT_READ], resource_limits=limits, morph=morph),
    )
    manager.register("hello-js", JsIntegration(EXAMPLES / "hello-js", resource_limits=limits, morph=morph))
    manager.register("hello-py", PythonIntegration(EXAMPLES / "hello-py", resource_limits=limits, morph=morph))

    for key, actions in manager.list_actions().items():
        print(f"{key}: {', '.join(actions)}")
    results = await asyncio.gather(
        manager.execute("clock", "now"),
        manager.execute("hello-wasm", "hello"),
        manager.execute("hello-js", "hello"),
        manager.execute("hello-py", "hello"),
        manager.execute("hello-wasm", "secret"),
        manager.execute("hello-js", "secret"),  # not granted vault:read
        manager.execute("hello-py", "nope"),
    )
    for result in results:
        # An extension chose the text of its errors: escape it for the terminal.
        print(result.data if result.success else f"error[{result.error_kind}]: {escape_untrusted(result.error)}")


if __name__ == "__main__":
    asyncio.run(main())
