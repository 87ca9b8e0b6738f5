"""The benchmark kernels of ../kernels (Rust) in plain Python, for the
`python` backend (embedded CPython). Same actions, parameters and results
as ../kernels-wasm: one action per kernel ({"n": size}), `noop`, and
`host_calls` ({"count", "bytes"}). Every result equals
`morph_kernels::run(kernel, n)` of the Rust source; the benches check it.

The work is done here, in the language: SHA-256 and the JSON parser and
serialiser are written out below (neither hashlib nor the json module is
used). Rust's wrapping u64 and u32 arithmetic is Python's unbounded
integers masked with U64 / U32.
"""

import morph

KERNELS = ["fib", "sha256", "json", "loop", "memcpy"]

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


def describe():
    n = [{"name": "n", "type": "integer", "required": True}]
    actions = [
        {"name": name, "description": f"The {name} kernel.", "parameters": n} for name in KERNELS
    ]
    actions.append({"name": "noop", "description": "Does nothing.", "parameters": []})
    actions.append(
        {
            "name": "host_calls",
            "description": "`count` data.set host calls of `bytes` bytes.",
            "parameters": [
                {"name": "count", "type": "integer", "required": True},
                {"name": "bytes", "type": "integer", "required": True},
            ],
        }
    )
    return {"name": "Kernels", "version": "1.0.0", "actions": actions, "events": [], "config_schema": {}}


def execute(action, params, context):
    if action == "noop":
        return None
    if action == "host_calls":
        count = params["count"]
        value = "x" * params["bytes"]
        for _ in range(count):
            morph.call("data.set", {"key": "k", "value": value})
        return count
    return run(action, params["n"])


def run(name, n):
    """`morph_kernels::run`: kernel `name` with size `n`."""
    if name == "fib":
        return fib(n)
    if name == "sha256":
        return sha256(random_bytes(n, 1)).hex()
    if name == "json":
        return json_transform(n)
    if name == "loop":
        return int_loop(n)
    if name == "memcpy":
        return memcpy(n)
    raise morph.ExtensionError("kernel", f"no kernel `{name}`")


# ---------------------------------------------------------------- fib


