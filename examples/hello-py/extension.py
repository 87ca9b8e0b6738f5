"""Hello: the demo extension of the README, in Python (embedded CPython).

It shows the three things every extension does: describe itself, execute
actions, and reach the outside only through host calls. The guest API is
in docs/scripts.md.
"""

import morph


def describe():
    return {
        "name": "Hello",
        "version": "1.0.0",
        "actions": [
            {"name": "hello", "description": "Greets, and logs that it did.", "parameters": []},
            {"name": "whoami", "description": "Returns the execution context the host passed in.", "parameters": []},
            {
                "name": "secret",
                "description": "Reads the secret `greeting` from the vault through a host call "
                "and returns the host's response envelope.",
                "parameters": [],
            },
        ],
        "events": [],
        "config_schema": {},
    }


def execute(action, params, context):
    if action == "hello":
        morph.log("hello action ran")
        return {"message": "Hello from a Morph extension"}
    if action == "whoami":
        return context
    if action == "secret":
        # The raw envelope, as the WebAssembly version returns it.
        return morph.call_envelope("vault.get_secret", {"key": "greeting"})
    raise morph.ExtensionError("unknown", "no such action")
