//! `--baseline NAME`: which ratios moved since a saved criterion baseline.
//!
//! Ratios (to native, to wasmtime, to the raw engine) rather than absolute
//! times are compared: they cancel most of a shared machine's drift.

use std::collections::BTreeMap;

/// A ratio that moved by more than [`THRESHOLD`].
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// Which ratio, e.g. `kernel_fib: wasmi / native`.
    pub label: String,
    /// Its value in the baseline.
    pub old: f64,
    /// Its value in the latest run.
    pub new: f64,
}

/// Relative change above which a ratio counts as moved (10%).
pub const THRESHOLD: f64 = 0.10;

/// Ratios present in both runs whose relative change exceeds [`THRESHOLD`],
/// in label order.
pub fn moved(old: &BTreeMap<String, f64>, new: &BTreeMap<String, f64>) -> Vec<Moved> {
    new.iter()
        .filter_map(|(label, &new)| {
            let old = *old.get(label)?;
            ((new - old).abs() > THRESHOLD * old).then(|| Moved {
                label: label.clone(),
                old,
                new,
            })
        })
        .collect()
}

/// The lines printed for the comparison with baseline `name`.
pub fn describe(name: &str, moved: &[Moved]) -> String {
    if moved.is_empty() {
        return format!("compared with baseline `{name}`: no ratio moved more than 10%\n");
    }
    let mut out = format!(
        "compared with baseline `{name}`: {} ratio(s) moved more than 10% (old -> new):\n",
        moved.len()
    );
    for m in moved {
        let change = (m.new / m.old - 1.0) * 100.0;
        out.push_str(&format!(
            "  {}: {:.2} -> {:.2} ({change:+.0}%)\n",
            m.label, m.old, m.new
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_moves_over_ten_percent() {
        let old = BTreeMap::from([
            ("a".to_owned(), 2.0),
            ("b".to_owned(), 2.0),
            ("c".to_owned(), 2.0),
            ("gone".to_owned(), 1.0),
        ]);
        let new = BTreeMap::from([
            ("a".to_owned(), 2.1),
            ("b".to_owned(), 2.5),
            ("c".to_owned(), 1.7),
            ("added".to_owned(), 9.0),
        ]);
        let m = moved(&old, &new);
        assert_eq!(
            m,
            vec![
                Moved {
                    label: "b".into(),
                    old: 2.0,
                    new: 2.5
                },
                Moved {
                    label: "c".into(),
                    old: 2.0,
                    new: 1.7
                },
            ]
        );
        let text = describe("main", &m);
        assert!(text.contains("  b: 2.00 -> 2.50 (+25%)"), "{text}");
        assert!(text.contains("  c: 2.00 -> 1.70 (-15%)"), "{text}");
        assert_eq!(
            describe("main", &[]),
            "compared with baseline `main`: no ratio moved more than 10%\n"
        );
    }
}
