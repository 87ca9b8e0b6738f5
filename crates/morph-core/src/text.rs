//! Text from an extension (manifest values, guest messages, paths, event
//! names) on its way to a terminal, a log or the audit log: escaped so it
//! can neither drive the terminal (ESC and BEL sequences set titles, clear
//! screens, rewrite earlier lines) nor forge output (a newline that starts
//! a fake `error[...]` line or audit record, bidirectional overrides that
//! reorder what is shown), and bounded in length.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: every control character
/// (C0, DEL, C1; newline and tab included), the line and paragraph
/// separators (U+2028, U+2029: some viewers break lines on them), and
/// every Unicode format character (category Cf, Unicode 15.1): the ones
/// that reorder text (bidirectional embeddings, overrides, isolates and
/// marks), hide it (zero-width characters, the soft hyphen, the tag
/// characters U+E0000–U+E007F that can carry a whole invisible message,
/// interlinear annotations) or change how it is shaped.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `text` with every character a terminal could act on written as a
/// visible escape (`\n`, `\t`, `\u{1b}`, `\u{202e}`), and a backslash
/// doubled (`\\`), so the result is unambiguous: a guest's literal
/// backslash-n cannot pass for an escaped newline. Borrowed when there is
/// nothing to escape.
pub fn escape_untrusted(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' || needs_escape(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`escape_untrusted`] but without doubling backslashes: for text
/// assembled from parts that were escaped already (a formatted log line
/// whose guest-derived fields went through [`loggable`]), as a last line
/// of defence before a terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
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

/// A value's `Display` text (an error that may carry a guest's message, an
/// event name) made safe for a log line: [`bounded_untrusted`] to 1 KiB.
/// For `tracing` fields: `error = %text::loggable(&e)`.
pub fn loggable(value: &dyn std::fmt::Display) -> String {
    bounded_untrusted(&value.to_string(), LOGGABLE_MAX_BYTES).into_owned()
}

/// The most of one value [`loggable`] keeps.
const LOGGABLE_MAX_BYTES: usize = 1024;

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
    fn separators_invisible_tags_and_backslashes_are_escaped() {
        let hostile = "a\u{2028}b\u{2029}c\u{e0041}\u{e007f}d\u{ad}e\u{2066}f";
        let shown = escape_untrusted(hostile);
        assert_eq!(
            shown,
            "a\\u{2028}b\\u{2029}c\\u{e0041}\\u{e007f}d\\u{ad}e\\u{2066}f"
        );
        // A guest's own backslash-n stays distinguishable from a newline.
        assert_eq!(escape_untrusted("x\\ny"), "x\\\\ny");
        assert_eq!(escape_untrusted("x\ny"), "x\\ny");
        let long = format!("{}\n", "z".repeat(2000));
        let logged = loggable(&long);
        assert!(logged.len() < 1100 && !logged.contains('\n'), "{logged}");
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
        let value =
            serde_json::json!({"m": "a\u{9b}b\u{202e}c\u{1b}d\ne\\f\u{2028}\u{e0041}", "n": 1});
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
