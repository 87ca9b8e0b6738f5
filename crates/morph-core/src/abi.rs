//! Guest ABI v1 codec (ABI.md): packed pointers and JSON envelopes.

use serde_json::{Value, json};

use crate::error::{MorphError, Result};

/// The ABI version this build speaks (`morph_abi_version()` must return it).
pub const ABI_VERSION: i32 = 1;

/// Packs `(ptr, len)` into an i64: `(ptr << 32) | len`.
pub fn pack(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Unpacks an i64 from [`pack`] into `(ptr, len)`.
pub fn unpack(packed: i64) -> (u32, u32) {
    let v = packed as u64;
    ((v >> 32) as u32, v as u32)
}

/// Parses guest bytes as UTF-8 JSON; anything else is `abi_violation`
/// naming `what`.
pub fn parse_json(bytes: &[u8], what: &str) -> Result<Value> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| MorphError::abi_violation(format!("{what} is not valid UTF-8: {e}")))?;
    serde_json::from_str(text)
        .map_err(|e| MorphError::abi_violation(format!("{what} is not valid JSON: {e}")))
}

/// Decodes a result envelope: `{"ok": v}` gives `Ok(v)`, `{"err": {code,
/// message}}` gives `extension_error` with the guest's code; any other shape
/// is `abi_violation`.
pub fn decode_envelope(bytes: &[u8], what: &str) -> Result<Value> {
    let value = parse_json(bytes, what)?;
    let Value::Object(mut map) = value else {
        return Err(MorphError::abi_violation(format!(
            "{what} must be an object with `ok` or `err`"
        )));
    };
    if map.len() == 1 {
        if let Some(ok) = map.remove("ok") {
            return Ok(ok);
        }
        if let Some(Value::Object(err)) = map.remove("err") {
            let code = err.get("code").and_then(Value::as_str);
            let message = err.get("message").and_then(Value::as_str);
            if let (Some(code), Some(message)) = (code, message) {
                return Err(MorphError::extension(code, message));
            }
        }
    }
    Err(MorphError::abi_violation(format!(
        "{what} must be {{\"ok\": value}} or {{\"err\": {{\"code\": string, \"message\": string}}}}"
    )))
}

/// Encodes a host-call result as the envelope the guest receives; an error
/// becomes `{"err": {"code": <kind>, "message": ...}}`.
pub fn encode_envelope(result: &Result<Value>) -> Vec<u8> {
    let v = match result {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "err": { "code": e.kind().as_str(), "message": e.message() } }),
    };
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn pack_round_trips_full_range() {
        for (p, l) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (0x8000_0000, 7)] {
            assert_eq!(unpack(pack(p, l)), (p, l));
        }
    }

    #[test]
    fn envelopes_decode_or_violate() {
        assert_eq!(decode_envelope(br#"{"ok": [1]}"#, "r").unwrap(), json!([1]));
        let e = decode_envelope(br#"{"err": {"code": "c", "message": "m"}}"#, "r").unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::ExtensionError, Some("c")));
        for bad in [
            &b"{}"[..],
            b"[]",
            br#"{"ok":1,"x":2}"#,
            br#"{"err":{"code":1}}"#,
            b"\xff",
            b"{",
        ] {
            assert_eq!(
                decode_envelope(bad, "r").unwrap_err().kind(),
                ErrorKind::AbiViolation
            );
        }
    }

    #[test]
    fn errors_encode_with_their_kind() {
        let bytes = encode_envelope(&Err(MorphError::permission_denied("no")));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"err": {"code": "permission_denied", "message": "no"}})
        );
    }
}
