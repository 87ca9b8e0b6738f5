"""An issue-tracker integration for Morph, in Python (docs/scripts.md).

The same extension as ../issue-tracker (Rust with morph-sdk, built to wasm)
and ../issue-tracker-js: the same host calls in the same order, the same
results and the same error codes and messages, so `morph run` prints the
same bytes for all three. The Rust original reads the tracker's answer with
serde_json; the second half of this file reads it the same way (the same
values, the same error messages, the same text for an id in a key or URL).
"""

import json

import morph


def describe():
    return {
        "name": "Issue tracker",
        "version": "1.0.0",
        "actions": [
            {
                "name": "create_issue",
                "description": "Creates an issue; the API base URL comes from config.api_url.",
                "parameters": [
                    {"name": "title", "type": "string", "required": True},
                    {"name": "body", "type": "string", "required": False},
                ],
            },
            {
                "name": "list_issues",
                "description": "The ids of the issues created so far.",
                "parameters": [],
            },
        ],
        "events": ["issue_created"],
        "config_schema": {"type": "object", "properties": {"api_url": {"type": "string"}}},
    }


def execute(action, params, context):
    if action == "create_issue":
        return create_issue(params, context)
    if action == "list_issues":
        return morph.data.list("issue/")
    raise morph.ExtensionError("unknown_action", f"no action {action}")


def create_issue(params, context):
    api = field(field(context, "config"), "api_url")
    if not isinstance(api, str):
        raise morph.ExtensionError("no_api_url", "config.api_url is not set")
    # A failed host call is not caught: it ends the execution with the
    # host's code and the message "<op>: <message>", as in the Rust version.
    token = morph.vault.get_secret("token")
    if not isinstance(token, str):
        raise morph.ExtensionError("no_token", "the vault has no secret `token`")
    issue = {"title": field(params, "title"), "body": field(params, "body")}
    api = api.rstrip("/")
    response = morph.http.fetch(
        f"{api}/issues",
        method="POST",
        headers=[["authorization", f"Bearer {token}"], ["content-type", "application/json"]],
        body=json_text(issue),
    )
    status = field(response, "status")
    if not (isinstance(status, int) and not isinstance(status, bool) and status >= 0):
        status = 0
    if status not in (200, 201):
        raise morph.ExtensionError("tracker_error", f"the tracker answered {status}")
    body = field(response, "body")
    try:
        created = read_json(body if isinstance(body, str) else "{}")
    except JsonError as e:
        raise morph.ExtensionError("tracker_error", f"unreadable answer: {e}") from None
    issue_id = field(created, "id")
    morph.data.set(f"issue/{json_text(issue_id)}", issue)
    morph.events.emit("issue_created", {"id": issue_id, "title": field(params, "title")})
    return {"id": issue_id, "url": f"{api}/issues/{json_text(issue_id)}"}


def field(value, key):
    """value[key] the way serde_json indexes a Value: None when value is not
    an object or has no such key."""
    return value.get(key) if isinstance(value, dict) else None


# --- JSON as serde_json reads and writes it ----------------------------------


def json_text(value):
    """Compact JSON as serde_json writes a Value: keys sorted, floats in
    serde_json's (zmij's) notation, strings escaped as serde_json does."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        # ensure_ascii=False escapes exactly what serde_json escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return "{" + ",".join(json_text(k) + ":" + json_text(value[k]) for k in sorted(value)) + "}"


def float_text(f):
    """A finite float as serde_json prints it: the shortest digits, fixed
    notation for decimal exponents -5..=15 (with ".0" when integral),
    otherwise d.ddde+N / d.ddde-N."""
    sign = "-" if f < 0 or (f == 0 and str(f).startswith("-")) else ""
    if f == 0:
        return sign + "0.0"
    digits, exp = shortest_digits(abs(f))
    if -5 <= exp <= 15:
        if len(digits) - 1 <= exp:
            return sign + digits + "0" * (exp + 1 - len(digits)) + ".0"
        if exp >= 0:
            return sign + digits[: exp + 1] + "." + digits[exp + 1 :]
        return sign + "0." + "0" * (-exp - 1) + digits
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp)}"


def shortest_digits(x):
    """The shortest digits that read back as x > 0, without leading or
    trailing zeros, and the decimal exponent of the first one."""
    text = repr(x)
    mantissa, _, exp = text.partition("e")
    integer = mantissa.split(".")[0]
    digits = mantissa.replace(".", "")
    stripped = digits.lstrip("0")
    exp10 = int(exp or "0") + len(integer) - 1 - (len(digits) - len(stripped))
    return stripped.rstrip("0"), exp10


class JsonError(Exception):
    """serde_json's error, with its message ("... at line L column C")."""


