// The benchmark kernels of ../kernels (Rust) in plain JavaScript, for the
// `js` backend (Boa). Same actions, parameters and results as
// ../kernels-wasm: one action per kernel ({"n": size}), `noop`, and
// `host_calls` ({"count", "bytes"}). Every result equals
// `morph_kernels::run(kernel, n)` of the Rust source; the benches check it.
//
// The work is done here, in the language: SHA-256 and the JSON parser and
// serialiser are written out below (no JSON.parse / JSON.stringify in the
// kernels). Rust's u64 arithmetic is reproduced without BigInt, on pairs of
// 32-bit halves (`hi`, `lo`, kept as int32 values; `>>> 0` reads them as
// unsigned). A u64 result leaves as JSON.rawJSON of its decimal digits, so
// values above 2^53 reach the host exactly.

const KERNELS = ["fib", "sha256", "json", "loop", "memcpy"];

function describe() {
  const n = [{ name: "n", type: "integer", required: true }];
  const actions = KERNELS.map((name) => ({
    name,
    description: "The " + name + " kernel.",
    parameters: n,
  }));
  actions.push({ name: "noop", description: "Does nothing.", parameters: [] });
  actions.push({
    name: "host_calls",
    description: "`count` data.set host calls of `bytes` bytes.",
    parameters: [
      { name: "count", type: "integer", required: true },
      { name: "bytes", type: "integer", required: true },
    ],
  });
  return { name: "Kernels", version: "1.0.0", actions, events: [], config_schema: {} };
}

function execute(action, params, context) {
  switch (action) {
    case "noop":
      return null;
    case "host_calls": {
      const count = params.count;
      const value = "x".repeat(params.bytes);
      for (let i = 0; i < count; i++) {
        morph.call("data.set", { key: "k", value });
      }
      return count;
    }
    default:
      return run(action, params.n);
  }
}

/// `morph_kernels::run`: kernel `name` with size `n`.
function run(name, n) {
  switch (name) {
    case "fib":
      return fib(n);
    case "sha256":
      return hex(sha256(bytes(n, 1)));
    case "json":
      return jsonTransform(n);
    case "loop":
      return intLoop(n);
    case "memcpy":
      return memcpy(n);
    default:
      throw new morph.ExtensionError("kernel", "no kernel `" + name + "`");
  }
}

// ---------------------------------------------------------------- u64

/// The decimal digits of the u64 `hi * 2^32 + lo` (long division of four
/// 16-bit limbs by 10^7; every intermediate stays below 2^53).
function u64String(hi, lo) {
  const limbs = [hi >>> 16, hi & 0xffff, lo >>> 16, lo & 0xffff];
  let out = "";
  for (;;) {
    let rem = 0;
    let rest = 0;
    for (let i = 0; i < 4; i++) {
      const cur = rem * 65536 + limbs[i];
      limbs[i] = Math.floor(cur / 1e7);
      rem = cur % 1e7;
      rest |= limbs[i];
    }
    if (rest === 0) return String(rem) + out;
    out = String(rem).padStart(7, "0") + out;
  }
}

/// A u64 as a JSON number, exactly (a JS number cannot hold every u64).
function u64Json(hi, lo) {
  return JSON.rawJSON(u64String(hi, lo));
}

// ---------------------------------------------------------------- fib

/// Recursive Fibonacci (exponential calls: measures call overhead).
function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

// ------------------------------------------------------------- sha256

