//! What `microscope inspect` prints: a [`Summary`] of a [`Trace`] (streams,
//! NFs, records, packets, time span, bytes per packet, every loss as a time
//! window, what the reader skipped, the topology from the metadata).

use crate::{Skipped, Trace};
use collector::{Calibration, ClockAnchor, Direction, LossCounters, Role, StreamId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Nominal TSC frequency assumed when the trace has neither anchors nor a
/// hint (only then are times uncalibrated, and the summary says so).
pub const FALLBACK_TSC_HZ: f64 = 1e9;

#[derive(Clone, Debug, Serialize)]
pub struct StreamSummary {
    pub id: StreamId,
    pub nf: Option<String>,
    pub nf_type: Option<String>,
    pub role: Option<Role>,
    pub port: Option<u16>,
    pub queue: Option<u16>,
    pub direction: Option<Direction>,
    pub host: Option<String>,
    pub records: u64,
    pub batches: u64,
    pub anchors: u64,
    pub packets: u64,
    pub loss: LossCounters,
}

#[derive(Clone, Debug, Serialize)]
pub struct NfSummary {
    pub name: String,
    pub nf_type: String,
    pub role: Role,
    pub streams: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// One loss as a time window, in nanoseconds of the host's calibrated clock.
#[derive(Clone, Debug, Serialize)]
pub struct LossSummary {
    pub stream: StreamId,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Time of the last record before the loss (`None`: start of stream).
    pub after_ns: Option<f64>,
    /// Time of the first record after the loss (`None`: end of stream).
    pub before_ns: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostClock {
    pub host: String,
    pub anchors: usize,
    pub hz: f64,
    pub source: collector::clock::CalibrationSource,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub producer: String,
    pub bytes: u64,
    pub chunks: u64,
    pub footer: bool,
    pub duplicates_dropped: u64,
    pub skipped: Vec<Skipped>,
    pub streams: Vec<StreamSummary>,
    pub nfs: Vec<NfSummary>,
    pub records: u64,
    pub packets: u64,
    /// Earliest and latest record time (ns), and the span between them.
    pub start_ns: Option<f64>,
    pub end_ns: Option<f64>,
    pub span_ns: f64,
    /// File bytes per packet observation (packets summed over hook points).
    pub bytes_per_packet: Option<f64>,
    pub clocks: Vec<HostClock>,
    pub losses: Vec<LossSummary>,
    /// `Some(edges)` when the metadata carries the NF graph.
    pub dag_edges: Option<Vec<(String, String)>>,
}

fn host_of(t: &Trace, id: usize) -> String {
    t.streams[id]
        .info
        .as_ref()
        .map_or_else(String::new, |i| i.host.clone())
}

/// Summarizes a trace. Times are converted per host with a
/// [`Calibration`] fitted to all anchors of that host.
pub fn summarize(t: &Trace) -> Summary {
    let nominal = t
        .meta
        .tsc_hz_hint
        .filter(|h| h.is_finite() && *h > 0.0)
        .unwrap_or(FALLBACK_TSC_HZ);
    let mut anchors: BTreeMap<String, Vec<ClockAnchor>> = BTreeMap::new();
    for (id, s) in t.streams.iter().enumerate() {
        anchors
            .entry(host_of(t, id))
            .or_default()
            .extend(s.anchors.iter().copied());
    }
    let cals: BTreeMap<String, Calibration> = anchors
        .iter_mut()
        .map(|(h, a)| {
            a.sort_by_key(|x| x.tsc);
            (h.clone(), Calibration::fit(a, nominal))
        })
        .collect();
    let clocks = cals
        .iter()
        .map(|(h, c)| HostClock {
            host: h.clone(),
            anchors: anchors[h].len(),
            hz: c.hz(),
            source: c.source,
        })
        .collect();
    let ns = |id: usize, tsc: u64| cals[&host_of(t, id)].to_ns(tsc);

    let mut streams = Vec::new();
    let mut nfs: BTreeMap<String, NfSummary> = BTreeMap::new();
    let mut losses = Vec::new();
    let (mut start, mut end): (Option<f64>, Option<f64>) = (None, None);
    for (id, s) in t.streams.iter().enumerate() {
        let packets: u64 = s.batches.iter().map(|b| b.ipids.len() as u64).sum();
        let i = s.info.as_ref();
        if s.info.is_none() && s.batches.is_empty() && s.anchors.is_empty() {
            continue; // an id never used
        }
        streams.push(StreamSummary {
            id: id as StreamId,
            nf: i.map(|i| i.nf.clone()),
            nf_type: i.map(|i| i.nf_type.clone()),
            role: i.map(|i| i.role),
            port: i.map(|i| i.port),
            queue: i.map(|i| i.queue),
            direction: i.map(|i| i.direction),
            host: i.map(|i| i.host.clone()),
            records: (s.batches.len() + s.anchors.len()) as u64,
            batches: s.batches.len() as u64,
            anchors: s.anchors.len() as u64,
            packets,
            loss: s.loss,
        });
        if let Some(i) = i {
            let e = nfs.entry(i.nf.clone()).or_insert_with(|| NfSummary {
                name: i.nf.clone(),
                nf_type: i.nf_type.clone(),
                role: i.role,
                streams: 0,
                rx_packets: 0,
                tx_packets: 0,
            });
            e.streams += 1;
            match i.direction {
                Direction::Rx => e.rx_packets += packets,
                Direction::Tx => e.tx_packets += packets,
            }
        }
        let tscs = s
            .batches
            .iter()
            .map(|b| b.tsc)
            .chain(s.anchors.iter().map(|a| a.tsc));
        for tsc in tscs {
            let x = ns(id, tsc);
            start = Some(start.map_or(x, |s| s.min(x)));
            end = Some(end.map_or(x, |e| e.max(x)));
        }
        for w in &s.loss_windows {
            losses.push(LossSummary {
                stream: id as StreamId,
                records: w.count(),
                first_seq: w.first_seq,
                last_seq: w.last_seq,
                after_ns: w.after_tsc.map(|x| ns(id, x)),
                before_ns: w.before_tsc.map(|x| ns(id, x)),
            });
        }
    }
    let records = t.records();
    let packets = t.packets();
    Summary {
        producer: t.meta.producer.clone(),
        bytes: t.report.bytes,
        chunks: t.report.chunks,
        footer: t.report.clean_footer,
        duplicates_dropped: t.report.duplicates_dropped,
        skipped: t.report.skipped.clone(),
        streams,
        nfs: nfs.into_values().collect(),
        records,
        packets,
        start_ns: start,
        end_ns: end,
        span_ns: match (start, end) {
            (Some(s), Some(e)) => e - s,
            _ => 0.0,
        },
        bytes_per_packet: (packets > 0).then(|| t.report.bytes as f64 / packets as f64),
        clocks,
        losses,
        dag_edges: t.meta.topology.as_ref().map(|topo| {
            topo.edges
                .iter()
                .map(|e| (e.from.clone(), e.to.clone()))
                .collect()
        }),
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "?".into(), |x| x.to_string())
}

fn dir(d: &Option<Direction>) -> &'static str {
    match d {
        Some(Direction::Rx) => "rx",
        Some(Direction::Tx) => "tx",
        None => "?",
    }
}

fn role(r: &Option<Role>) -> &'static str {
    match r {
        Some(Role::Source) => "source",
        Some(Role::Nf) => "nf",
        Some(Role::Sink) => "sink",
        None => "?",
    }
}

impl Summary {
    /// Seconds since the trace start, for human output.
    /// `missing` names the open end of a window without a record there.
    fn rel(&self, ns: Option<f64>, missing: &str) -> String {
        match (ns, self.start_ns) {
            (Some(x), Some(s)) => format!("+{:.6} s", (x - s) / 1e9),
            (None, _) => missing.into(),
            (Some(x), None) => format!("{x:.0} ns"),
        }
    }

    /// The human-readable report.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "producer:   {}", self.producer);
        let _ = writeln!(
            o,
            "file:       {} bytes, {} chunks, footer {}",
            self.bytes,
            self.chunks,
            if self.footer {
                "present (clean exit)"
            } else {
                "absent (writer did not finish cleanly)"
            }
        );
        let _ = writeln!(
            o,
            "records:    {} ({} packets) in {} streams of {} NFs",
            self.records,
            self.packets,
            self.streams.len(),
            self.nfs.len()
        );
        let _ = writeln!(
            o,
            "time span:  {:.6} s ({:.0} ns)",
            self.span_ns / 1e9,
            self.span_ns
        );
        for c in &self.clocks {
            let _ = writeln!(
                o,
                "clock:      host {:?}: {:.6} GHz from {} anchors ({:?})",
                c.host,
                c.hz / 1e9,
                c.anchors,
                c.source
            );
        }
        match self.bytes_per_packet {
            Some(b) => {
                let _ = writeln!(o, "size:       {b:.3} bytes per packet per hook point");
            }
            None => {
                let _ = writeln!(o, "size:       no packets");
            }
        }
        if self.duplicates_dropped > 0 {
            let _ = writeln!(
                o,
                "duplicates: {} records seen twice, dropped",
                self.duplicates_dropped
            );
        }
        let _ = writeln!(o, "\nstreams:");
        let _ = writeln!(
            o,
            "  {:>4} {:<12} {:<12} {:<6} {:>4} {:>5} {:<3} {:>10} {:>12} {:>8}",
            "id", "nf", "type", "role", "port", "queue", "dir", "records", "packets", "lost"
        );
        for s in &self.streams {
            let _ = writeln!(
                o,
                "  {:>4} {:<12} {:<12} {:<6} {:>4} {:>5} {:<3} {:>10} {:>12} {:>8}",
                s.id,
                opt(&s.nf),
                opt(&s.nf_type),
                role(&s.role),
                opt(&s.port),
                opt(&s.queue),
                dir(&s.direction),
                s.records,
                s.packets,
                s.loss.total()
            );
        }
        let _ = writeln!(o, "\nNFs:");
        for n in &self.nfs {
            let _ = writeln!(
                o,
                "  {:<12} {:<12} {:<6} {} streams, rx {} packets, tx {} packets",
                n.name,
                n.nf_type,
                role(&Some(n.role)),
                n.streams,
                n.rx_packets,
                n.tx_packets
            );
        }
        let _ = writeln!(o, "\nlosses:");
        if self.losses.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for l in &self.losses {
            let causes = self
                .streams
                .iter()
                .find(|s| s.id == l.stream)
                .map(|s| {
                    format!(
                        " (stream totals: full {}, too_big {}, write {}, corrupt {})",
                        s.loss.lost_full,
                        s.loss.lost_too_big,
                        s.loss.lost_write,
                        s.loss.lost_corrupt
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {} records lost on stream {} between {} and {} (seq {}..={}){}",
                l.records,
                l.stream,
                self.rel(l.after_ns, "the stream's start"),
                self.rel(l.before_ns, "the end of the trace"),
                l.first_seq,
                l.last_seq,
                causes
            );
        }
        let _ = writeln!(o, "\nskipped by the reader:");
        if self.skipped.is_empty() {
            let _ = writeln!(o, "  nothing");
        }
        for s in &self.skipped {
            let _ = writeln!(o, "  {} bytes at offset {}: {}", s.len, s.offset, s.reason);
        }
        match &self.dag_edges {
            Some(edges) => {
                let _ = writeln!(o, "\nDAG: from trace metadata");
                for (a, b) in edges {
                    let _ = writeln!(o, "  {a} -> {b}");
                }
            }
            None => {
                let _ = writeln!(o, "\nDAG: no topology in metadata");
            }
        }
        o
    }
}