_EOF_LIST = "EOF while parsing a list"
_EOF_OBJECT = "EOF while parsing an object"
_EOF_STRING = "EOF while parsing a string"
_EOF_VALUE = "EOF while parsing a value"
_U64_MAX = 2**64 - 1
_I32_MAX = 2**31 - 1
_POW10 = [float(f"1e{e}") for e in range(309)]
_WHITESPACE = b" \n\t\r"
_DIGITS = b"0123456789"
# \" \\ \/ \b \f \n \r \t, by byte.
_ESCAPES = {0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 8, 0x66: 12, 0x6E: 10, 0x72: 13, 0x74: 9}


def read_json(text):
    """serde_json::from_str::<Value>(text): integers stay int (u64 and i64
    range), other numbers are float as serde_json computes them (without its
    float_roundtrip feature); raises JsonError with serde_json's message."""
    return _Reader(text.encode("utf-8")).document()


class _Reader:
    def __init__(self, data):
        self.data = data
        self.i = 0
        self.depth = 128

    # Positions: serde_json counts lines from 1 and columns in bytes.
    def fail(self, message, index=None):
        index = self.i if index is None else index
        start = self.data.rfind(b"\n", 0, index) + 1
        line = 1 + self.data.count(b"\n", 0, start)
        raise JsonError(f"{message} at line {line} column {index - start}")

    def peek_fail(self, message):
        self.fail(message, min(len(self.data), self.i + 1))

    def peek(self):
        return self.data[self.i] if self.i < len(self.data) else None

    def whitespace(self):
        while self.i < len(self.data) and self.data[self.i] in _WHITESPACE:
            self.i += 1
        return self.peek()

    def document(self):
        value = self.value()
        if self.whitespace() is not None:
            self.peek_fail("trailing characters")
        return value

    def value(self):
        c = self.whitespace()
        if c is None:
            self.peek_fail(_EOF_VALUE)
        if c in b"ntf":
            word = {ord("n"): b"null", ord("t"): b"true", ord("f"): b"false"}[c]
            self.i += 1
            for expected in word[1:]:
                if self.i == len(self.data):
                    self.fail(_EOF_VALUE)
                self.i += 1
                if self.data[self.i - 1] != expected:
                    self.fail("expected ident")
            return {ord("n"): None, ord("t"): True, ord("f"): False}[c]
        if c == ord("-"):
            self.i += 1
            return self.number(False)
        if c in _DIGITS:
            return self.number(True)
        if c == ord('"'):
            self.i += 1
            return self.string()
        if c in b"[{":
            self.depth -= 1
            if self.depth == 0:
                self.peek_fail("recursion limit exceeded")
            self.i += 1
            value = self.array() if c == ord("[") else self.object()
            self.depth += 1
            self.i += 1  # the closing bracket
            return value
        self.peek_fail("expected value")

    def array(self):
        items, first = [], True
        while True:
            c = self.whitespace()
            if c is None:
                self.peek_fail(_EOF_LIST)
            if c == ord("]"):
                return items
            if not first:
                if c != ord(","):
                    self.peek_fail("expected `,` or `]`")
                self.i += 1
                c = self.whitespace()
                if c == ord("]"):
                    self.peek_fail("trailing comma")
                if c is None:
                    self.peek_fail(_EOF_VALUE)
            first = False
            items.append(self.value())

    def object(self):
        members, first = {}, True
        while True:
            c = self.whitespace()
            if c is None:
                self.peek_fail(_EOF_OBJECT)
            if c == ord("}"):
                return members
            if not first:
                if c != ord(","):
                    self.peek_fail("expected `,` or `}`")
                self.i += 1
                c = self.whitespace()
                if c == ord("}"):
                    self.peek_fail("trailing comma")
                if c is None:
                    self.peek_fail(_EOF_VALUE)
            if c != ord('"'):
                self.peek_fail("key must be a string")
            first = False
            self.i += 1
            key = self.string()
            c = self.whitespace()
            if c != ord(":"):
                self.peek_fail(_EOF_OBJECT if c is None else "expected `:`")
            self.i += 1
            members[key] = self.value()

    def string(self):
        """After the opening quote; the string's text."""
        data, out = self.data, bytearray()
        while True:
            if self.i == len(data):
                self.fail(_EOF_STRING)
            c = data[self.i]
            self.i += 1
            if c == ord('"'):
                return out.decode("utf-8")
            if c < 0x20:
                self.fail("control character (\\u0000-\\u001F) found while parsing a string")
            if c != ord("\\"):
                out.append(c)
                continue
            if self.i == len(data):
                self.fail(_EOF_STRING)
            c = data[self.i]
            self.i += 1
            if c in _ESCAPES:
                out.append(_ESCAPES[c])
            elif c == ord("u"):
                out += self.unicode_escape().encode("utf-8")
            else:
                self.fail("invalid escape")

    def unicode_escape(self):
        n = self.hex4()
        if 0xDC00 <= n <= 0xDFFF:
            self.fail("lone leading surrogate in hex escape")
        if not 0xD800 <= n <= 0xDBFF:
            return chr(n)
        for expected in b"\\u":
            if self.i == len(self.data):
                self.fail(_EOF_STRING)
            self.i += 1
            if self.data[self.i - 1] != expected:
                self.fail("unexpected end of hex escape")
        low = self.hex4()
        if not 0xDC00 <= low <= 0xDFFF:
            self.fail("lone leading surrogate in hex escape")
        return chr(0x10000 + ((n - 0xD800) << 10) + (low - 0xDC00))

    def hex4(self):
        if len(self.data) - self.i < 4:
            self.i = len(self.data)
            self.fail(_EOF_STRING)
        digits = self.data[self.i : self.i + 4]
        self.i += 4
        if any(d not in b"0123456789abcdefABCDEF" for d in digits):
            self.fail("invalid escape")
        return int(digits, 16)

    def digit(self):
        """The digit at the current position, or None."""
        c = self.peek()
        return c - 48 if c is not None and c in _DIGITS else None

    def number(self, positive):
        """After the sign: an int (u64 or i64 range) or a float."""
        if self.i == len(self.data):
            self.fail(_EOF_VALUE)
        c = self.data[self.i]
        self.i += 1
        if c == ord("0"):
            if self.digit() is not None:
                self.peek_fail("invalid number")
            significand = 0
        elif c in _DIGITS:
            significand = c - 48
            while (d := self.digit()) is not None:
                if significand * 10 + d > _U64_MAX:
                    return self.long_integer(positive, significand)
                self.i += 1
                significand = significand * 10 + d
        else:
            self.fail("invalid number")
        c = self.peek()
        if c == ord("."):
            return self.decimal(positive, significand, 0)
        if c in (ord("e"), ord("E")):
            return self.exponent(positive, significand, 0)
        if positive:
            return significand
        if significand == 0 or significand > 2**63:
            return -float(significand)
        return -significand

    def long_integer(self, positive, significand):
        exponent = 0
        while True:
            c = self.peek()
            if c is not None and c in _DIGITS:
                self.i += 1
                exponent += 1
            elif c == ord("."):
                return self.decimal(positive, significand, exponent)
            elif c in (ord("e"), ord("E")):
                return self.exponent(positive, significand, exponent)
            else:
                return self.from_parts(positive, significand, exponent)

    def decimal(self, positive, significand, exponent_before):
        self.i += 1  # "."
        after = 0
        while (d := self.digit()) is not None:
            if significand * 10 + d > _U64_MAX:
                # Further digits are ignored.
                while self.digit() is not None:
                    self.i += 1
                if self.peek() in (ord("e"), ord("E")):
                    return self.exponent(positive, significand, exponent_before + after)
                return self.from_parts(positive, significand, exponent_before + after)
            self.i += 1
            significand = significand * 10 + d
            after -= 1
        if after == 0:
            self.peek_fail("invalid number" if self.peek() is not None else _EOF_VALUE)
        if self.peek() in (ord("e"), ord("E")):
            return self.exponent(positive, significand, exponent_before + after)
        return self.from_parts(positive, significand, exponent_before + after)

    def exponent(self, positive, significand, starting):
        self.i += 1  # "e"
        positive_exp = True
        if self.peek() == ord("+"):
            self.i += 1
        elif self.peek() == ord("-"):
            self.i += 1
            positive_exp = False
        if self.i == len(self.data):
            self.fail(_EOF_VALUE)
        c = self.data[self.i]
        self.i += 1
        if c not in _DIGITS:
            self.fail("invalid number")
        exp = c - 48
        while (d := self.digit()) is not None:
            self.i += 1
            if exp * 10 + d > _I32_MAX:
                if significand != 0 and positive_exp:
                    self.fail("number out of range")
                while self.digit() is not None:
                    self.i += 1
                return 0.0 if positive else -0.0
            exp = exp * 10 + d
        final = starting + exp if positive_exp else starting - exp
        return self.from_parts(positive, significand, max(-(2**31), min(_I32_MAX, final)))

    def from_parts(self, positive, significand, exponent):
        """serde_json's f64_from_parts: significand * 10^exponent, in steps
        of the f64 powers of ten."""
        f = float(significand)
        while True:
            if abs(exponent) <= 308:
                if exponent >= 0:
                    f *= _POW10[exponent]
                    if f == float("inf"):
                        self.fail("number out of range")
                else:
                    f /= _POW10[-exponent]
                break
            if f == 0.0:
                break
            if exponent >= 0:
                self.fail("number out of range")
            f /= 1e308
            exponent += 308
        return f if positive else -f