def fib(n):
    """Recursive Fibonacci (exponential calls: measures call overhead)."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# ------------------------------------------------------------- sha256

K = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
]


def sha256(data):
    """SHA-256 (FIPS 180-4) of `data`, as 32 bytes."""
    length = len(data)
    message = bytearray(data)
    message.append(0x80)
    while len(message) % 64 != 56:
        message.append(0)
    bits = (length * 8) & U64
    for shift in range(56, -8, -8):
        message.append((bits >> shift) & 0xFF)
    h = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
    k = K
    mask = U32
    w = [0] * 64
    for off in range(0, len(message), 64):
        for i in range(16):
            j = off + 4 * i
            w[i] = (message[j] << 24) | (message[j + 1] << 16) | (message[j + 2] << 8) | message[j + 3]
        for i in range(16, 64):
            x = w[i - 15]
            y = w[i - 2]
            s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
            s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & mask
        a, b, c, d, e, f, g, hh = h
        for i in range(64):
            s1 = (((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))) & mask
            ch = (e & f) ^ (~e & g)
            t1 = hh + s1 + ch + k[i] + w[i]
            s0 = (((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))) & mask
            maj = (a & b) ^ (a & c) ^ (b & c)
            hh = g
            g = f
            f = e
            e = (d + t1) & mask
            d = c
            c = b
            b = a
            a = (t1 + s0 + maj) & mask
        h = [(x + y) & mask for x, y in zip(h, (a, b, c, d, e, f, g, hh))]
    out = bytearray()
    for word in h:
        out += bytes(((word >> 24) & 0xFF, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF))
    return bytes(out)


def random_bytes(length, seed):
    """`morph_kernels::bytes`: `length` pseudo-random bytes (xorshift64,
    8 little-endian bytes a step)."""
    x = (seed | 1) & U64
    out = bytearray()
    while len(out) < length:
        x ^= (x << 13) & U64
        x ^= x >> 7
        x ^= (x << 17) & U64
        out += bytes((x >> shift) & 0xFF for shift in range(0, 64, 8))
    del out[length:]
    return out


# --------------------------------------------------------------- loop


def int_loop(n):
    """`morph_kernels::int_loop`: `n` xorshift64 steps summed (wrapping)."""
    mask = U64
    x = 0x9E3779B97F4A7C15
    acc = 0
    for _ in range(n):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        acc = (acc + x) & mask
    return acc


# ------------------------------------------------------------- memcpy


def memcpy(size):
    """`morph_kernels::memcpy`: a `size`-byte buffer copied back and forth 64
    times (slice assignment), one byte touched between copies."""
    a = bytearray(b"\x5a") * size
    b = bytearray(size)
    modulus = max(size, 1)
    for round_ in range(64):
        b[:] = a
        b[round_ % modulus] ^= round_
        a[:] = b
    acc = 0
    for i in range(0, size, 4096):
        acc = (((acc << 3) | (acc >> 61)) & U64) ^ a[i]
    return acc


# --------------------------------------------------------------- json
#
# A JSON value here is None, a bool, a str, an int, a float, a list or a
# dict. Floats serialise with a fraction or an exponent even when whole and
# dict keys sorted, as serde_json (f64, default map) does.


class JsonError(ValueError):
    """Malformed JSON text."""


def float_text(x):
    """Text of a float as serde_json (ryu) writes it: the shortest digits
    that read back the same, `.0` on whole numbers, an exponent (`1e16`,
    `1.5e-7`) outside [1e-5, 1e16)."""
    if x != x or x in (float("inf"), float("-inf")):
        return "null"
    text = repr(x)
    if "e" not in text:
        return text
    # repr's exponent form starts at 1e16 (as ryu's) but below 1e-4.
    mantissa, exponent = text.split("e")
    if int(exponent) == -5:
        sign = "-" if mantissa.startswith("-") else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return f"{mantissa}e{int(exponent)}"


ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def quote(s):
    """`s` as a JSON string literal (serde_json's escapes)."""
    out = ['"']
    start = 0
    for i, c in enumerate(s):
        if c >= " " and c != '"' and c != "\\":
            continue
        out.append(s[start:i])
        start = i + 1
        out.append(ESCAPES.get(c) or f"\\u{ord(c):04x}")
    out.append(s[start:])
    out.append('"')
    return "".join(out)


def serialise(value):
    """Compact JSON text of `value` (dict keys sorted)."""
    parts = []
    write(value, parts)
    return "".join(parts)


def write(v, parts):
    if v is None:
        parts.append("null")
    elif v is True:
        parts.append("true")
    elif v is False:
        parts.append("false")
    elif isinstance(v, int):
        parts.append(str(v))
    elif isinstance(v, float):
        parts.append(float_text(v))
    elif isinstance(v, str):
        parts.append(quote(v))
    elif isinstance(v, list):
        parts.append("[")
        for i, item in enumerate(v):
            if i:
                parts.append(",")
            write(item, parts)
        parts.append("]")
    elif isinstance(v, dict):
        parts.append("{")
        for i, key in enumerate(sorted(v)):
            if i:
                parts.append(",")
            parts.append(quote(key))
            parts.append(":")
            write(v[key], parts)
        parts.append("}")
    else:
        raise TypeError(f"not JSON: {type(v).__name__}")


WHITESPACE = " \t\n\r"
DIGITS = "0123456789"
NUMBER_CHARS = "0123456789+-.eE"
UNESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class Parser:
    """A JSON parser over a str: `parse()` returns the value of the whole
    text or raises JsonError."""

    def __init__(self, text):
        self.text = text
        self.pos = 0

    def parse(self):
        value = self.value()
        self.space()
        if self.pos != len(self.text):
            self.fail("trailing characters")
        return value

    def fail(self, what):
        raise JsonError(f"JSON: {what} at {self.pos}")

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def space(self):
        text = self.text
        pos = self.pos
        end = len(text)
        while pos < end and text[pos] in WHITESPACE:
            pos += 1
        self.pos = pos

    def literal(self, word, value):
        if self.text.startswith(word, self.pos):
            self.pos += len(word)
            return value
        return self.fail("unexpected character")

    def value(self):
        self.space()
        c = self.peek()
        if c == "{":
            return self.object()
        if c == "[":
            return self.array()
        if c == '"':
            return self.string()
        if c == "t":
            return self.literal("true", True)
        if c == "f":
            return self.literal("false", False)
        if c == "n":
            return self.literal("null", None)
        if c == "-" or (c and c in DIGITS):
            return self.number()
        return self.fail("unexpected character")

    def object(self):
        result = {}
        self.pos += 1
        self.space()
        if self.peek() == "}":
            self.pos += 1
            return result
        while True:
            self.space()
            if self.peek() != '"':
                self.fail("expected a key")
            key = self.string()
            self.space()
            if self.peek() != ":":
                self.fail("expected `:`")
            self.pos += 1
            result[key] = self.value()
            self.space()
            c = self.peek()
            self.pos += 1
            if c == "}":
                return result
            if c != ",":
                self.fail("expected `,` or `}`")

    def array(self):
        items = []
        self.pos += 1
        self.space()
        if self.peek() == "]":
            self.pos += 1
            return items
        while True:
            items.append(self.value())
            self.space()
            c = self.peek()
            self.pos += 1
            if c == "]":
                return items
            if c != ",":
                self.fail("expected `,` or `]`")

    def string(self):
        text = self.text
        end = len(text)
        pos = self.pos + 1
        start = pos
        out = []
        while True:
            if pos >= end:
                self.pos = pos
                self.fail("unterminated string")
            c = text[pos]
            if c == '"':
                break
            if c < " ":
                self.pos = pos
                self.fail("control character in string")
            if c != "\\":
                pos += 1
                continue
            out.append(text[start:pos])
            e = text[pos + 1 : pos + 2]
            pos += 2
            if e == "u":
                digits = text[pos : pos + 4]
                if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    self.pos = pos
                    self.fail("bad \\u escape")
                code = int(digits, 16)
                pos += 4
                # A surrogate pair is one character.
                if 0xD800 <= code < 0xDC00 and text[pos : pos + 2] == "\\u":
                    low = text[pos + 2 : pos + 6]
                    if len(low) == 4 and all(d in "0123456789abcdefABCDEF" for d in low):
                        low_code = int(low, 16)
                        if 0xDC00 <= low_code < 0xE000:
                            code = 0x10000 + ((code - 0xD800) << 10) + (low_code - 0xDC00)
                            pos += 6
                out.append(chr(code))
            elif e in UNESCAPES:
                out.append(UNESCAPES[e])
            else:
                self.pos = pos
                self.fail("bad escape")
            start = pos
        self.pos = pos + 1
        out.append(text[start:pos])
        return "".join(out)

    def number(self):
        text = self.text
        start = self.pos
        pos = start
        end = len(text)
        if text[pos] == "-":
            pos += 1
        is_float = False
        while pos < end and text[pos] in NUMBER_CHARS:
            if text[pos] not in DIGITS:
                is_float = True
            pos += 1
        self.pos = pos
        literal = text[start:pos]
        try:
            return float(literal) if is_float else int(literal)
        except ValueError:
            return self.fail("bad number")


def json_records(size):
    """The JSON document of `morph_kernels::json_transform`: records of users
    until their text adds up to `size` bytes."""
    records = []
    text_len = 0
    i = 0
    while text_len < size:
        record = {
            "id": i,
            "name": f"user-{i:06}",
            "active": i % 3 != 0,
            "score": (i * 7919 % 1000) / 10.0,
            "tags": [f"t{i % 7}", f"t{i % 11}"],
        }
        text_len += len(serialise(record).encode()) + 1
        records.append(record)
        i += 1
    return records


def json_transform(size):
    """`morph_kernels::json_transform`: builds the document, serialises it,
    parses it back, upper-cases the active users' names and sums scores per
    tag, serialises the result: its length and checksum."""
    text = serialise(json_records(size))
    parsed = Parser(text).parse()
    names = []
    per_tag = {}
    for record in parsed if isinstance(parsed, list) else []:
        if record.get("active") is not True:
            continue
        name = record.get("name")
        names.append(name.upper() if isinstance(name, str) else "")
        score = record.get("score")
        score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else 0.0
        tags = record.get("tags")
        for tag in tags if isinstance(tags, list) else []:
            key = tag if isinstance(tag, str) else ""
            total = per_tag.get(key)
            per_tag[key] = (total if isinstance(total, float) else 0.0) + score
    out = serialise({"names": names, "per_tag": per_tag}).encode()
    acc = 0
    for byte in out:
        acc = (((acc << 5) | (acc >> 59)) & U64) ^ byte
    return {"len": len(out), "checksum": acc}
