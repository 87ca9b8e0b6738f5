// An issue-tracker integration for Morph, in JavaScript (docs/scripts.md).
//
// The same extension as ../issue-tracker (Rust with morph-sdk, built to
// wasm) and ../issue-tracker-py: the same host calls in the same order, the
// same results and the same error codes and messages, so `morph run` prints
// the same bytes for all three. The Rust original reads the tracker's answer
// with serde_json; the second half of this file reads it the same way (the
// same values, the same error messages, the same text for an id in a key or
// URL).

function describe() {
  return {
    name: "Issue tracker",
    version: "1.0.0",
    actions: [
      {
        name: "create_issue",
        description: "Creates an issue; the API base URL comes from config.api_url.",
        parameters: [
          { name: "title", type: "string", required: true },
          { name: "body", type: "string", required: false },
        ],
      },
      { name: "list_issues", description: "The ids of the issues created so far.", parameters: [] },
    ],
    events: ["issue_created"],
    config_schema: { type: "object", properties: { api_url: { type: "string" } } },
  };
}

function execute(action, params, context) {
  switch (action) {
    case "create_issue":
      return createIssue(params, context);
    case "list_issues":
      return morph.data.list("issue/");
    default:
      throw new morph.ExtensionError("unknown_action", "no action " + action);
  }
}

function createIssue(params, context) {
  const apiUrl = field(field(context, "config"), "api_url");
  if (typeof apiUrl !== "string") {
    throw new morph.ExtensionError("no_api_url", "config.api_url is not set");
  }
  // A failed host call is not caught: it ends the execution with the host's
  // code and the message "<op>: <message>", as in the Rust version.
  const token = morph.vault.getSecret("token");
  if (typeof token !== "string") {
    throw new morph.ExtensionError("no_token", "the vault has no secret `token`");
  }
  const issue = { title: field(params, "title"), body: field(params, "body") };
  const api = apiUrl.replace(/\/+$/, "");
  const response = morph.http.fetch(api + "/issues", {
    method: "POST",
    headers: [["authorization", "Bearer " + token], ["content-type", "application/json"]],
    body: plainText(issue),
  });
  let status = field(response, "status");
  if (!(Number.isInteger(status) && status >= 0)) status = 0;
  if (status !== 200 && status !== 201) {
    throw new morph.ExtensionError("tracker_error", "the tracker answered " + status);
  }
  const body = field(response, "body");
  let created;
  try {
    created = readJson(typeof body === "string" ? body : "{}");
  } catch (e) {
    if (!(e instanceof JsonError)) throw e;
    throw new morph.ExtensionError("tracker_error", "unreadable answer: " + e.message);
  }
  // The id as a value (for the result and the event) and as serde_json's
  // text of it (for the data key and the URL).
  const id = (created.members && created.members.get("id")) || { value: null, text: "null" };
  morph.data.set("issue/" + id.text, issue);
  morph.events.emit("issue_created", { id: id.value, title: field(params, "title") });
  return { id: id.value, url: api + "/issues/" + id.text };
}

// value[key] the way serde_json indexes a Value: null when value is not an
// object or has no such key.
function field(value, key) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  return Object.prototype.hasOwnProperty.call(value, key) ? value[key] : null;
}

// --- JSON as serde_json reads and writes it ---------------------------------

// Compact JSON as serde_json writes a Value (keys sorted), for plain values.
function plainText(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    return Number.isSafeInteger(value) ? String(value) : floatText(value);
  }
  if (typeof value === "string") return quote(value);
  if (Array.isArray(value)) return "[" + value.map(plainText).join(",") + "]";
  const keys = Object.keys(value).sort(byCodePoint);
  return "{" + keys.map((k) => quote(k) + ":" + plainText(value[k])).join(",") + "}";
}

const ESCAPES = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\" };

// A string as serde_json escapes it.
function quote(s) {
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (ESCAPES[c]) out += ESCAPES[c];
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += s[k];
  }
  return out + '"';
}

