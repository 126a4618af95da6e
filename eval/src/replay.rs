//! CAIDA-style captures for the replay regression suite: draw packets from
//! the simulator's synthetic traffic model (heavy-tailed flows, client /24
//! prefixes, Zipf servers, per-host IPID counters) and write them as a
//! pcap, which the simulator then replays like any user capture.

use std::path::Path;
use testbeds::pcap::{write_pcap, PcapError, PcapPacket};
use testbeds::scenario::{Scenario, TrafficKind};
use testbeds::traffic::Source;

/// Writes `duration_ns` of `sc`'s synthetic traffic (its rate, flow model
/// and seed) to `path`, timestamps starting at 1 s after the epoch.
/// Returns the number of packets written.
///
/// Errors: the file cannot be written; `sc.traffic` is not synthetic.
pub fn write_caida_style_pcap(
    sc: &Scenario,
    duration_ns: u64,
    path: &Path,
) -> Result<usize, PcapError> {
    if sc.traffic.kind != TrafficKind::Synthetic {
        return Err(PcapError::Format {
            path: path.to_path_buf(),
            offset: 0,
            expected: "a synthetic traffic model to draw the capture from".into(),
        });
    }
    let mut src = Source::new(sc)?;
    let mut pkts = Vec::new();
    while let Some(p) = src.next(duration_ns) {
        pkts.push((p.t_ns, p.flow, p.ipid));
    }
    let flows = src.flows();
    let out: Vec<PcapPacket> = pkts
        .into_iter()
        .map(|(t, flow, ipid)| PcapPacket {
            ts_ns: 1_000_000_000 + t,
            tuple: flows[flow as usize],
            ipid,
        })
        .collect();
    write_pcap(path, &out)?;
    Ok(out.len())
}

/// Points `sc` at a capture to replay (file timing scaled to the
/// scenario's rate, looped to fill the duration).
pub fn use_pcap(sc: &mut Scenario, path: &Path) {
    sc.traffic.kind = TrafficKind::Pcap;
    sc.traffic.pcap = Some(path.to_path_buf());
}