const K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4) of a Uint8Array: eight int32 words.
function sha256(data) {
  const k = new Int32Array(K);
  const len = data.length;
  const total = Math.ceil((len + 9) / 64) * 64;
  const m = new Uint8Array(total);
  m.set(data);
  m[len] = 0x80;
  const bits = len * 8;
  const bitsHi = Math.floor(bits / 4294967296);
  const bitsLo = bits >>> 0;
  for (let i = 0; i < 4; i++) {
    m[total - 8 + i] = bitsHi >>> (24 - 8 * i);
    m[total - 4 + i] = bitsLo >>> (24 - 8 * i);
  }
  let h0 = 0x6a09e667 | 0;
  let h1 = 0xbb67ae85 | 0;
  let h2 = 0x3c6ef372 | 0;
  let h3 = 0xa54ff53a | 0;
  let h4 = 0x510e527f | 0;
  let h5 = 0x9b05688c | 0;
  let h6 = 0x1f83d9ab | 0;
  let h7 = 0x5be0cd19 | 0;
  const w = new Int32Array(64);
  for (let off = 0; off < total; off += 64) {
    for (let i = 0; i < 16; i++) {
      const j = off + 4 * i;
      w[i] = (m[j] << 24) | (m[j + 1] << 16) | (m[j + 2] << 8) | m[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15];
      const y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    let f = h5;
    let g = h6;
    let h = h7;
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + s1 + ch + k[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (s0 + maj) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  return [h0, h1, h2, h3, h4, h5, h6, h7];
}

/// Lower-case hex of int32 words, big-endian.
function hex(words) {
  let out = "";
  for (const word of words) out += (word >>> 0).toString(16).padStart(8, "0");
  return out;
}

/// `morph_kernels::bytes`: `len` pseudo-random bytes (xorshift64, 8
/// little-endian bytes a step). `seed` must be below 2^31.
function bytes(len, seed) {
  let hi = 0;
  let lo = seed | 1;
  const out = new Uint8Array(len);
  for (let pos = 0; pos < len; pos += 8) {
    // x ^= x << 13
    hi ^= (hi << 13) | (lo >>> 19);
    lo ^= lo << 13;
    // x ^= x >> 7
    lo ^= (lo >>> 7) | (hi << 25);
    hi ^= hi >>> 7;
    // x ^= x << 17
    hi ^= (hi << 17) | (lo >>> 15);
    lo ^= lo << 17;
    const end = Math.min(8, len - pos);
    for (let i = 0; i < end; i++) {
      out[pos + i] = i < 4 ? lo >>> (8 * i) : hi >>> (8 * (i - 4));
    }
  }
  return out;
}

// --------------------------------------------------------------- loop

/// `morph_kernels::int_loop`: `n` xorshift64 steps summed (wrapping).
function intLoop(n) {
  let hi = 0x9e3779b9 | 0;
  let lo = 0x7f4a7c15 | 0;
  let accHi = 0;
  let accLo = 0;
  for (let i = 0; i < n; i++) {
    hi ^= (hi << 13) | (lo >>> 19);
    lo ^= lo << 13;
    lo ^= (lo >>> 7) | (hi << 25);
    hi ^= hi >>> 7;
    hi ^= (hi << 17) | (lo >>> 15);
    lo ^= lo << 17;
    const sum = (accLo >>> 0) + (lo >>> 0);
    accLo = sum | 0;
    accHi = (accHi + hi + (sum > 0xffffffff ? 1 : 0)) | 0;
  }
  return u64Json(accHi, accLo);
}

// ------------------------------------------------------------- memcpy

/// `morph_kernels::memcpy`: a `size`-byte buffer copied back and forth 64
/// times (TypedArray.prototype.set), one byte touched between copies.
function memcpy(size) {
  const a = new Uint8Array(size).fill(0x5a);
  const b = new Uint8Array(size);
  const modulus = Math.max(size, 1);
  for (let round = 0; round < 64; round++) {
    b.set(a);
    b[round % modulus] ^= round;
    a.set(b);
  }
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < size; i += 4096) {
    // acc = acc.rotate_left(3) ^ a[i]
    const nextHi = (hi << 3) | (lo >>> 29);
    lo = ((lo << 3) | (hi >>> 29)) ^ a[i];
    hi = nextHi;
  }
  return u64Json(hi, lo);
}

// --------------------------------------------------------------- json

// A JSON value here is null, a boolean, a string, an integer (a JS
// number), a float (an F64, which serialises with a fraction or exponent
// even when it is whole, as serde_json's f64 does), an Array or a Map
// (serialised with sorted keys, as serde_json's default map).

/// A JSON float.
class F64 {
  constructor(value) {
    this.value = value;
  }
}

/// The number of a JSON integer or float.
function numberOf(v) {
  return v instanceof F64 ? v.value : typeof v === "number" ? v : 0;
}

/// Text of a finite float as serde_json (ryu) writes it: shortest digits
/// that read back the same, with `.0` on whole numbers and an exponent
/// outside [1e-5, 1e16).
function floatText(x) {
  if (!Number.isFinite(x)) return "null";
  if (Object.is(x, -0)) return "-0.0";
  const abs = Math.abs(x);
  if (abs !== 0 && (abs >= 1e16 || abs < 1e-5)) {
    return x.toExponential().replace("e+", "e");
  }
  const text = String(x);
  return text.indexOf(".") === -1 ? text + ".0" : text;
}

const HEX = "0123456789abcdef";

/// `s` as a JSON string literal (serde_json's escapes).
function quote(s) {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    start = i + 1;
    switch (c) {
      case 0x22:
        out += '\\"';
        break;
      case 0x5c:
        out += "\\\\";
        break;
      case 0x0a:
        out += "\\n";
        break;
      case 0x0d:
        out += "\\r";
        break;
      case 0x09:
        out += "\\t";
        break;
      case 0x08:
        out += "\\b";
        break;
      case 0x0c:
        out += "\\f";
        break;
      default:
        out += "\\u00" + HEX[c >> 4] + HEX[c & 15];
    }
  }
  return out + s.slice(start) + '"';
}

/// Compact JSON text of a value (keys of a Map sorted).
function serialise(v) {
  const parts = [];
  write(v, parts);
  return parts.join("");
}

function write(v, parts) {
  if (v === null) {
    parts.push("null");
  } else if (v === true) {
    parts.push("true");
  } else if (v === false) {
    parts.push("false");
  } else if (typeof v === "number") {
    parts.push(String(v));
  } else if (typeof v === "string") {
    parts.push(quote(v));
  } else if (v instanceof F64) {
    parts.push(floatText(v.value));
  } else if (Array.isArray(v)) {
    parts.push("[");
    for (let i = 0; i < v.length; i++) {
      if (i > 0) parts.push(",");
      write(v[i], parts);
    }
    parts.push("]");
  } else {
    const keys = Array.from(v.keys()).sort();
    parts.push("{");
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) parts.push(",");
      parts.push(quote(keys[i]), ":");
      write(v.get(keys[i]), parts);
    }
    parts.push("}");
  }
}

