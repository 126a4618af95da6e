//! Importers for counter data recorded elsewhere, into the [`Row`] schema.
//!
//! Two layouts are understood:
//!
//! - **`perf stat -x,`** output, with or without `-I <ms>`: lines
//!   `[time,]value,unit,event,run_time,pct[,metric,metric_unit…]`, comment
//!   lines starting with `#`, blank lines. `<not counted>` / `<not supported>`
//!   values become missing (`None`). With `-I`, one row per timestamp; the
//!   interval is the difference to the previous timestamp (the first interval
//!   starts at 0). Without `-I`, one row whose interval is the longest
//!   counter run time.
//! - **The VPP dataset layout** (`out_*`/`nm_*` files of
//!   `shared/data/vpp-perf-counters`): a header
//!   `Count,Values,Labels,Misc,CPU-usage,Values-2,Units`, then one line per
//!   (interval end `Count`, event `Labels`, count `Values`).
//!
//! Event names are classified into the hardware or software tier
//! ([`event_tier`]) and every count is turned into a per-second rate; the
//! `task-clock`/`cpu-clock` events (milliseconds in perf) become CPUs used
//! (seconds of CPU per second).

use crate::error::{NfmonError, Result};
use crate::schema::{Row, Tier};
use std::path::Path;

/// perf's software events (everything else perf prints is a hardware or
/// hardware-cache event, i.e. needs a PMU).
pub const SOFTWARE_EVENTS: &[&str] = &[
    "task-clock",
    "cpu-clock",
    "context-switches",
    "cs",
    "cpu-migrations",
    "migrations",
    "page-faults",
    "faults",
    "minor-faults",
    "major-faults",
    "alignment-faults",
    "emulation-faults",
    "dummy",
    "bpf-output",
];

/// The tier of a perf event name (modifiers like `:u` are ignored).
pub fn event_tier(event: &str) -> Tier {
    let base = event.split(':').next().unwrap_or(event);
    if SOFTWARE_EVENTS.contains(&base) {
        Tier::Software
    } else {
        Tier::Hardware
    }
}

/// The schema metric name of a perf event (`hw.cycles`, `sw.task-clock`).
pub fn metric_name(event: &str) -> String {
    format!("{}.{}", event_tier(event).prefix(), event)
}

/// Convert one perf count over `interval_s` into the schema's per-second unit.
fn to_rate(event: &str, unit: &str, value: f64, interval_s: f64) -> Option<f64> {
    if interval_s <= 0.0 || !interval_s.is_finite() {
        return None;
    }
    let base = event.split(':').next().unwrap_or(event);
    let v = if unit == "msec" || base == "task-clock" || base == "cpu-clock" {
        value / 1000.0
    } else {
        value
    };
    Some(v / interval_s)
}

fn parse_value(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.starts_with('<') {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// One parsed (time, event, value) observation before grouping.
struct Obs {
    t: Option<f64>,
    event: String,
    unit: String,
    value: Option<f64>,
    run_ns: Option<f64>,
}

fn group_rows(source: &str, obs: Vec<Obs>) -> Vec<Row> {
    // Group consecutive observations by timestamp, in file order.
    let mut rows: Vec<Row> = Vec::new();
    let mut groups: Vec<(Option<f64>, Vec<Obs>)> = Vec::new();
    for o in obs {
        match groups.last_mut() {
            Some((t, v)) if *t == o.t => v.push(o),
            _ => groups.push((o.t, vec![o])),
        }
    }
    let mut prev_t = 0.0;
    for (t, g) in groups {
        let (t_end, interval) = match t {
            Some(t) => {
                let iv = t - prev_t;
                prev_t = t;
                (t, iv)
            }
            None => {
                let run = g.iter().filter_map(|o| o.run_ns).fold(0.0f64, f64::max) / 1e9;
                (run, run)
            }
        };
        let mut row = Row::new(source, t_end, (interval > 0.0).then_some(interval));
        for o in g {
            let v = o
                .value
                .and_then(|v| to_rate(&o.event, &o.unit, v, interval));
            row.set(metric_name(&o.event), v);
        }
        rows.push(row);
    }
    rows
}

/// Parse `perf stat -x,` text (with or without `-I`). `path` names the input
/// in errors.
pub fn parse_perf_stat(text: &str, path: &Path, source: &str) -> Result<Vec<Row>> {
    let mut obs = Vec::new();
    let mut offset = 0usize;
    let mut interval_mode: Option<bool> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line_off = offset;
        offset += raw.len() + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        // Decide the layout on the first data line: with -I the first field
        // is a timestamp and the event name is the 4th field.
        let im = *interval_mode.get_or_insert_with(|| {
            f.len() >= 4 && f[0].parse::<f64>().is_ok() && parse_value(f[3]).is_none()
        });
        let (t, rest) = if im {
            let t = f[0].parse::<f64>().map_err(|_| {
                NfmonError::parse(path, i + 1, line_off, "an interval timestamp", raw)
            })?;
            (Some(t), &f[1..])
        } else {
            (None, &f[..])
        };
        if rest.len() < 3 {
            return Err(NfmonError::parse(
                path,
                i + 1,
                line_off,
                "at least value,unit,event fields",
                raw,
            ));
        }
        let event = rest[2];
        if event.is_empty() || parse_value(event).is_some() {
            return Err(NfmonError::parse(
                path,
                i + 1,
                line_off,
                "an event name in the event field",
                raw,
            ));
        }
        let value = parse_value(rest[0]);
        if value.is_none() && !rest[0].starts_with('<') {
            return Err(NfmonError::parse(
                path,
                i + 1,
                line_off,
                "a count or <not counted>/<not supported>",
                raw,
            ));
        }
        obs.push(Obs {
            t,
            event: event.to_string(),
            unit: rest[1].to_string(),
            value,
            run_ns: rest.get(3).and_then(|s| parse_value(s)),
        });
    }
    if obs.is_empty() {
        return Err(NfmonError::parse(
            path,
            1,
            0,
            "perf stat -x, lines",
            "(no data lines)",
        ));
    }
    Ok(group_rows(source, obs))
}

/// The header of the VPP dataset layout.
pub const VPP_HEADER: &str = "Count,Values,Labels,Misc,CPU-usage,Values-2,Units";

/// Parse the VPP dataset layout (`Count,Values,Labels,…`).
pub fn parse_vpp_csv(text: &str, path: &Path, source: &str) -> Result<Vec<Row>> {
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or("").trim();
    if !header.starts_with("Count,Values,Labels") {
        return Err(NfmonError::parse(path, 1, 0, VPP_HEADER, header));
    }
    let mut obs = Vec::new();
    let mut offset = text.find('\n').map(|p| p + 1).unwrap_or(text.len());
    for (i, raw) in lines.enumerate() {
        let line_off = offset;
        offset += raw.len() + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            return Err(NfmonError::parse(
                path,
                i + 2,
                line_off,
                "Count,Values,Labels,…",
                raw,
            ));
        }
        let t = f[0].trim().parse::<f64>().map_err(|_| {
            NfmonError::parse(path, i + 2, line_off, "a time in the Count column", raw)
        })?;
        let value = parse_value(f[1]);
        if value.is_none() && !f[1].trim().starts_with('<') {
            return Err(NfmonError::parse(
                path,
                i + 2,
                line_off,
                "a count or <not counted> in the Values column",
                raw,
            ));
        }
        obs.push(Obs {
            t: Some(t),
            event: f[2].trim().to_string(),
            unit: String::new(),
            value,
            run_ns: f.get(3).and_then(|s| parse_value(s)),
        });
    }
    if obs.is_empty() {
        return Err(NfmonError::parse(path, 2, offset, "data lines", "(none)"));
    }
    Ok(group_rows(source, obs))
}

