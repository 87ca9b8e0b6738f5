// Hello: the demo extension of the README, in JavaScript (runs on Boa).
// It shows the three things every extension does: describe itself,
// execute actions, and reach the outside only through host calls.
// The guest API is in docs/scripts.md.

function describe() {
  return {
    name: "Hello",
    version: "1.0.0",
    actions: [
      { name: "hello", description: "Greets, and logs that it did.", parameters: [] },
      { name: "whoami", description: "Returns the execution context the host passed in.", parameters: [] },
      {
        name: "secret",
        description:
          "Reads the secret `greeting` from the vault through a host call and returns the host's response envelope.",
        parameters: [],
      },
    ],
    events: [],
    config_schema: {},
  };
}

function execute(action, params, context) {
  switch (action) {
    case "hello":
      morph.log("hello action ran");
      return { message: "Hello from a Morph extension" };
    case "whoami":
      return context;
    case "secret":
      // The raw envelope, as the WebAssembly version returns it.
      return morph.callEnvelope("vault.get_secret", { key: "greeting" });
    default:
      throw new morph.ExtensionError("unknown", "no such action");
  }
}
