// Morph's host API for JavaScript extensions (docs/scripts.md), evaluated
// in every fresh realm before the extension's script.
//
// The Rust glue installs two native functions, taken here and removed from
// the global object: __morph_host(requestJson) -> envelopeJson and
// __morph_log(level, text). It calls back through three global functions
// the extension cannot replace (non-writable, non-configurable):
// __morph_describe, __morph_run and __morph_error_text. Glue errors come
// back as "!<kind> <message>"; everything else is JSON text.
(function (global) {
  "use strict";

  const host = global.__morph_host;
  const hostLog = global.__morph_log;
  delete global.__morph_host;
  delete global.__morph_log;

  // Captured before any extension code runs, so replacing JSON, Object,
  // String or Map later cannot break the envelopes.
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const freeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const hasOwn = Object.hasOwn;
  const getPrototypeOf = Object.getPrototypeOf;
  const ObjectPrototype = Object.prototype;
  const ArrayPrototype = Array.prototype;
  const entries = Object.entries;
  const isArray = Array.isArray;
  const toText = String;
  const NativeMap = Map;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const apply = Reflect.apply;
  const NativeError = Error;
  const NativeTypeError = TypeError;
  const NativePromise = Promise;

  // Deeper values are refused before JSON.stringify recurses on the
  // native stack (the host's JSON parser stops at 128 levels anyway).
  const MAX_DEPTH = 256;

  const LEVELS = freeze({
    __proto__: null,
    trace: 0,
    debug: 1,
    info: 2,
    warn: 3,
    warning: 3,
    error: 4,
  });

  // A value that is not JSON data; never visible to extensions.
  class NotJson {
    constructor(message) {
      this.message = message;
    }
  }

  function describeType(value) {
    if (value === null) return "null";
    if (isArray(value)) return "an array";
    const type = typeof value;
    if (type === "object") return "an object";
    if (type === "bigint") return "a BigInt";
    if (type === "symbol") return "a symbol";
    if (type === "function") return "a function";
    return "a " + type;
  }

  // The object on `value`'s prototype chain that holds the toJSON
  // JSON.stringify would call, or null.
  function toJsonOwner(value) {
    let o = value;
    for (let i = 0; o !== null && i < 64; i++) {
      if (hasOwn(o, "toJSON")) return o;
      o = getPrototypeOf(o);
    }
    return null;
  }

  // JSON text of `value` (undefined for undefined), or throws NotJson for
  // functions, symbols, BigInts, cycles and nesting beyond MAX_DEPTH. A
  // toJSON planted on Object.prototype or Array.prototype is ignored: it
  // would turn every object of the envelope into something else.
  function toJson(value) {
    const depths = new NativeMap();
    const tampered = hasOwn(ObjectPrototype, "toJSON") || hasOwn(ArrayPrototype, "toJSON");
    function check(key, v) {
      if (tampered) {
        const original = this[key];
        if (original !== null && typeof original === "object") {
          const owner = toJsonOwner(original);
          if (owner === ObjectPrototype || owner === ArrayPrototype) v = original;
        }
      }
      const type = typeof v;
      if (type === "function" || type === "symbol" || type === "bigint") {
        throw new NotJson(describeType(v) + (key === "" ? "" : " at key `" + key + "`"));
      }
      if (v !== null && type === "object") {
        const depth = (apply(mapGet, depths, [this]) || 0) + 1;
        if (depth > MAX_DEPTH) {
          throw new NotJson("nested deeper than " + MAX_DEPTH + " levels");
        }
        apply(mapSet, depths, [v, depth]);
      }
      return v;
    }
    try {
      return stringify(value, check);
    } catch (e) {
      if (e instanceof NotJson) throw e;
      // A cycle (TypeError), or a toJSON that threw.
      throw new NotJson(errorText(e));
    }
  }

  // "<Name>: <message>" of anything thrown.
  function errorText(e) {
    try {
      if (e !== null && (typeof e === "object" || typeof e === "function")) {
        // The class name, unless the object or its class sets `name`.
        let name = e.name;
        const ctor = e.constructor;
        const ctorName = typeof ctor === "function" && typeof ctor.name === "string" ? ctor.name : "";
        if (typeof name !== "string" || name === "") {
          name = ctorName === "" ? "Object" : ctorName;
        } else if (ctorName !== "" && !hasOwn(e, "name")) {
          const proto = ctor.prototype;
          if (proto !== null && typeof proto === "object" && !hasOwn(proto, "name")) name = ctorName;
        }
        const message = e.message;
        return message === undefined ? name + ": " + toText(e) : name + ": " + toText(message);
      }
      const type = typeof e;
      return (type === "string" ? "String" : type === "number" ? "Number" : type) + ": " + toText(e);
    } catch (_) {
      return "an exception that cannot be described";
    }
  }

  class ExtensionError extends NativeError {
    constructor(code, message) {
      super(message === undefined ? "" : toText(message));
      this.code = toText(code);
    }
  }
  defineProperty(ExtensionError.prototype, "name", {
    value: "ExtensionError",
    writable: true,
    configurable: true,
  });

  class HostError extends NativeError {
    constructor(op, code, message) {
      super(toText(message));
      this.op = toText(op);
      this.code = toText(code);
    }
  }
  defineProperty(HostError.prototype, "name", {
    value: "HostError",
    writable: true,
    configurable: true,
  });

  function callEnvelope(op, args) {
    let request;
    try {
      request = toJson({ op: toText(op), args: args === undefined ? {} : args });
    } catch (e) {
      if (e instanceof NotJson) {
        throw new NativeTypeError("morph.call(" + toText(op) + "): args are not JSON: " + e.message);
      }
      throw e;
    }
    return parse(host(request));
  }

  function call(op, args) {
    const envelope = callEnvelope(op, args);
    if (envelope !== null && typeof envelope === "object" && hasOwn(envelope, "err")) {
      const err = envelope.err || {};
      throw new HostError(op, err.code === undefined ? "host_error" : err.code, err.message === undefined ? "" : err.message);
    }
    return envelope.ok;
  }

  // What the host takes for a level that is no name (morph-core's
  // UNNAMED_LOG_LEVEL, i32::MIN): like a number outside 0..4, it ends the
  // execution with abi_violation on every backend.
  const UNNAMED_LEVEL = -2147483648;

  // The level number of a name (any case) or of an integer 0..4; anything
  // else becomes a level the host refuses.
  function levelNumber(level) {
    if (level === undefined) return 2;
    if (typeof level === "number") {
      return level === (level | 0) ? level : UNNAMED_LEVEL;
    }
    const n = LEVELS[toText(level).toLowerCase()];
    return n === undefined ? UNNAMED_LEVEL : n;
  }

  function log(message, level) {
    hostLog(levelNumber(level), toText(message));
  }

  function headerPairs(headers) {
    if (headers === undefined || headers === null) return [];
    if (isArray(headers)) return headers;
    return entries(headers);
  }

  const morph = freeze({
    call,
    callEnvelope,
    log,
    ExtensionError: freeze(ExtensionError),
    HostError: freeze(HostError),
    http: freeze({
      fetch(url, options) {
        const o = options === undefined || options === null ? {} : options;
        return call("http.fetch", {
          method: o.method === undefined ? "GET" : o.method,
          url,
          headers: headerPairs(o.headers),
          body: o.body === undefined ? null : o.body,
        });
      },
    }),
    vault: freeze({
      getSecret: (key) => call("vault.get_secret", { key }),
      setSecret: (key, value) => call("vault.set_secret", { key, value }),
    }),
    events: freeze({
      emit: (name, payload) => call("events.emit", { name, payload: payload === undefined ? null : payload }),
    }),
    data: freeze({
      get: (key) => call("data.get", { key }),
      set: (key, value) => call("data.set", { key, value }),
      delete: (key) => call("data.delete", { key }),
      list: (prefix) => call("data.list", { prefix: prefix === undefined ? "" : prefix }),
    }),
    fs: freeze({
      read: (path) => call("fs.read", { path }),
      write: (path, data) => call("fs.write", { path, data }),
      list: (path) => call("fs.list", { path: path === undefined ? "." : path }),
      delete: (path) => call("fs.delete", { path }),
    }),
  });

  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof NativeError) return errorText(value);
    try {
      const text = toJson(value);
      if (text !== undefined) return text;
    } catch (_) {
      // Not JSON: fall back to String().
    }
    try {
      return toText(value);
    } catch (_) {
      return "[" + describeType(value) + "]";
    }
  }

  function consoleMethod(level) {
    return function (...args) {
      let line = "";
      for (let i = 0; i < args.length; i++) {
        line += (i === 0 ? "" : " ") + show(args[i]);
      }
      hostLog(level, line);
    };
  }

  const console = {
    trace: consoleMethod(0),
    debug: consoleMethod(1),
    log: consoleMethod(2),
    info: consoleMethod(2),
    warn: consoleMethod(3),
    error: consoleMethod(4),
  };

  function glueError(kind, message) {
    return "!" + kind + " " + message;
  }

  function isPromise(value) {
    return value instanceof NativePromise;
  }

  // describe() as JSON text; anything wrong is the loader's problem.
  function runDescribe(describe, execute) {
    if (typeof describe !== "function") {
      return glueError("invalid_module", "the script defines no global describe() function");
    }
    if (typeof execute !== "function") {
      return glueError("invalid_module", "the script defines no global execute() function");
    }
    let doc;
    try {
      doc = describe();
    } catch (e) {
      return glueError("invalid_module", "describe() failed: " + errorText(e));
    }
    if (doc === null || typeof doc !== "object" || isArray(doc) || isPromise(doc)) {
      return glueError("invalid_module", "describe() returned " + describeType(doc) + ", not the Describe object");
    }
    try {
      return toJson(doc);
    } catch (e) {
      if (e instanceof NotJson) {
        return glueError("abi_violation", "returned a value that is not JSON: " + e.message);
      }
      throw e;
    }
  }

  // execute(action, params, context) as a result envelope (JSON text).
  function runExecute(execute, action, paramsJson, contextJson) {
    let result;
    try {
      if (typeof execute !== "function") {
        throw new NativeTypeError("the script defines no global execute() function");
      }
      result = execute(action, parse(paramsJson), parse(contextJson));
    } catch (e) {
      if (e instanceof ExtensionError) {
        return stringify({ err: { code: toText(e.code), message: toText(e.message) } });
      }
      if (e instanceof HostError) {
        return stringify({ err: { code: toText(e.code), message: toText(e.op) + ": " + toText(e.message) } });
      }
      return stringify({ err: { code: "uncaught_exception", message: errorText(e) } });
    }
    if (isPromise(result)) {
      return glueError("abi_violation", "returned a Promise: execute() must return its result, not a Promise (async execute is not supported)");
    }
    let text;
    try {
      text = toJson(result);
    } catch (e) {
      if (e instanceof NotJson) {
        return glueError("abi_violation", "returned a value that is not JSON: " + e.message);
      }
      throw e;
    }
    return '{"ok":' + (text === undefined ? "null" : text) + "}";
  }

  const fixed = { writable: false, enumerable: false, configurable: false };
  defineProperty(global, "morph", { value: morph, ...fixed });
  defineProperty(global, "console", { value: console, writable: true, enumerable: false, configurable: true });
  defineProperty(global, "__morph_describe", { value: runDescribe, ...fixed });
  defineProperty(global, "__morph_run", { value: runExecute, ...fixed });
  defineProperty(global, "__morph_error_text", { value: errorText, ...fixed });
})(globalThis);
