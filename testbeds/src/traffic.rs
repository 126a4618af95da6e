//! Traffic sources: the CAIDA-style synthetic model and pcap replay.
//!
//! Both produce background packets in time order as `(time, flow, IPID)`;
//! flows are dense indices into [`Source::flows`]. The synthetic model's
//! distributions and the reasons for them are in `docs/traffic.md`:
//!
//! - flow sizes: truncated Pareto(α = 0.9, x_m = 1, max 100 000) packets — most flows are
//!   one or two packets, most packets belong to flows of thousands;
//! - `active_flows` flows are in progress at any time; each packet belongs to
//!   one of them chosen with probability proportional to a per-flow
//!   log-normal rate weight (a Fenwick tree makes that O(log n)); a finished
//!   flow is replaced by a new one at once;
//! - clients: `client_prefixes` /24s inside 40 random /16 blocks, Zipf(1)
//!   popularity, hosts skewed to low addresses; servers: `servers` addresses
//!   in 60 /16 blocks, Zipf(1) popularity;
//! - TCP share `tcp_share`, the rest UDP; server ports from a mix dominated by
//!   443/80 (TCP) and 53/443 (UDP); ephemeral client ports;
//! - IPIDs: one counter per source host with a random start, incremented by
//!   every packet the host sends on any flow — so IPIDs of different hosts
//!   collide, as in real traces;
//! - arrival gaps: exponential (Poisson) or constant at `traffic.rate`.
//!
//! Each random quantity comes from an RNG stream private to its purpose, so
//! the background is bit-identical with and without injections.

use crate::pcap::{read_pcap, PcapError};
use crate::rng::{mix, purpose, stream, unit};
use crate::scenario::{Arrivals, PcapTiming, Scenario, TrafficKind};
use collector::FiveTuple;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// One background packet as the source emits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenPacket {
    pub t_ns: u64,
    pub flow: u32,
    pub ipid: u16,
}

/// A background traffic source.
pub struct Source {
    kind: Kind,
    flows: Vec<FiveTuple>,
    arrivals: Arrivals,
    gap_ns: f64,
    arr_rng: ChaCha8Rng,
    t: f64,
    started: bool,
}

enum Kind {
    Synthetic(Box<Synthetic>),
    Pcap(PcapReplay),
}

impl Source {
    /// Builds the scenario's source.
    ///
    /// Errors: the pcap cannot be read or holds no IPv4 packet.
    pub fn new(sc: &Scenario) -> Result<Source, PcapError> {
        let tc = &sc.traffic;
        let mut flows = Vec::new();
        let kind = match tc.kind {
            TrafficKind::Synthetic => Kind::Synthetic(Box::new(Synthetic::new(sc))),
            TrafficKind::Pcap => {
                let path = tc.pcap.clone().expect("validated: pcap path set");
                let cap = read_pcap(&path)?;
                if cap.packets.is_empty() {
                    return Err(PcapError::Format {
                        path,
                        offset: 24,
                        expected: "at least one IPv4 packet".into(),
                    });
                }
                let mut ids: HashMap<FiveTuple, u32> = HashMap::new();
                let mut pkt_flow = Vec::with_capacity(cap.packets.len());
                for p in &cap.packets {
                    let id = *ids.entry(p.tuple).or_insert_with(|| {
                        flows.push(p.tuple);
                        flows.len() as u32 - 1
                    });
                    pkt_flow.push(id);
                }
                let first = cap.packets[0].ts_ns;
                let last = cap.packets[cap.packets.len() - 1].ts_ns.max(first);
                let n = cap.packets.len() as f64;
                // Scale original gaps so the mean rate is traffic.rate.
                let span = (last - first) as f64;
                let orig_rate = if span > 0.0 {
                    (n - 1.0) / span * 1e9
                } else {
                    tc.rate.pps()
                };
                Kind::Pcap(PcapReplay {
                    packets: cap
                        .packets
                        .iter()
                        .map(|p| (p.ts_ns - first, p.ipid))
                        .collect(),
                    pkt_flow,
                    idx: 0,
                    looped: 0,
                    loop_offset: 0.0,
                    timing: tc.pcap_timing,
                    scale: orig_rate / tc.rate.pps(),
                    span_ns: span + 1e9 / orig_rate,
                    repeat: tc.pcap_loop,
                })
            }
        };
        Ok(Source {
            kind,
            flows,
            arrivals: tc.arrivals,
            gap_ns: 1e9 / tc.rate.pps(),
            arr_rng: stream(sc.seed, purpose::ARRIVALS, 0),
            t: 0.0,
            started: false,
        })
    }

