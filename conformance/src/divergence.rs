//! The one table of expected divergences: (backend, case, reason). A listed
//! case that passes fails the run, so the table cannot rot. Empty while
//! every backend passes everything.

/// `(backend, case, reason)`.
pub const EXPECTED_DIVERGENCES: &[(&str, &str, &str)] = &[];

/// The reason `case` is expected to diverge on `backend`, if listed.
pub fn expected_divergence(backend: &str, case: &str) -> Option<&'static str> {
    EXPECTED_DIVERGENCES
        .iter()
        .find(|(b, c, _)| *b == backend && *c == case)
        .map(|(_, _, reason)| *reason)
}
