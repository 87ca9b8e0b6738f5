// A Markdown renderer for Morph, in JavaScript, using the marked library.
// build.sh bundles this file and marked into ../extension.js, one script
// for Boa: an IIFE with no require/import and no Node or browser APIs, so
// describe and execute are put on globalThis, where Morph looks for them.
// marked passes raw HTML in the Markdown through as it is (it does not
// sanitize): sanitize the result before showing untrusted input in a page.

import "./regexp-source-fix.js"; // first: marked builds its rules when loaded
import { Marked } from "marked";

// Synchronous rendering with GitHub-flavoured Markdown, marked's defaults
// made explicit (no promises: the result must be there when execute returns).
const marked = new Marked({ async: false, gfm: true, breaks: false });

globalThis.describe = function describe() {
  return {
    name: "Markdown",
    version: "1.0.0",
    actions: [
      {
        name: "render",
        description: "Renders Markdown to HTML with marked.",
        parameters: [{ name: "markdown", type: "string", required: true }],
      },
    ],
    events: [],
    config_schema: {},
  };
};

globalThis.execute = function execute(action, params) {
  if (action === "render") {
    return { html: marked.parse(params.markdown) };
  }
  throw new morph.ExtensionError("unknown_action", "no action " + action);
};