/// Read a file in either layout, detected from its first line.
pub fn import_file(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| NfmonError::io(path, e))?;
    let source = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    if text.trim_start().starts_with("Count,Values,Labels") {
        parse_vpp_csv(&text, path, &source)
    } else {
        parse_perf_stat(&text, path, &source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_stat_interval_mode() {
        let text = "# started on x\n\n     0.100,1000,,cycles,100,50.00,,\n     0.100,<not counted>,,instructions,0,0.00,,\n     0.100,50.0,msec,task-clock,50000000,100.00,0.5,CPUs utilized\n     0.300,3000,,cycles,100,50.00,,\n     0.300,10,,instructions,1,1.0,,,,\n";
        let rows = parse_perf_stat(text, Path::new("t.csv"), "t").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].interval_s, Some(0.1));
        assert!((rows[0].get("hw.cycles").unwrap() - 10_000.0).abs() < 1e-6);
        assert_eq!(rows[0].get("hw.instructions"), None);
        assert!(rows[0].values.contains_key("hw.instructions"));
        assert!((rows[0].get("sw.task-clock").unwrap() - 0.5).abs() < 1e-9);
        assert!((rows[1].interval_s.unwrap() - 0.2).abs() < 1e-12);
        assert!((rows[1].get("hw.cycles").unwrap() - 15_000.0).abs() < 1e-6);
        assert_eq!(rows[1].get("sw.task-clock"), None);
    }

    #[test]
    fn perf_stat_whole_run_and_not_supported() {
        let text = "<not supported>,,cycles,0,100.00,,\n0.82,msec,task-clock,818570,100.00,0.008,CPUs utilized\n1,,context-switches,818570,100.00,1.222,K/sec\n";
        let rows = parse_perf_stat(text, Path::new("t.csv"), "t").unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.get("hw.cycles"), None);
        assert!((r.interval_s.unwrap() - 0.000818570).abs() < 1e-12);
        assert!((r.get("sw.context-switches").unwrap() - 1.0 / 0.000818570).abs() < 1e-6);
    }

    #[test]
    fn bad_lines_name_line_and_offset() {
        let text = "0.1,100,,cycles,1,1,,\n0.2,abc,,cycles,1,1,,\n";
        let e = parse_perf_stat(text, Path::new("bad.csv"), "b").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("bad.csv") && s.contains("line 2") && s.contains("offset 22"),
            "{s}"
        );
        let e = parse_vpp_csv("nope\n", Path::new("v.csv"), "v").unwrap_err();
        assert!(e.to_string().contains("line 1"));
        assert!(parse_perf_stat("\n# only comments\n", Path::new("e"), "e").is_err());
    }

    #[test]
    fn vpp_layout() {
        let text = "Count,Values,Labels,Misc,CPU-usage,Values-2,Units\n0.1,200,branches,1,1,2,M/sec\n0.1,<not counted>,iTLB-loads,1,1,,\n0.1,100.0,task-clock,1,100,,\n0.2,400,branches,1,1,,\n";
        let rows = parse_vpp_csv(text, Path::new("v.csv"), "v").unwrap();
        assert_eq!(rows.len(), 2);
        assert!((rows[0].get("hw.branches").unwrap() - 2000.0).abs() < 1e-6);
        assert_eq!(rows[0].get("hw.iTLB-loads"), None);
        assert!((rows[0].get("sw.task-clock").unwrap() - 1.0).abs() < 1e-9);
        assert!((rows[1].get("hw.branches").unwrap() - 4000.0).abs() < 1e-6);
    }
}