    /// 5-tuples of the flows emitted so far (pcap: all flows of the file).
    pub fn flows(&self) -> &[FiveTuple] {
        &self.flows
    }

    /// Takes the flow table (after the run).
    pub fn into_flows(self) -> Vec<FiveTuple> {
        self.flows
    }

    fn next_gap(&mut self) -> f64 {
        match self.arrivals {
            Arrivals::Constant => self.gap_ns,
            Arrivals::Poisson => {
                let u: f64 = self.arr_rng.gen();
                -(1.0 - u).ln() * self.gap_ns
            }
        }
    }

    /// The next background packet, or `None` once its time would reach `end_ns`.
    pub fn next(&mut self, end_ns: u64) -> Option<GenPacket> {
        let (t, flow, ipid) = match &mut self.kind {
            Kind::Synthetic(_) => {
                let gap = self.next_gap();
                self.t = if self.started {
                    self.t + gap
                } else {
                    gap * 0.5
                };
                self.started = true;
                let Kind::Synthetic(s) = &mut self.kind else {
                    unreachable!()
                };
                let (flow, ipid) = s.next_packet(&mut self.flows);
                (self.t, flow, ipid)
            }
            Kind::Pcap(p) => {
                if p.idx == p.packets.len() {
                    if !p.repeat {
                        return None;
                    }
                    p.idx = 0;
                    p.looped += 1;
                    p.loop_offset += p.span_ns * p.scale;
                }
                let (ts, ipid) = p.packets[p.idx];
                let flow = p.pkt_flow[p.idx];
                p.idx += 1;
                let timing = p.timing;
                let at = p.loop_offset + ts as f64 * p.scale;
                let t = match timing {
                    PcapTiming::Scaled => at,
                    PcapTiming::Rate => {
                        let gap = self.next_gap();
                        if self.started {
                            self.t + gap
                        } else {
                            gap * 0.5
                        }
                    }
                };
                self.t = t;
                self.started = true;
                (t, flow, ipid)
            }
        };
        let t_ns = t.round() as u64;
        (t_ns < end_ns).then_some(GenPacket { t_ns, flow, ipid })
    }

    /// Draws a 5-tuple the way this source's flows look (for injected
    /// flows): a fresh synthetic tuple, or a random flow of the pcap.
    pub fn sample_tuple(&self, rng: &mut ChaCha8Rng) -> FiveTuple {
        match &self.kind {
            Kind::Synthetic(s) => s.model.tuple(rng),
            Kind::Pcap(_) => self.flows[rng.gen_range(0..self.flows.len())],
        }
    }
}

struct PcapReplay {
    /// (offset from the first packet, IPID)
    packets: Vec<(u64, u16)>,
    pkt_flow: Vec<u32>,
    idx: usize,
    looped: u32,
    loop_offset: f64,
    timing: PcapTiming,
    scale: f64,
    span_ns: f64,
    repeat: bool,
}

/// Address and port model of the synthetic traffic.
pub struct TupleModel {
    prefixes: Vec<u32>,
    prefix_cdf: Vec<f64>,
    servers: Vec<u32>,
    server_cdf: Vec<f64>,
    tcp_share: f64,
}

fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (0..n)
        .map(|i| {
            acc += 1.0 / (i as f64 + 1.0);
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|c| *c < u).min(cdf.len() - 1)
}

/// A random public /16 block (first octet 1..=223, not 10, 100, 127, 169, 172, 192, 198).
fn random_block(rng: &mut ChaCha8Rng) -> u32 {
    loop {
        let a: u32 = rng.gen_range(1..=223);
        if ![10, 100, 127, 169, 172, 192, 198].contains(&a) {
            return (a << 24) | (rng.gen_range(0..=255u32) << 16);
        }
    }
}

impl TupleModel {
    pub fn new(seed: u64, client_prefixes: u32, servers: u32, tcp_share: f64) -> TupleModel {
        let mut rng = stream(seed, purpose::HOSTS, 0);
        let cblocks: Vec<u32> = (0..40).map(|_| random_block(&mut rng)).collect();
        let sblocks: Vec<u32> = (0..60).map(|_| random_block(&mut rng)).collect();
        let prefixes: Vec<u32> = (0..client_prefixes)
            .map(|_| cblocks[rng.gen_range(0..cblocks.len())] | (rng.gen_range(0..=255u32) << 8))
            .collect();
        let servers: Vec<u32> = (0..servers)
            .map(|_| sblocks[rng.gen_range(0..sblocks.len())] | rng.gen_range(0x0001..0xfffeu32))
            .collect();
        TupleModel {
            prefix_cdf: zipf_cdf(prefixes.len()),
            server_cdf: zipf_cdf(servers.len()),
            prefixes,
            servers,
            tcp_share,
        }
    }

