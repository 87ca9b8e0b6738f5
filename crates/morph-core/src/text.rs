//! Text from an extension (manifest values, guest messages, paths, event
//! names) on its way to a terminal, a log or the audit log: escaped so it
//! can neither drive the terminal (ESC and BEL sequences set titles, clear
//! screens, rewrite earlier lines) nor forge output (a newline that starts
//! a fake `error[...]` line or audit record, bidirectional overrides that
//! reorder what is shown), and bounded in length.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: every control character
/// (C0, DEL, C1; newline and tab included) and the Unicode format
/// characters that reorder or hide text (bidirectional embeddings,
/// overrides and isolates, the Arabic letter mark, zero-width joiners
/// and the byte-order mark).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every character a terminal could act on written as a
/// visible escape (`\n`, `\t`, `\u{1b}`, `\u{202e}`); borrowed when there
/// is nothing to escape.
pub fn escape_untrusted(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape_untrusted`], then cut to at most `max_bytes` (on a character
/// boundary) with a note of how much was left out.
pub fn bounded_untrusted(text: &str, max_bytes: usize) -> Cow<'_, str> {
    let escaped = escape_untrusted(text);
    if escaped.len() <= max_bytes {
        return escaped;
    }
    let mut cut = max_bytes;
    while !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!(
        "{}… ({} more bytes)",
        &escaped[..cut],
        escaped.len() - cut
    ))
}

/// JSON text (as `serde_json` writes it, which escapes only C0 controls,
/// `"` and `\`) with the remaining characters of [`escape_untrusted`]
/// (DEL, C1 controls, bidirectional and zero-width format characters)
/// written as `\uXXXX` escapes: the same JSON value, safe to print.
pub fn json_for_terminal(json: &str) -> Cow<'_, str> {
    if !json.chars().any(needs_escape) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // Newlines and indentation of pretty JSON are structure, not
        // string content: serde_json escapes those inside strings itself.
        if needs_escape(c) && !matches!(c, '\n' | '\t' | '\r') {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_reordering_characters_become_visible() {
        let hostile = "ok\nerror[timeout]: forged\u{1b}]0;title\u{7}\u{9b}2J\u{202e}txt.exe";
        let shown = escape_untrusted(hostile);
        assert!(!shown.chars().any(needs_escape), "{shown}");
        assert!(shown.contains("\\n") && shown.contains("\\u{1b}") && shown.contains("\\u{202e}"));
        assert_eq!(
            escape_untrusted("plain text: ünïcode ✓"),
            "plain text: ünïcode ✓"
        );
    }

    #[test]
    fn bounded_text_names_what_was_cut() {
        let long = "é".repeat(100);
        let cut = bounded_untrusted(&long, 11);
        assert!(cut.starts_with("ééééé"), "{cut}");
        assert!(cut.ends_with("(190 more bytes)"), "{cut}");
        assert_eq!(bounded_untrusted("short", 10), "short");
    }

    #[test]
    fn json_stays_the_same_value_with_nothing_raw() {
        let value = serde_json::json!({"m": "a\u{9b}b\u{202e}c\u{1b}d\ne", "n": 1});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = json_for_terminal(&text);
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
        assert!(
            !safe
                .chars()
                .any(|c| needs_escape(c) && !matches!(c, '\n' | ' '))
        );
    }
}
