//! Engine configuration: victim selection, matching windows, recursion cap.

use serde::{Deserialize, Serialize};

/// One way a packet becomes a victim (paper §4.1, §5 "Offline diagnosis").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimRule {
    /// End-to-end latency above this percentile (0–100) of all delivered
    /// packets, e.g. `99.0` for the paper's p99.
    Percentile(f64),
    /// End-to-end latency above an absolute bound in nanoseconds.
    LatencyAbove(f64),
    /// Per-flow throughput below `pps` over windows of `window_ns`: a flow
    /// that offered at least `pps` at the source in a window but got less
    /// delivered; its packets sent in that window are victims.
    ThroughputBelow { pps: f64, window_ns: i64 },
    /// Packets seen upstream but never downstream (dropped at a queue).
    Lost,
}

/// Parses a victim specification: rules separated by `,` or `|`:
/// `p99`, `p99.9`, `latency>300us` (units ns/us/ms/s), `lost`,
/// `throughput<1000pps@10ms` (units pps/kpps/mpps).
pub fn parse_victims(spec: &str) -> Result<Vec<VictimRule>, String> {
    let mut rules = Vec::new();
    for part in spec
        .split([',', '|'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let lower = part.to_ascii_lowercase();
        if lower == "lost" {
            rules.push(VictimRule::Lost);
        } else if let Some(p) = lower.strip_prefix('p') {
            let v: f64 = p
                .parse()
                .map_err(|_| format!("victim rule {part:?}: expected pNN, e.g. p99"))?;
            if !(0.0..100.0).contains(&v) {
                return Err(format!(
                    "victim rule {part:?}: percentile must be in [0, 100)"
                ));
            }
            rules.push(VictimRule::Percentile(v));
        } else if let Some(rest) = lower.strip_prefix("latency>") {
            rules.push(VictimRule::LatencyAbove(parse_duration_ns(rest)? as f64));
        } else if let Some(rest) = lower.strip_prefix("throughput<") {
            let (rate, window) = rest.split_once('@').ok_or_else(|| {
                format!("victim rule {part:?}: expected throughput<RATE@WINDOW, e.g. throughput<1000pps@10ms")
            })?;
            let window_ns = parse_duration_ns(window)?;
            if window_ns <= 0 {
                return Err(format!("victim rule {part:?}: window must be positive"));
            }
            rules.push(VictimRule::ThroughputBelow {
                pps: parse_rate_pps(rate)?,
                window_ns,
            });
        } else {
            return Err(format!(
                "unknown victim rule {part:?}: expected p99, latency>300us, throughput<1000pps@10ms or lost"
            ));
        }
    }
    if rules.is_empty() {
        return Err("empty victim specification".into());
    }
    Ok(rules)
}

/// Parses `300us`, `2ms`, `1.5s`, `800ns` (a bare number is nanoseconds).
pub fn parse_duration_ns(s: &str) -> Result<i64, String> {
    collector::units::parse_duration_ns(s, collector::units::BareNumber::Nanoseconds)
        .and_then(|ns| i64::try_from(ns).map_err(|_| format!("duration `{s}` is out of range")))
}

/// Parses `1000pps`, `50kpps`, `1.2mpps` (a bare number is pps).
pub fn parse_rate_pps(s: &str) -> Result<f64, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = s.strip_suffix("mpps") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix("kpps") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("pps") {
        (n, 1.0)
    } else {
        (s.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad rate {s:?}: expected e.g. 1000pps, 1.2mpps"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("bad rate {s:?}: must be positive"));
    }
    Ok(v * mult)
}

/// Everything the engine can be told. `Config::default()` is the paper's
/// setting: p99 end-to-end latency plus losses, abnormal = beyond one
/// standard deviation of the last 10 ms at that NF.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Victim rules; a packet matching any rule is a victim.
    pub victims: Vec<VictimRule>,
    /// Diagnose a victim only at NFs where its queuing delay exceeds
    /// mean + `abnormal_sigma`·std of the recent history (paper §4.1).
    /// `false` diagnoses it at every NF on its path.
    pub require_abnormal: bool,
    pub abnormal_sigma: f64,
    /// Length of the "recent history" for the abnormality test.
    pub history_ns: i64,
    /// Granularity of the history (time buckets).
    pub history_bucket_ns: i64,
    /// Largest delay between an upstream tx and the downstream rx of the
    /// same packet (queuing + propagation) considered by reconstruction;
    /// also bounds the delay between an NF's rx and tx of one packet.
    pub match_window_ns: i64,
    /// Clock tolerance: how far a downstream observation may appear to
    /// precede the upstream one, and the jitter allowed by the merged-FIFO
    /// order check.
    pub slack_ns: i64,
    /// Peak rates (pps) that override the topology and the estimate, by NF
    /// instance name or NF type.
    pub peak_rates: Vec<(String, f64)>,
    /// Ignore the trace's topology and infer the DAG from IPIDs.
    pub infer_dag: bool,
    /// Recursion depth cap (paper §4.3); shares still unexplained at the
    /// cap stay with the NF reached, and the event is counted.
    pub max_depth: usize,
    /// Culprit flows kept per culprit (largest first); the rest of the
    /// score stays on the culprit but is not broken down by flow.
    pub max_flows: usize,
    /// Worker threads (`None`: rayon's default, all cores).
    pub threads: Option<usize>,
    /// Nominal TSC frequency used when a host has fewer than two anchors
    /// and the trace gives no hint.
    pub nominal_tsc_hz: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            victims: vec![VictimRule::Percentile(99.0), VictimRule::Lost],
            require_abnormal: true,
            abnormal_sigma: 1.0,
            history_ns: 10_000_000,
            history_bucket_ns: 1_000_000,
            match_window_ns: 20_000_000,
            slack_ns: 2_000,
            peak_rates: Vec::new(),
            infer_dag: false,
            max_depth: 8,
            max_flows: 64,
            threads: None,
            nominal_tsc_hz: 2.6e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let r = parse_victims("p99|latency>300us,lost, throughput<2kpps@10ms").unwrap();
        assert_eq!(
            r,
            vec![
                VictimRule::Percentile(99.0),
                VictimRule::LatencyAbove(300_000.0),
                VictimRule::Lost,
                VictimRule::ThroughputBelow {
                    pps: 2000.0,
                    window_ns: 10_000_000
                }
            ]
        );
        assert!(parse_victims("p100").is_err());
        assert!(parse_victims("latency>abc").is_err());
        assert!(parse_victims("fast").is_err());
        assert_eq!(parse_duration_ns("1.5ms").unwrap(), 1_500_000);
    }
}