    /// Draws one flow's 5-tuple.
    pub fn tuple(&self, rng: &mut ChaCha8Rng) -> FiveTuple {
        let p = self.prefixes[pick(&self.prefix_cdf, rng.gen())];
        let u: f64 = rng.gen();
        let host = 1 + (253.0 * u * u) as u32;
        let src_ip = p | host;
        let dst_ip = self.servers[pick(&self.server_cdf, rng.gen())];
        let tcp = rng.gen::<f64>() < self.tcp_share;
        let r: f64 = rng.gen();
        let random_port = |rng: &mut ChaCha8Rng| rng.gen_range(1024..=65535u16);
        let dst_port = if tcp {
            match r {
                r if r < 0.45 => 443,
                r if r < 0.65 => 80,
                r if r < 0.68 => 8080,
                r if r < 0.70 => 22,
                r if r < 0.72 => 25,
                _ => random_port(rng),
            }
        } else {
            match r {
                r if r < 0.40 => 53,
                r if r < 0.70 => 443,
                r if r < 0.75 => 123,
                _ => random_port(rng),
            }
        };
        FiveTuple {
            src_ip,
            dst_ip,
            src_port: rng.gen_range(32768..=60999),
            dst_port,
            proto: if tcp { 6 } else { 17 },
        }
    }
}

/// A Fenwick tree of non-negative weights with proportional sampling.
struct Fenwick {
    tree: Vec<f64>,
    weights: Vec<f64>,
}

impl Fenwick {
    fn new(n: usize) -> Fenwick {
        Fenwick {
            tree: vec![0.0; n + 1],
            weights: vec![0.0; n],
        }
    }

    fn set(&mut self, i: usize, w: f64) {
        let delta = w - self.weights[i];
        self.weights[i] = w;
        let mut j = i + 1;
        while j < self.tree.len() {
            self.tree[j] += delta;
            j += j & j.wrapping_neg();
        }
    }

    fn total(&self) -> f64 {
        let mut s = 0.0;
        let mut j = self.weights.len();
        while j > 0 {
            s += self.tree[j];
            j &= j - 1;
        }
        s
    }

    /// The index whose cumulative weight interval holds `target`.
    fn find(&self, mut target: f64) -> usize {
        let n = self.weights.len();
        let mut pos = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < target {
                target -= self.tree[next];
                pos = next;
            }
            step >>= 1;
        }
        pos.min(n - 1)
    }
}

struct Active {
    flow: u32,
    remaining: u32,
}

struct Synthetic {
    model: TupleModel,
    seed: u64,
    alpha: f64,
    max_size: u32,
    sigma: f64,
    pick_rng: ChaCha8Rng,
    flow_rng: ChaCha8Rng,
    active: Vec<Active>,
    fenwick: Fenwick,
    total: f64,
    picks_since_total: u32,
    ipid: HashMap<u32, u16>,
    initialized: bool,
}

impl Synthetic {
    fn new(sc: &Scenario) -> Synthetic {
        let tc = &sc.traffic;
        let n = tc.active_flows as usize;
        Synthetic {
            model: TupleModel::new(sc.seed, tc.client_prefixes, tc.servers, tc.tcp_share),
            seed: sc.seed,
            alpha: tc.flow_size_alpha,
            max_size: tc.flow_size_max,
            sigma: tc.flow_weight_sigma,
            pick_rng: stream(sc.seed, purpose::TRAFFIC, 0),
            flow_rng: stream(sc.seed, purpose::TRAFFIC, 1),
            active: Vec::with_capacity(n),
            fenwick: Fenwick::new(n),
            total: 0.0,
            picks_since_total: 0,
            ipid: HashMap::new(),
            initialized: false,
        }
    }

    /// Draws a new flow: its tuple, size and rate weight.
    fn new_flow(&mut self, flows: &mut Vec<FiveTuple>) -> (Active, f64) {
        let rng = &mut self.flow_rng;
        let tuple = self.model.tuple(rng);
        let u: f64 = 1.0 - rng.gen::<f64>();
        let size = (u.powf(-1.0 / self.alpha).floor() as u64).clamp(1, self.max_size as u64) as u32;
        // Box-Muller for the log-normal weight.
        let (u1, u2): (f64, f64) = (1.0 - rng.gen::<f64>(), rng.gen());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let w = (self.sigma * z).exp();
        flows.push(tuple);
        (
            Active {
                flow: flows.len() as u32 - 1,
                remaining: size,
            },
            w,
        )
    }