/// A JSON parser over a string: `parse` returns the value of the whole
/// text or throws a SyntaxError.
class Parser {
  constructor(text) {
    this.text = text;
    this.pos = 0;
  }

  parse() {
    const value = this.value();
    this.space();
    if (this.pos !== this.text.length) this.fail("trailing characters");
    return value;
  }

  fail(what) {
    throw new SyntaxError("JSON: " + what + " at " + this.pos);
  }

  space() {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  literal(word, value) {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.fail("unexpected character");
  }

  value() {
    this.space();
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: // {
        return this.object();
      case 0x5b: // [
        return this.array();
      case 0x22: // "
        return this.string();
      case 0x74:
        return this.literal("true", true);
      case 0x66:
        return this.literal("false", false);
      case 0x6e:
        return this.literal("null", null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        return this.fail("unexpected character");
    }
  }

  object() {
    const map = new Map();
    this.pos++;
    this.space();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return map;
    }
    for (;;) {
      this.space();
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail("expected a key");
      const key = this.string();
      this.space();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail("expected `:`");
      this.pos++;
      map.set(key, this.value());
      this.space();
      const c = this.text.charCodeAt(this.pos++);
      if (c === 0x7d) return map;
      if (c !== 0x2c) this.fail("expected `,` or `}`");
    }
  }