// Keys in UTF-8 byte order (code point order), as serde_json's map keeps them.
function byCodePoint(a, b) {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a.codePointAt(k);
    const y = b.codePointAt(k);
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

// A finite float as serde_json prints it: the shortest digits, fixed
// notation for decimal exponents -5..=15 (with ".0" when integral),
// otherwise d.ddde+N / d.ddde-N.
function floatText(f) {
  const sign = f < 0 || Object.is(f, -0) ? "-" : "";
  if (f === 0) return sign + "0.0";
  const { digits, exp } = shortestDigits(Math.abs(f));
  if (exp >= -5 && exp <= 15) {
    if (digits.length - 1 <= exp) return sign + digits + "0".repeat(exp + 1 - digits.length) + ".0";
    if (exp >= 0) return sign + digits.slice(0, exp + 1) + "." + digits.slice(exp + 1);
    return sign + "0." + "0".repeat(-exp - 1) + digits;
  }
  const mantissa = digits[0] + (digits.length > 1 ? "." + digits.slice(1) : "");
  return sign + mantissa + "e" + (exp < 0 ? "-" : "+") + Math.abs(exp);
}

// The shortest digits that read back as x > 0 (Number.prototype.toString
// gives them), without leading or trailing zeros, and the decimal exponent
// of the first one.
function shortestDigits(x) {
  const text = String(x);
  const at = text.indexOf("e");
  const mantissa = at < 0 ? text : text.slice(0, at);
  const dot = mantissa.indexOf(".");
  const integerDigits = dot < 0 ? mantissa.length : dot;
  const all = mantissa.replace(".", "");
  const stripped = all.replace(/^0+/, "");
  const exponent = at < 0 ? 0 : Number(text.slice(at + 1));
  const leadingZeros = all.length - stripped.length;
  return { digits: stripped.replace(/0+$/, ""), exp: exponent + integerDigits - 1 - leadingZeros };
}

class JsonError extends Error {}

const EOF_LIST = "EOF while parsing a list";
const EOF_OBJECT = "EOF while parsing an object";
const EOF_STRING = "EOF while parsing a string";
const EOF_VALUE = "EOF while parsing a value";
const U64_MAX = 18446744073709551615n;
const I64_MIN_MAGNITUDE = 9223372036854775808n;
const I32_MAX = 2147483647;
// \" \\ \/ \b \f \n \r \t, by byte.
const SIMPLE_ESCAPES = {
  0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9,
};

// serde_json::from_str::<Value>(text), as { value, text, members? }: the
// value, serde_json's compact text of it (integers and floats kept apart, as
// serde_json keeps them), and for an object a Map of its members. Numbers
// are computed as serde_json computes them (without its float_roundtrip
// feature). Throws JsonError with serde_json's message.
function readJson(text) {
  const data = utf8(text);
  let i = 0;
  let depth = 128;

  // Positions: serde_json counts lines from 1 and columns in bytes.
  function fail(message, index = i) {
    let start = index;
    while (start > 0 && data[start - 1] !== 0x0a) start--;
    let line = 1;
    for (let k = 0; k < start; k++) if (data[k] === 0x0a) line++;
    throw new JsonError(message + " at line " + line + " column " + (index - start));
  }
  const peekFail = (message) => fail(message, Math.min(data.length, i + 1));
  const peek = () => (i < data.length ? data[i] : -1);
  const digit = () => (i < data.length && data[i] >= 0x30 && data[i] <= 0x39 ? data[i] - 0x30 : -1);
  const isExponent = (c) => c === 0x65 || c === 0x45;
  // A number's value is its serde_json text as raw JSON where the engine
  // has JSON.rawJSON (Boa does), so the host reads 42.0 as 42.0 and
  // 12345678901234567890 exactly, as from the Rust version; elsewhere it is
  // the nearest double.
  const rawJson = typeof JSON.rawJSON === "function" ? JSON.rawJSON : null;
  const numeric = (f, text) => ({ value: rawJson ? rawJson(text) : f, text });
  const float = (f) => numeric(f, floatText(f));

  function whitespace() {
    const space = (c) => c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
    while (i < data.length && space(data[i])) i++;
    return peek();
  }

  function value() {
    const c = whitespace();
    if (c === -1) peekFail(EOF_VALUE);
    if (c === 0x6e || c === 0x74 || c === 0x66) {
      const word = c === 0x6e ? "null" : c === 0x74 ? "true" : "false";
      i++;
      for (let k = 1; k < word.length; k++) {
        if (i === data.length) fail(EOF_VALUE);
        i++;
        if (data[i - 1] !== word.charCodeAt(k)) fail("expected ident");
      }
      return { value: c === 0x6e ? null : c === 0x74, text: word };
    }
    if (c === 0x2d) {
      i++;
      return number(false);
    }
    if (c >= 0x30 && c <= 0x39) return number(true);
    if (c === 0x22) {
      i++;
      const s = string();
      return { value: s, text: quote(s) };
    }
    if (c === 0x5b || c === 0x7b) {
      depth--;
      if (depth === 0) peekFail("recursion limit exceeded");
      i++;
      const node = c === 0x5b ? array() : object();
      depth++;
      i++; // the closing bracket
      return node;
    }
    peekFail("expected value");
  }

  function array() {
    const items = [];
    for (let first = true; ; first = false) {
      let c = whitespace();
      if (c === -1) peekFail(EOF_LIST);
      if (c === 0x5d) {
        const text = "[" + items.map((n) => n.text).join(",") + "]";
        return { value: items.map((n) => n.value), text };
      }
      if (!first) {
        if (c !== 0x2c) peekFail("expected `,` or `]`");
        i++;
        c = whitespace();
        if (c === 0x5d) peekFail("trailing comma");
        if (c === -1) peekFail(EOF_VALUE);
      }
      items.push(value());
    }
  }

  function object() {
    const members = new Map();
    for (let first = true; ; first = false) {
      let c = whitespace();
      if (c === -1) peekFail(EOF_OBJECT);
      if (c === 0x7d) {
        const obj = {};
        const keys = [...members.keys()].sort(byCodePoint);
        for (const k of keys) {
          const value = members.get(k).value;
          const property = { value, enumerable: true, writable: true, configurable: true };
          Object.defineProperty(obj, k, property);
        }
        const text = "{" + keys.map((k) => quote(k) + ":" + members.get(k).text).join(",") + "}";
        return { value: obj, text, members };
      }
      if (!first) {
        if (c !== 0x2c) peekFail("expected `,` or `}`");
        i++;
        c = whitespace();
        if (c === 0x7d) peekFail("trailing comma");
        if (c === -1) peekFail(EOF_VALUE);
      }
      if (c !== 0x22) peekFail("key must be a string");
      i++;
      const key = string();
      c = whitespace();
      if (c !== 0x3a) peekFail(c === -1 ? EOF_OBJECT : "expected `:`");
      i++;
      members.set(key, value());
    }
  }

  // After the opening quote: the string's text.
  function string() {
    const out = [];
    for (;;) {
      if (i === data.length) fail(EOF_STRING);
      let c = data[i++];
      if (c === 0x22) return fromUtf8(out);
      if (c < 0x20) fail("control character (\\u0000-\\u001F) found while parsing a string");
      if (c !== 0x5c) {
        out.push(c);
        continue;
      }
      if (i === data.length) fail(EOF_STRING);
      c = data[i++];
      if (c in SIMPLE_ESCAPES) out.push(SIMPLE_ESCAPES[c]);
      else if (c === 0x75) out.push(...utf8(String.fromCodePoint(unicodeEscape())));
      else fail("invalid escape");
    }
  }

  function unicodeEscape() {
    const n = hex4();
    if (n >= 0xdc00 && n <= 0xdfff) fail("lone leading surrogate in hex escape");
    if (n < 0xd800 || n > 0xdbff) return n;
    for (const expected of [0x5c, 0x75]) {
      if (i === data.length) fail(EOF_STRING);
      i++;
      if (data[i - 1] !== expected) fail("unexpected end of hex escape");
    }
    const low = hex4();
    if (low < 0xdc00 || low > 0xdfff) fail("lone leading surrogate in hex escape");
    return 0x10000 + ((n - 0xd800) << 10) + (low - 0xdc00);
  }

  function hex4() {
    if (data.length - i < 4) {
      i = data.length;
      fail(EOF_STRING);
    }
    const digits = String.fromCharCode(...data.slice(i, i + 4));
    i += 4;
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) fail("invalid escape");
    return parseInt(digits, 16);
  }

  // After the sign: an integer (u64 or i64 range) or a float.
  function number(positive) {
    if (i === data.length) fail(EOF_VALUE);
    const c = data[i++];
    let significand;
    if (c === 0x30) {
      if (digit() >= 0) peekFail("invalid number");
      significand = 0n;
    } else if (c >= 0x31 && c <= 0x39) {
      significand = BigInt(c - 0x30);
      for (let d; (d = digit()) >= 0; ) {
        const next = significand * 10n + BigInt(d);
        if (next > U64_MAX) return float(longInteger(positive, significand));
        i++;
        significand = next;
      }
    } else {
      fail("invalid number");
    }
    if (peek() === 0x2e) return float(decimal(positive, significand, 0));
    if (isExponent(peek())) return float(exponent(positive, significand, 0));
    if (positive) return numeric(Number(significand), String(significand));
    if (significand === 0n || significand > I64_MIN_MAGNITUDE) return float(-Number(significand));
    return numeric(-Number(significand), "-" + significand);
  }

  function longInteger(positive, significand) {
    for (let exp = 0; ; ) {
      const c = peek();
      if (c >= 0x30 && c <= 0x39) {
        i++;
        exp++;
      } else if (c === 0x2e) {
        return decimal(positive, significand, exp);
      } else if (isExponent(c)) {
        return exponent(positive, significand, exp);
      } else {
        return fromParts(positive, significand, exp);
      }
    }
  }

  function decimal(positive, significand, exponentBefore) {
    i++; // "."
    let after = 0;
    for (let d; (d = digit()) >= 0; ) {
      const next = significand * 10n + BigInt(d);
      if (next > U64_MAX) {
        // Further digits are ignored.
        while (digit() >= 0) i++;
        if (isExponent(peek())) return exponent(positive, significand, exponentBefore + after);
        return fromParts(positive, significand, exponentBefore + after);
      }
      i++;
      significand = next;
      after--;
    }
    if (after === 0) peekFail(i < data.length ? "invalid number" : EOF_VALUE);
    if (isExponent(peek())) return exponent(positive, significand, exponentBefore + after);
    return fromParts(positive, significand, exponentBefore + after);
  }

  function exponent(positive, significand, starting) {
    i++; // "e"
    let positiveExp = true;
    if (peek() === 0x2b) {
      i++;
    } else if (peek() === 0x2d) {
      i++;
      positiveExp = false;
    }
    if (i === data.length) fail(EOF_VALUE);
    const c = data[i++];
    if (c < 0x30 || c > 0x39) fail("invalid number");
    let exp = c - 0x30;
    for (let d; (d = digit()) >= 0; ) {
      i++;
      if (exp * 10 + d > I32_MAX) {
        if (significand !== 0n && positiveExp) fail("number out of range");
        while (digit() >= 0) i++;
        return positive ? 0 : -0;
      }
      exp = exp * 10 + d;
    }
    const total = positiveExp ? starting + exp : starting - exp;
    return fromParts(positive, significand, Math.max(-I32_MAX - 1, Math.min(I32_MAX, total)));
  }

  // serde_json's f64_from_parts: significand * 10^exponent, in steps of the
  // f64 powers of ten.
  function fromParts(positive, significand, exp) {
    let f = Number(significand);
    for (;;) {
      if (Math.abs(exp) <= 308) {
        if (exp >= 0) {
          f *= Number("1e" + exp);
          if (f === Infinity) fail("number out of range");
        } else {
          f /= Number("1e" + -exp);
        }
        break;
      }
      if (f === 0) break;
      if (exp >= 0) fail("number out of range");
      f /= 1e308;
      exp += 308;
    }
    return positive ? f : -f;
  }

  const node = value();
  if (whitespace() !== -1) peekFail("trailing characters");
  return node;
}

function utf8(text) {
  const bytes = [];
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (c < 0x80) {
      bytes.push(c);
      continue;
    }
    const n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    bytes.push(((0xf00 >> n) & 0xff) | (c >> (6 * (n - 1))));
    for (let k = n - 2; k >= 0; k--) bytes.push(0x80 | ((c >> (6 * k)) & 63));
  }
  return bytes;
}

function fromUtf8(bytes) {
  let s = "";
  for (let k = 0; k < bytes.length; ) {
    const b = bytes[k];
    const n = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    let c = n === 1 ? b : b & (0xff >> (n + 1));
    for (let j = 1; j < n; j++) c = (c << 6) | (bytes[k + j] & 63);
    s += String.fromCodePoint(c);
    k += n;
  }
  return s;
}