    fn next_packet(&mut self, flows: &mut Vec<FiveTuple>) -> (u32, u16) {
        if !self.initialized {
            for i in 0..self.fenwick.weights.len() {
                let (a, w) = self.new_flow(flows);
                self.active.push(a);
                self.fenwick.set(i, w);
            }
            self.total = self.fenwick.total();
            self.initialized = true;
        }
        // Refresh the cached total now and then against float drift.
        self.picks_since_total += 1;
        if self.picks_since_total >= 4096 {
            self.total = self.fenwick.total();
            self.picks_since_total = 0;
        }
        let target = self.pick_rng.gen::<f64>() * self.total;
        let slot = self.fenwick.find(target);
        let flow = self.active[slot].flow;
        let src = flows[flow as usize].src_ip;
        let seed = self.seed;
        let ctr = self
            .ipid
            .entry(src)
            .or_insert_with(|| mix(seed, purpose::HOSTS, src as u64, 1) as u16);
        let ipid = *ctr;
        *ctr = ctr.wrapping_add(1);
        self.active[slot].remaining -= 1;
        if self.active[slot].remaining == 0 {
            let (a, w) = self.new_flow(flows);
            let old = self.fenwick.weights[slot];
            self.active[slot] = a;
            self.fenwick.set(slot, w);
            self.total += w - old;
        }
        (flow, ipid)
    }
}

/// Fraction helper for docs and tests: share of flows and packets in flows
/// of at least `min` packets, over a flow-size list.
pub fn heavy_share(sizes: &[u64], min: u64) -> (f64, f64) {
    let flows = sizes.len() as f64;
    let pkts: u64 = sizes.iter().sum();
    let big: Vec<&u64> = sizes.iter().filter(|s| **s >= min).collect();
    let big_pkts: u64 = big.iter().copied().sum();
    (big.len() as f64 / flows, big_pkts as f64 / pkts as f64)
}

/// Hash-derived uniform for a quantity keyed by entity and index.
pub fn keyed_unit(seed: u64, purpose: u64, entity: u64, index: u64) -> f64 {
    unit(mix(seed, purpose, entity, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_is_heavy_tailed_tcp_dominated_and_ipids_collide() {
        let mut sc = Scenario::small_chain();
        sc.traffic.active_flows = 512;
        let mut src = Source::new(&sc).unwrap();
        let mut sizes: HashMap<u32, u64> = HashMap::new();
        let mut ipids: HashMap<u16, std::collections::HashSet<u32>> = HashMap::new();
        let mut last = 0;
        let n = 200_000;
        for _ in 0..n {
            let p = src.next(u64::MAX).unwrap();
            assert!(p.t_ns >= last);
            last = p.t_ns;
            *sizes.entry(p.flow).or_default() += 1;
            ipids
                .entry(p.ipid)
                .or_default()
                .insert(src.flows()[p.flow as usize].src_ip);
        }
        // Mean rate 0.4 Mpps: 200k packets in ~0.5 s.
        let secs = last as f64 / 1e9;
        assert!((0.45..0.55).contains(&secs), "{secs}");
        let s: Vec<u64> = sizes.values().copied().collect();
        // Most flows are short, most packets are in long flows.
        let short = s.iter().filter(|x| **x <= 3).count() as f64 / s.len() as f64;
        assert!(short > 0.6, "share of flows of <= 3 packets {short}");
        let (flows_big, pkts_big) = heavy_share(&s, 50);
        assert!(flows_big < 0.1, "share of flows >= 50 packets {flows_big}");
        assert!(
            pkts_big > 0.5,
            "share of packets in flows >= 50 packets {pkts_big}"
        );
        let tcp =
            src.flows().iter().filter(|f| f.proto == 6).count() as f64 / src.flows().len() as f64;
        assert!((0.8..0.9).contains(&tcp), "{tcp}");
        let colliding = ipids.values().filter(|hosts| hosts.len() > 1).count();
        assert!(colliding > 1000, "IPIDs shared across hosts: {colliding}");
    }

    #[test]
    fn fenwick_samples_proportionally() {
        let mut f = Fenwick::new(5);
        for (i, w) in [1.0, 0.0, 3.0, 0.0, 4.0].iter().enumerate() {
            f.set(i, *w);
        }
        assert_eq!(f.total(), 8.0);
        assert_eq!(f.find(0.5), 0);
        assert_eq!(f.find(1.5), 2);
        assert_eq!(f.find(3.9), 2);
        assert_eq!(f.find(4.1), 4);
        assert_eq!(f.find(8.0), 4);
    }
}
