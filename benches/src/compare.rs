//! The side-by-side table of `cargo xtask bench --vs-python`: our records and
//! `bench_python.py`'s, joined on `(config, backend, n, phase)`, with the ratio
//! pw-cache / proxywhirl of `ops_per_sec` and the issue's target for the manager rows. The
//! floors under the SQLite manager (`floor_io`, `floor_full`: see [`crate::replay`]) are set
//! beside proxywhirl's SQLite manager, and their target cell says whether the manager's target
//! is within reach of that floor at all.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// One benchmark record's identity and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// `tier_memory`, ..., or `manager`.
    pub config: String,
    /// The tier or L2 backend.
    pub backend: String,
    /// Entries.
    pub n: u64,
    /// `put`, `get_hit`, `get_miss` or `mixed`.
    pub phase: String,
    /// Operations per second (`None` when the phase was skipped).
    pub ops_per_sec: Option<f64>,
    /// Whether every planned op ran (a capped phase measures a prefix).
    pub complete: bool,
}

/// The records of one implementation found in `text` (one JSON object per line; other lines,
/// `total` and `l1_memory` records are ignored).
pub fn parse_rates(text: &str) -> Vec<Rate> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter_map(|v| {
            let phase = v.get("phase")?.as_str()?;
            if matches!(phase, "total" | "l1_memory") {
                return None;
            }
            Some(Rate {
                config: v.get("config")?.as_str()?.to_owned(),
                backend: v.get("backend")?.as_str()?.to_owned(),
                n: v.get("n")?.as_u64()?,
                phase: phase.to_owned(),
                ops_per_sec: v.get("ops_per_sec").and_then(Value::as_f64),
                complete: v.get("complete").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

/// The ratio the issue asks for on a row: 1000× for the JSONL manager's `get_hit` and `mixed`,
/// 100× for every other manager phase at N = 10,000; none elsewhere.
pub fn target(config: &str, backend: &str, n: u64, phase: &str) -> Option<f64> {
    if config != "manager" || n != 10_000 {
        return None;
    }
    Some(if backend == "jsonl" && matches!(phase, "get_hit" | "mixed") {
        1000.0
    } else {
        100.0
    })
}

/// Whether `config` is one of the replay's floors under the SQLite manager.
pub fn is_floor(config: &str) -> bool {
    config.starts_with("floor_")
}

/// The reference configuration a row of ours is compared with: a floor with the manager.
fn reference_config(config: &str) -> &str {
    if is_floor(config) { "manager" } else { config }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Ours.
    pub ours: Rate,
    /// The reference's rate on the same row, if it ran.
    pub theirs: Option<Rate>,
}

impl Row {
    /// pw-cache / proxywhirl, when both ran.
    pub fn ratio(&self) -> Option<f64> {
        let ours = self.ours.ops_per_sec?;
        let theirs = self.theirs.as_ref()?.ops_per_sec?;
        (theirs > 0.0).then(|| ours / theirs)
    }
}

/// Our rows, each with the reference's matching one.
pub fn join(ours: &[Rate], theirs: &[Rate]) -> Vec<Row> {
    let mut by_id: BTreeMap<(&str, &str, u64, &str), &Rate> = BTreeMap::new();
    for r in theirs {
        by_id.insert((&r.config, &r.backend, r.n, &r.phase), r);
    }
    ours.iter()
        .map(|r| Row {
            ours: r.clone(),
            theirs: by_id
                .get(&(reference_config(&r.config), r.backend.as_str(), r.n, r.phase.as_str()))
                .map(|t| (*t).clone()),
        })
        .collect()
}

fn rate_cell(rate: Option<&Rate>) -> String {
    match rate {
        None => "not run".to_owned(),
        Some(Rate { ops_per_sec: None, .. }) => "skipped".to_owned(),
        Some(Rate {
            ops_per_sec: Some(x),
            complete,
            ..
        }) => format!("{}{}", group(*x), if *complete { "" } else { " (capped)" }),
    }
}

/// `1234567.8` as `1,234,568`.
fn group(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table, in Markdown: one row per (config, backend, n, phase) of ours, with the
/// reference's rate, the ratio, and the target with whether it holds.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| config | backend | n | phase | pw-cache ops/s | proxywhirl ops/s | ratio | target |\n\
         |---|---|---:|---|---:|---:|---:|---|\n",
    );
    for row in rows {
        let r = &row.ours;
        let ratio = row.ratio();
        let target = match (target(reference_config(&r.config), &r.backend, r.n, &r.phase), ratio) {
            (None, _) => String::new(),
            (Some(t), Some(x)) if is_floor(&r.config) => format!(
                "≥ {t:.0}×: {}",
                if x >= t {
                    "within this floor"
                } else {
                    "beyond this floor"
                }
            ),
            (Some(t), Some(x)) => format!("≥ {t:.0}×: {}", if x >= t { "met" } else { "NOT met" }),
            (Some(t), None) => format!("≥ {t:.0}×: no reference"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.config,
            r.backend,
            r.n,
            r.phase,
            rate_cell(Some(r)),
            rate_cell(row.theirs.as_ref()),
            ratio.map_or_else(|| "—".to_owned(), |x| format!("{x:.0}×")),
            target
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = r#"{"impl":"pw-cache","config":"manager","backend":"jsonl","n":10000,"phase":"get_hit","ops_done":10000,"complete":true,"seconds":0.5,"ops_per_sec":20000.0}
{"impl":"pw-cache","config":"manager","backend":"sqlite","n":10000,"phase":"put","complete":true,"ops_per_sec":40000.0}
{"impl":"pw-cache","config":"tier_memory","backend":"memory","n":1000,"phase":"put","complete":true,"ops_per_sec":1000000.0}
{"impl":"pw-cache","config":"floor_io","backend":"sqlite","n":10000,"phase":"put","complete":true,"ops_per_sec":30000.0}
{"impl":"pw-cache","config":"floor_io","backend":"sqlite","n":10000,"phase":"get_hit","complete":true,"ops_per_sec":60000.0}
{"impl":"pw-cache","phase":"total","wall_seconds":3.0}"#;

    const THEIRS: &str = r#"{"impl":"python-proxywhirl-0.3.3","config":"manager","backend":"jsonl","n":10000,"phase":"get_hit","complete":false,"ops_per_sec":19.0}
{"impl":"python-proxywhirl-0.3.3","config":"manager","backend":"sqlite","n":10000,"phase":"put","complete":true,"ops_per_sec":476.0}
{"impl":"python-proxywhirl-0.3.3","config":"manager","backend":"sqlite","n":10000,"phase":"get_hit","complete":true,"ops_per_sec":500.0}
not json
{"impl":"python-proxywhirl-0.3.3","config":"tier_memory","backend":"memory","n":1000,"phase":"put","skipped":"global time budget exhausted"}"#;

    #[test]
    fn rows_join_on_config_backend_n_and_phase() {
        let rows = join(&parse_rates(OURS), &parse_rates(THEIRS));
        assert_eq!(rows.len(), 5);
        let ratio = rows[0].ratio().unwrap();
        assert!((ratio - 20000.0 / 19.0).abs() < 1e-9);
        assert!((rows[1].ratio().unwrap() - 40000.0 / 476.0).abs() < 1e-9);
        // The reference's skipped phase has no rate: no ratio.
        assert_eq!(rows[2].ratio(), None);
        assert_eq!(rows[2].theirs.as_ref().unwrap().ops_per_sec, None);
        // A floor is set beside the reference's SQLite manager.
        assert!((rows[3].ratio().unwrap() - 30000.0 / 476.0).abs() < 1e-9);
        assert!((rows[4].ratio().unwrap() - 60000.0 / 500.0).abs() < 1e-9);
    }

    #[test]
    fn the_table_names_targets_met_and_missed() {
        let table = render(&join(&parse_rates(OURS), &parse_rates(THEIRS)));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        let rows = [
            "| 20,000 | 19 (capped) | 1053× | ≥ 1000×: met |",
            "| 40,000 | 476 | 84× | ≥ 100×: NOT met |",
            "| 1,000,000 | skipped | — |  |",
            "| 30,000 | 476 | 63× | ≥ 100×: beyond this floor |",
            "| 60,000 | 500 | 120× | ≥ 100×: within this floor |",
        ];
        for (line, want) in lines[2..].iter().zip(rows) {
            assert!(line.contains(want), "{line} lacks {want}");
        }
    }

    #[test]
    fn targets_are_the_issues() {
        assert_eq!(target("manager", "jsonl", 10_000, "mixed"), Some(1000.0));
        assert_eq!(target("manager", "jsonl", 10_000, "put"), Some(100.0));
        assert_eq!(target("manager", "sqlite", 10_000, "get_hit"), Some(100.0));
        assert_eq!(target("manager", "sqlite", 1000, "get_hit"), None);
        assert_eq!(target("tier_jsonl", "jsonl", 10_000, "put"), None);
    }
}