  array() {
    const items = [];
    this.pos++;
    this.space();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return items;
    }
    for (;;) {
      items.push(this.value());
      this.space();
      const c = this.text.charCodeAt(this.pos++);
      if (c === 0x5d) return items;
      if (c !== 0x2c) this.fail("expected `,` or `]`");
    }
  }

  string() {
    const t = this.text;
    let p = this.pos + 1;
    let out = "";
    let start = p;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x22) break;
      if (Number.isNaN(c)) {
        this.pos = p;
        this.fail("unterminated string");
      }
      if (c < 0x20) {
        this.pos = p;
        this.fail("control character in string");
      }
      if (c !== 0x5c) {
        p++;
        continue;
      }
      out += t.slice(start, p);
      const e = t[p + 1];
      p += 2;
      switch (e) {
        case '"':
        case "\\":
        case "/":
          out += e;
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const code = parseInt(t.slice(p, p + 4), 16);
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(p, p + 4))) {
            this.pos = p;
            this.fail("bad \\u escape");
          }
          out += String.fromCharCode(code);
          p += 4;
          break;
        }
        default:
          this.pos = p;
          this.fail("bad escape");
      }
      start = p;
    }
    this.pos = p + 1;
    return out + t.slice(start, p);
  }

  number() {
    const t = this.text;
    const start = this.pos;
    let p = start;
    let float = false;
    if (t.charCodeAt(p) === 0x2d) p++;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c >= 0x30 && c <= 0x39) {
        p++;
      } else if (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d) {
        float = true;
        p++;
      } else {
        break;
      }
    }
    this.pos = p;
    const x = Number(t.slice(start, p));
    if (Number.isNaN(x)) this.fail("bad number");
    return float ? new F64(x) : x;
  }
}

/// The JSON document of `morph_kernels::json_transform`: records of users
/// until their text adds up to `size` bytes.
function jsonRecords(size) {
  const records = [];
  let textLen = 0;
  for (let i = 0; textLen < size; i++) {
    const record = new Map();
    record.set("id", i);
    record.set("name", "user-" + String(i).padStart(6, "0"));
    record.set("active", i % 3 !== 0);
    record.set("score", new F64(((i * 7919) % 1000) / 10));
    record.set("tags", ["t" + (i % 7), "t" + (i % 11)]);
    textLen += serialise(record).length + 1;
    records.push(record);
  }
  return records;
}

/// `morph_kernels::json_transform`: builds the document, serialises it,
/// parses it back, upper-cases the active users' names and sums scores
/// per tag, serialises the result: its length and checksum.
function jsonTransform(size) {
  const text = serialise(jsonRecords(size));
  const parsed = new Parser(text).parse();
  const names = [];
  const perTag = new Map();
  for (const record of Array.isArray(parsed) ? parsed : []) {
    if (record.get("active") !== true) continue;
    const name = record.get("name");
    names.push(typeof name === "string" ? name.toUpperCase() : "");
    const score = numberOf(record.get("score"));
    const tags = record.get("tags");
    for (const tag of Array.isArray(tags) ? tags : []) {
      const key = typeof tag === "string" ? tag : "";
      perTag.set(key, new F64(numberOf(perTag.get(key)) + score));
    }
  }
  const out = new Map();
  out.set("names", names);
  out.set("per_tag", perTag);
  const result = serialise(out);
  // acc = acc.rotate_left(5) ^ byte, over the UTF-8 bytes of `result`.
  let hi = 0;
  let lo = 0;
  let len = 0;
  const mix = (byte) => {
    const nextHi = (hi << 5) | (lo >>> 27);
    lo = ((lo << 5) | (hi >>> 27)) ^ byte;
    hi = nextHi;
    len++;
  };
  for (let i = 0; i < result.length; i++) {
    let c = result.charCodeAt(i);
    if (c < 0x80) {
      mix(c);
      continue;
    }
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < result.length) {
      const low = result.charCodeAt(i + 1);
      if (low >= 0xdc00 && low < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (c < 0x800) {
      mix(0xc0 | (c >> 6));
    } else if (c < 0x10000) {
      mix(0xe0 | (c >> 12));
      mix(0x80 | ((c >> 6) & 63));
    } else {
      mix(0xf0 | (c >> 18));
      mix(0x80 | ((c >> 12) & 63));
      mix(0x80 | ((c >> 6) & 63));
    }
    mix(0x80 | (c & 63));
  }
  return { len, checksum: u64Json(hi, lo) };
}
