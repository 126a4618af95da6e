//! Scenario files: the NF graph, the traffic, the background perturbations,
//! the injected faults and the victim rule, as one TOML document
//! (format documented in `docs/scenarios.md`).
//!
//! Every field has a default, so a scenario file states only what differs
//! from the paper's set-up; every field can also be overridden from the
//! command line with a dotted key (`faults.burst.flows=3`,
//! `nf.firewall.peak_rate=0.3Mpps`, see [`Scenario::set`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// Errors of scenario loading, overriding and validation.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read scenario: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid scenario: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("override `{key}`: {message}")]
    Override { key: String, message: String },
    #[error("scenario `{name}`: {message}")]
    Invalid { name: String, message: String },
    #[error("unknown scenario `{0}`: not a preset (paper-moderate, paper-high, small-chain) and no such file")]
    Unknown(String),
}

/// A simulated duration in nanoseconds, written `"5s"`, `"250ms"`, `"800us"`
/// or `"100ns"` in files and on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(pub u64);

impl SimDuration {
    pub fn ns(self) -> u64 {
        self.0
    }

    /// Parses `"5s"`, `"1.5ms"`, `"800us"`, `"100ns"`.
    pub fn parse(s: &str) -> Result<SimDuration, String> {
        collector::units::parse_duration_ns(s, collector::units::BareNumber::Reject)
            .map(SimDuration)
    }
}

impl std::fmt::Display for SimDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        if n != 0 && n.is_multiple_of(1_000_000_000) {
            write!(f, "{}s", n / 1_000_000_000)
        } else if n != 0 && n.is_multiple_of(1_000_000) {
            write!(f, "{}ms", n / 1_000_000)
        } else if n != 0 && n.is_multiple_of(1_000) {
            write!(f, "{}us", n / 1_000)
        } else {
            write!(f, "{n}ns")
        }
    }
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SimDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A packet rate in packets per second, written `"1.2Mpps"`, `"50kpps"`,
/// `"300000pps"` or as a plain number of packets per second.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Rate(pub f64);

impl Rate {
    pub fn pps(self) -> f64 {
        self.0
    }

    /// Parses `"1.2Mpps"`, `"50kpps"`, `"300000pps"`, `"300000"`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let (num, mult) = if let Some(n) = lower.strip_suffix("mpps") {
            (n.to_string(), 1e6)
        } else if let Some(n) = lower.strip_suffix("kpps") {
            (n.to_string(), 1e3)
        } else if let Some(n) = lower.strip_suffix("pps") {
            (n.to_string(), 1.0)
        } else {
            (lower.clone(), 1.0)
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("rate `{t}`: expected e.g. `1.2Mpps`, `50kpps` or `300000`"))?;
        if !v.is_finite() || v <= 0.0 {
            return Err(format!("rate `{t}` must be positive"));
        }
        Ok(Rate(v * mult))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 >= 1e6 {
            write!(f, "{}Mpps", self.0 / 1e6)
        } else if self.0 >= 1e3 {
            write!(f, "{}kpps", self.0 / 1e3)
        } else {
            write!(f, "{}pps", self.0)
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(v) if v.is_finite() && v > 0.0 => Ok(Rate(v)),
            Raw::N(v) => Err(serde::de::Error::custom(format!(
                "rate {v} must be positive"
            ))),
            Raw::S(s) => Rate::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// A whole scenario. See `docs/scenarios.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default = "d_name")]
    pub name: String,
    /// Simulated time of traffic; the simulation then drains in-flight packets.
    #[serde(default = "d_duration")]
    pub duration: SimDuration,
    #[serde(default = "d_seed")]
    pub seed: u64,
    #[serde(default)]
    pub traffic: TrafficConfig,
    /// Defaults for every NF type (each type may override some).
    #[serde(default)]
    pub nf_defaults: NfDefaults,
    /// NF types in the order packets meet them; instances are named
    /// `{prefix}{1..=instances}`.
    #[serde(default = "d_nfs")]
    pub nf: Vec<NfTypeConfig>,
    #[serde(default)]
    pub trace: TraceConfig,
    #[serde(default)]
    pub background: BackgroundConfig,
    #[serde(default)]
    pub faults: FaultsConfig,
    #[serde(default)]
    pub victims: VictimConfig,
}

fn d_name() -> String {
    "custom".into()
}
fn d_duration() -> SimDuration {
    SimDuration(5_000_000_000)
}
fn d_seed() -> u64 {
    1
}
fn d_true() -> bool {
    true
}

/// How packets are spaced at the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Exponential gaps (a Poisson process) at the configured rate.
    Poisson,
    /// Equal gaps at the configured rate.
    Constant,
}

/// Where the traffic comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficKind {
    /// The CAIDA-style synthetic model of `docs/traffic.md`.
    Synthetic,
    /// Replay of `traffic.pcap`.
    Pcap,
}

/// How a replayed pcap is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PcapTiming {
    /// Packets in file order at `traffic.rate` with `traffic.arrivals` gaps.
    Rate,
    /// The file's own timestamps (relative to its first packet), scaled so
    /// the mean rate equals `traffic.rate`.
    Scaled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficConfig {
    pub kind: TrafficKind,
    /// Aggregate packet rate at the source.
    pub rate: Rate,
    pub arrivals: Arrivals,
    /// The source transmits the packets of each window of this length as one
    /// tx batch at the window's end (as a generator's tx burst would); 0 makes
    /// every packet its own batch.
    pub source_batch_ns: u64,
    /// NF type the source feeds (default: the first `[[nf]]`).
    pub to: Option<String>,
    /// Pareto shape of flow sizes (packets); smaller is heavier-tailed.
    pub flow_size_alpha: f64,
    /// Largest flow, packets (truncation of the Pareto tail).
    pub flow_size_max: u32,
    /// Number of concurrently active flows the source interleaves.
    pub active_flows: u32,
    /// Sigma of the log-normal per-flow rate weight.
    pub flow_weight_sigma: f64,
    /// Share of flows that are TCP; the rest are UDP.
    pub tcp_share: f64,
    /// Number of client /24 prefixes; popularity is Zipf(1).
    pub client_prefixes: u32,
    /// Number of server addresses; popularity is Zipf(1).
    pub servers: u32,
    /// pcap to replay when `kind = "pcap"`.
    pub pcap: Option<PathBuf>,
    pub pcap_timing: PcapTiming,
    /// Replay the pcap again (same 5-tuples and IPIDs) until `duration` ends.
    pub pcap_loop: bool,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            kind: TrafficKind::Synthetic,
            rate: Rate(1.2e6),
            arrivals: Arrivals::Poisson,
            source_batch_ns: 4_000,
            to: None,
            flow_size_alpha: 0.9,
            flow_size_max: 100_000,
            active_flows: 2_048,
            flow_weight_sigma: 1.0,
            tcp_share: 0.85,
            client_prefixes: 2_000,
            servers: 5_000,
            pcap: None,
            pcap_timing: PcapTiming::Rate,
            pcap_loop: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfDefaults {
    /// Input queue (rx ring) capacity, packets; drop-tail.
    pub queue_capacity: u32,
    /// Burst size the poll loop requests.
    pub burst: u16,
    /// Delay from an upstream tx to the packet's arrival in the queue.
    pub link_delay_ns: u64,
    /// Per-packet service time is `1/peak_rate · (1 ± U·service_jitter)`.
    pub service_jitter: f64,
    /// Each NF's speed drifts per time slot by a factor `1 ± U·rate_jitter`.
    pub rate_jitter: f64,
    pub rate_slot_ns: u64,
    /// Fixed cost of one non-empty poll, added to each batch.
    pub batch_overhead_ns: u64,
}

impl Default for NfDefaults {
    fn default() -> Self {
        NfDefaults {
            queue_capacity: 1024,
            burst: 32,
            link_delay_ns: 500,
            service_jitter: 0.10,
            rate_jitter: 0.05,
            rate_slot_ns: 1_000_000,
            batch_overhead_ns: 0,
        }
    }
}

/// What an NF does to packets besides delaying them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    /// Leaves headers unchanged.
    Forward,
    /// Source NAT: rewrites the source address to the instance's public
    /// address and the source port to a per-flow port.
    Nat,
}

/// One NF type and its instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfTypeConfig {
    /// Type name (`firewall`).
    pub name: String,
    /// Instance name prefix (`fw` → `fw1`, `fw2`, ...); default: the type name.
    #[serde(default)]
    pub prefix: Option<String>,
    pub instances: u32,
    /// Peak processing rate of one instance (full batches, no jitter).
    pub peak_rate: Rate,
    #[serde(default = "d_forward")]
    pub behavior: Behavior,
    /// Next NF type for packets no rule matches, or `"sink"`.
    pub next: String,
    /// Steering rules, first match wins.
    #[serde(default)]
    pub rule: Vec<RouteRule>,
    #[serde(default)]
    pub queue_capacity: Option<u32>,
    #[serde(default)]
    pub burst: Option<u16>,
}

fn d_forward() -> Behavior {
    Behavior::Forward
}

/// Steers packets whose 5-tuple (as it leaves this NF) matches to `next`.
/// Absent fields match anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    #[serde(default)]
    pub proto: Option<u8>,
    /// CIDR prefix, e.g. `"10.0.0.0/8"`.
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub dst: Option<String>,
    /// Inclusive port range `[lo, hi]`.
    #[serde(default)]
    pub src_port: Option<[u16; 2]>,
    #[serde(default)]
    pub dst_port: Option<[u16; 2]>,
    pub next: String,
}

/// Which streams carry full 5-tuples and how clocks are recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// Names of instances or types (`source`, `sink`, `nat`, `fw2`) whose
    /// streams carry 5-tuples, or `"all"`. Default: source tx and sink rx,
    /// every other stream records IPIDs only, as in the paper.
    pub tuples: Vec<String>,
    /// Virtual TSC frequency: records carry `round(ns · tsc_ghz)`.
    pub tsc_ghz: f64,
    /// A clock anchor on every stream at each multiple of this interval.
    pub anchor_interval_ns: u64,
    pub host: String,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            tuples: vec!["source".into(), "sink".into()],
            tsc_ghz: 2.6,
            anchor_interval_ns: 1_000_000,
            host: "sim".into(),
        }
    }
}

/// Natural perturbations (not faults): rare short stalls of each instance
/// and the per-slot rate drift of [`NfDefaults::rate_jitter`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackgroundConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Mean stalls per second per instance (Poisson).
    pub stall_rate_hz: f64,
    pub stall_min_ns: u64,
    pub stall_max_ns: u64,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            enabled: true,
            stall_rate_hz: 2.0,
            stall_min_ns: 20_000,
            stall_max_ns: 150_000,
        }
    }
}

/// Kinds of injected problems (paper §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    Burst,
    Interrupt,
    Bug,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Kinds injected in turn.
    pub kinds: Vec<FaultKind>,
    /// Number of injections; 0 = as many as fit in the duration.
    pub count: u32,
    pub first_at_ns: u64,
    /// Time between consecutive injection starts.
    pub spacing_ns: u64,
    /// Each start is delayed by up to this much at random.
    pub start_jitter_ns: u64,
    pub burst: BurstConfig,
    pub interrupt: InterruptConfig,
    pub bug: BugConfig,
}

impl Default for FaultsConfig {
    fn default() -> Self {
        FaultsConfig {
            enabled: true,
            kinds: vec![FaultKind::Burst, FaultKind::Interrupt, FaultKind::Bug],
            count: 0,
            first_at_ns: 100_000_000,
            spacing_ns: 300_000_000,
            start_jitter_ns: 50_000_000,
            burst: BurstConfig::default(),
            interrupt: InterruptConfig::default(),
            bug: BugConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BurstConfig {
    /// Flows that burst at once.
    pub flows: u32,
    pub min_packets: u32,
    pub max_packets: u32,
    /// Sending rate of each bursting flow.
    pub rate: Rate,
}

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            flows: 5,
            min_packets: 500,
            max_packets: 2500,
            rate: Rate(0.3e6),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterruptConfig {
    pub min_ns: u64,
    pub max_ns: u64,
    /// NF types eligible for the interrupt; empty = every instance.
    pub nf_types: Vec<String>,
}

impl Default for InterruptConfig {
    fn default() -> Self {
        InterruptConfig {
            min_ns: 500_000,
            max_ns: 1_000_000,
            nf_types: vec![],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BugConfig {
    /// NF type one instance of which has the bug.
    pub nf_type: String,
    /// Processing rate of the buggy instance for triggering packets.
    pub rate: Rate,
    /// Number of triggering flows per injection.
    pub flows: u32,
    pub min_packets: u32,
    pub max_packets: u32,
    /// Sending rate of each triggering flow.
    pub flow_rate: Rate,
    /// Triggering flows go from `src` to `dst` (TCP), ports counting up from
    /// the bases until the flow reaches the buggy instance (paper §6.4).
    pub src: String,
    pub dst: String,
    pub src_port_base: u16,
    pub dst_port_base: u16,
    /// The buggy instance (e.g. `fw2`); default: a random instance of
    /// `nf_type` per injection.
    pub instance: Option<String>,
    /// Steer the triggering flows instead of searching for ports: flow `j`
    /// of an injection is `src_port_base + j → dst_port_base + j`, and the
    /// load balancer in front of `nf_type` sends it to the buggy instance
    /// (an operator's steering rule for those 5-tuples, as in the paper's
    /// §6.4 set-up where all nine flows reach Firewall 2).
    pub steer: bool,
}

impl Default for BugConfig {
    fn default() -> Self {
        BugConfig {
            nf_type: "firewall".into(),
            rate: Rate(0.05e6),
            flows: 2,
            min_packets: 50,
            max_packets: 150,
            flow_rate: Rate(10e3),
            src: "100.0.0.1".into(),
            dst: "32.0.0.1".into(),
            src_port_base: 2000,
            dst_port_base: 6000,
            instance: None,
            steer: false,
        }
    }
}

/// The counterfactual victim rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VictimConfig {
    /// End-to-end latency threshold: `"p99"` (percentile of the run without
    /// injections) or a duration such as `"500us"`.
    pub threshold: String,
    /// Packets sent this long before an injection starts still count as its
    /// potential victims (they may be queued when it starts).
    pub pre_ns: u64,
    /// A fault's labelling window ends this long after the injection ends
    /// (or at the next injection's window, whichever comes first).
    pub settle_ns: u64,
}

impl Default for VictimConfig {
    fn default() -> Self {
        VictimConfig {
            threshold: "p99".into(),
            pre_ns: 2_000_000,
            settle_ns: 100_000_000,
        }
    }
}

/// The parsed victim threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    Percentile(f64),
    Absolute(u64),
}

impl VictimConfig {
    pub fn parse_threshold(&self) -> Result<Threshold, String> {
        let t = self.threshold.trim();
        if let Some(p) = t.strip_prefix('p') {
            let v: f64 = p.parse().map_err(|_| {
                format!("victims.threshold `{t}`: expected `p99`, `p99.9` or a duration")
            })?;
            if !(0.0..100.0).contains(&v) {
                return Err(format!(
                    "victims.threshold `{t}`: percentile must be in [0, 100)"
                ));
            }
            Ok(Threshold::Percentile(v))
        } else {
            SimDuration::parse(t).map(|d| Threshold::Absolute(d.ns()))
        }
    }
}

fn d_nfs() -> Vec<NfTypeConfig> {
    Scenario::paper_moderate().nf
}

const PAPER_MODERATE: &str = include_str!("../scenarios/paper-moderate.toml");
const PAPER_HIGH: &str = include_str!("../scenarios/paper-high.toml");
const SMALL_CHAIN: &str = include_str!("../scenarios/small-chain.toml");

impl Scenario {
    /// The paper's Fig. 10 chain at 1.2 Mpps with §6.2 injections.
    pub fn paper_moderate() -> Scenario {
        Self::from_toml_str(PAPER_MODERATE, Path::new("<builtin paper-moderate>"))
            .expect("built-in scenario paper-moderate parses")
    }

    /// The same chain at 1.6 Mpps (paper §6.5), no injections.
    pub fn paper_high() -> Scenario {
        Self::from_toml_str(PAPER_HIGH, Path::new("<builtin paper-high>"))
            .expect("built-in scenario paper-high parses")
    }

    /// A three-instance chain for quick tests and examples.
    pub fn small_chain() -> Scenario {
        Self::from_toml_str(SMALL_CHAIN, Path::new("<builtin small-chain>"))
            .expect("built-in scenario small-chain parses")
    }

    /// Parses a scenario document; `path` is only used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let sc: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        sc.validate()?;
        Ok(sc)
    }

    /// Reads and validates a scenario file. Relative `traffic.pcap` paths
    /// are resolved against the file's directory.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut sc = Self::from_toml_str(&text, path)?;
        if let Some(p) = &sc.traffic.pcap {
            if p.is_relative() {
                if let Some(dir) = path.parent() {
                    sc.traffic.pcap = Some(dir.join(p));
                }
            }
        }
        Ok(sc)
    }

    /// A preset name (`paper-moderate`, `paper-high`, `small-chain`) or a file.
    pub fn by_name_or_path(s: &str) -> Result<Scenario, ScenarioError> {
        match s {
            "paper-moderate" | "moderate" => Ok(Self::paper_moderate()),
            "paper-high" | "high" => Ok(Self::paper_high()),
            "small-chain" | "small" => Ok(Self::small_chain()),
            _ => {
                let p = Path::new(s);
                if p.exists() {
                    Self::from_file(p)
                } else {
                    Err(ScenarioError::Unknown(s.to_string()))
                }
            }
        }
    }

    /// Overrides one field by dotted key, e.g. `faults.burst.flows`, `seed`,
    /// `nf.firewall.peak_rate` (an `[[nf]]` entry is addressed by its type
    /// name). `value` is a TOML value (`3`, `"0.3Mpps"`, `true`); a bare word
    /// that is not valid TOML is taken as a string (`0.3Mpps`, `5s`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ScenarioError> {
        self.set_all([(key, value)])
    }

    /// Applies several overrides, then validates once (so overrides that
    /// only make sense together, like `traffic.kind` and `traffic.pcap`,
    /// can be given in any order).
    pub fn set_all<'a, I>(&mut self, kvs: I) -> Result<(), ScenarioError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut root = toml::Value::try_from(&*self).map_err(|e| ScenarioError::Override {
            key: String::new(),
            message: e.to_string(),
        })?;
        let mut keys = Vec::new();
        for (k, v) in kvs {
            apply_override(&mut root, k, v)?;
            keys.push(k);
        }
        let sc: Scenario =
            root.try_into()
                .map_err(|e: toml::de::Error| ScenarioError::Override {
                    key: keys.join(", "),
                    message: e.to_string(),
                })?;
        sc.validate()?;
        *self = sc;
        Ok(())
    }

    /// Checks references and ranges; called by every constructor.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |message: String| ScenarioError::Invalid {
            name: self.name.clone(),
            message,
        };
        if self.nf.is_empty() {
            return Err(bad("no [[nf]] types".into()));
        }
        let names: Vec<&str> = self.nf.iter().map(|n| n.name.as_str()).collect();
        for (i, n) in self.nf.iter().enumerate() {
            if names[..i].contains(&n.name.as_str()) {
                return Err(bad(format!("NF type `{}` defined twice", n.name)));
            }
            if n.name == "sink" || n.name == "source" {
                return Err(bad(format!("`{}` is reserved", n.name)));
            }
            if n.instances == 0 || n.instances > 1000 {
                return Err(bad(format!("nf `{}`: instances must be 1..=1000", n.name)));
            }
            let targets = std::iter::once(&n.next).chain(n.rule.iter().map(|r| &r.next));
            for t in targets {
                if t != "sink" && !names.contains(&t.as_str()) {
                    return Err(bad(format!(
                        "nf `{}`: next `{t}` is not an NF type or `sink`",
                        n.name
                    )));
                }
            }
            for r in &n.rule {
                for p in [&r.src, &r.dst].into_iter().flatten() {
                    parse_prefix(p).map_err(|m| bad(format!("nf `{}` rule: {m}", n.name)))?;
                }
            }
            if n.burst == Some(0) || n.queue_capacity == Some(0) {
                return Err(bad(format!(
                    "nf `{}`: burst and queue_capacity must be positive",
                    n.name
                )));
            }
        }
        if let Some(to) = &self.traffic.to {
            if !names.contains(&to.as_str()) {
                return Err(bad(format!("traffic.to `{to}` is not an NF type")));
            }
        }
        // Acyclic: a DFS colouring over types.
        fn visit(i: usize, sc: &Scenario, state: &mut [u8]) -> bool {
            if state[i] == 1 {
                return false;
            }
            if state[i] == 2 {
                return true;
            }
            state[i] = 1;
            let n = &sc.nf[i];
            for t in std::iter::once(&n.next).chain(n.rule.iter().map(|r| &r.next)) {
                if let Some(j) = sc.nf.iter().position(|x| &x.name == t) {
                    if !visit(j, sc, state) {
                        return false;
                    }
                }
            }
            state[i] = 2;
            true
        }
        let mut state = vec![0u8; self.nf.len()];
        for i in 0..self.nf.len() {
            if !visit(i, self, &mut state) {
                return Err(bad("the NF graph has a cycle".into()));
            }
        }
        let d = &self.nf_defaults;
        if d.queue_capacity == 0 || d.burst == 0 {
            return Err(bad(
                "nf_defaults: burst and queue_capacity must be positive".into(),
            ));
        }
        if !(0.0..1.0).contains(&d.service_jitter) || !(0.0..1.0).contains(&d.rate_jitter) {
            return Err(bad("nf_defaults: jitters must be in [0, 1)".into()));
        }
        if d.rate_slot_ns == 0 {
            return Err(bad("nf_defaults.rate_slot_ns must be positive".into()));
        }
        let t = &self.traffic;
        if t.flow_size_alpha.is_nan()
            || t.flow_size_alpha <= 0.0
            || t.flow_size_max == 0
            || t.active_flows == 0
        {
            return Err(bad(
                "traffic: flow_size_alpha, flow_size_max, active_flows must be positive".into(),
            ));
        }
        if !(0.0..=1.0).contains(&t.tcp_share) || t.client_prefixes == 0 || t.servers == 0 {
            return Err(bad(
                "traffic: tcp_share in [0,1], client_prefixes and servers positive".into(),
            ));
        }
        if t.kind == TrafficKind::Pcap && t.pcap.is_none() {
            return Err(bad(
                "traffic.kind = \"pcap\" needs traffic.pcap = \"FILE\"".into()
            ));
        }
        if self.trace.tsc_ghz.is_nan()
            || self.trace.tsc_ghz <= 0.0
            || self.trace.anchor_interval_ns == 0
        {
            return Err(bad(
                "trace: tsc_ghz and anchor_interval_ns must be positive".into(),
            ));
        }
        let b = &self.background;
        if b.stall_rate_hz < 0.0 || b.stall_min_ns > b.stall_max_ns {
            return Err(bad(
                "background: stall_rate_hz >= 0 and stall_min_ns <= stall_max_ns".into(),
            ));
        }
        let f = &self.faults;
        if f.enabled && f.kinds.is_empty() {
            return Err(bad("faults.kinds is empty".into()));
        }
        if f.spacing_ns == 0 {
            return Err(bad("faults.spacing_ns must be positive".into()));
        }
        if f.burst.min_packets > f.burst.max_packets
            || f.bug.min_packets > f.bug.max_packets
            || f.interrupt.min_ns > f.interrupt.max_ns
        {
            return Err(bad("faults: a min exceeds its max".into()));
        }
        if f.enabled
            && f.kinds.contains(&FaultKind::Bug)
            && !names.contains(&f.bug.nf_type.as_str())
        {
            return Err(bad(format!(
                "faults.bug.nf_type `{}` is not an NF type",
                f.bug.nf_type
            )));
        }
        if let Some(inst) = &f.bug.instance {
            let of_type = self.nf.iter().any(|n| {
                n.name == f.bug.nf_type
                    && inst
                        .strip_prefix(Self::prefix_of(n))
                        .and_then(|i| i.parse::<u32>().ok())
                        .is_some_and(|i| (1..=n.instances).contains(&i))
            });
            if !of_type {
                return Err(bad(format!(
                    "faults.bug.instance `{inst}` is not an instance of type `{}`",
                    f.bug.nf_type
                )));
            }
        }
        for ty in &f.interrupt.nf_types {
            if !names.contains(&ty.as_str()) {
                return Err(bad(format!(
                    "faults.interrupt.nf_types: `{ty}` is not an NF type"
                )));
            }
        }
        parse_ipv4(&f.bug.src).map_err(|m| bad(format!("faults.bug.src: {m}")))?;
        parse_ipv4(&f.bug.dst).map_err(|m| bad(format!("faults.bug.dst: {m}")))?;
        self.victims.parse_threshold().map_err(bad)?;
        Ok(())
    }

    /// The NF type the source feeds.
    pub fn entry_type(&self) -> &str {
        self.traffic.to.as_deref().unwrap_or(&self.nf[0].name)
    }

    /// Instance name prefix of a type.
    pub fn prefix_of(n: &NfTypeConfig) -> &str {
        n.prefix.as_deref().unwrap_or(&n.name)
    }

    /// A copy with injections disabled (the counterfactual baseline).
    pub fn without_faults(&self) -> Scenario {
        let mut s = self.clone();
        s.faults.enabled = false;
        s
    }
}

/// Sets one dotted key in a scenario's TOML tree.
fn apply_override(root: &mut toml::Value, key: &str, value: &str) -> Result<(), ScenarioError> {
    let err = |message: String| ScenarioError::Override {
        key: key.to_string(),
        message,
    };
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").expect("key v present"),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            toml::Value::Table(t) => {
                if last {
                    t.insert((*part).to_string(), parsed);
                    break;
                }
                t.entry((*part).to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx = a
                    .iter()
                    .position(|v| v.get("name").and_then(|n| n.as_str()) == Some(part));
                let idx = match idx {
                    Some(i) => i,
                    None => part
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < a.len())
                        .ok_or_else(|| err(format!("no entry named or numbered `{part}`")))?,
                };
                if last {
                    return Err(err("cannot replace a whole list entry".into()));
                }
                &mut a[idx]
            }
            _ => return Err(err(format!("`{part}` is not a table"))),
        };
    }
    Ok(())
}

/// Parses a dotted-quad IPv4 address into host order.
pub fn parse_ipv4(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<std::net::Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| format!("`{s}` is not an IPv4 address"))
}

/// Parses `a.b.c.d/len` into (network, mask), host order.
pub fn parse_prefix(s: &str) -> Result<(u32, u32), String> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let addr = parse_ipv4(a)?;
    let len: u32 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("`{s}`: prefix length must be 0..=32"))?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((addr & mask, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_differ_in_rate() {
        let m = Scenario::paper_moderate();
        let h = Scenario::paper_high();
        assert_eq!(m.traffic.rate.pps(), 1.2e6);
        assert_eq!(h.traffic.rate.pps(), 1.6e6);
        let inst: u32 = m.nf.iter().map(|n| n.instances).sum();
        assert_eq!(inst, 16);
        Scenario::small_chain();
    }

    #[test]
    fn units_parse() {
        assert_eq!(SimDuration::parse("5s").unwrap().ns(), 5_000_000_000);
        assert_eq!(SimDuration::parse("1.5ms").unwrap().ns(), 1_500_000);
        assert_eq!(SimDuration::parse("800us").unwrap().ns(), 800_000);
        assert!(SimDuration::parse("5").is_err());
        assert_eq!(Rate::parse("1.2Mpps").unwrap().pps(), 1.2e6);
        assert_eq!(Rate::parse("50kpps").unwrap().pps(), 50e3);
        assert!(Rate::parse("-3").is_err());
        assert_eq!(SimDuration(1_500_000).to_string(), "1500us");
    }

    #[test]
    fn overrides_reach_nested_and_listed_fields() {
        let mut s = Scenario::paper_moderate();
        s.set("faults.burst.flows", "3").unwrap();
        s.set("nf.firewall.peak_rate", "0.3Mpps").unwrap();
        s.set("duration", "2s").unwrap();
        assert_eq!(s.faults.burst.flows, 3);
        assert_eq!(
            s.nf.iter()
                .find(|n| n.name == "firewall")
                .unwrap()
                .peak_rate
                .pps(),
            0.3e6
        );
        assert_eq!(s.duration.ns(), 2_000_000_000);
        assert!(s.set("faults.burst.nonsense", "1").is_err());
        assert!(s.set("nf.nosuch.peak_rate", "1").is_err());
    }

    #[test]
    fn invalid_graph_is_rejected_with_reason() {
        let mut s = Scenario::small_chain();
        s.nf[0].next = "nowhere".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("nowhere"), "{e}");
        let mut s = Scenario::small_chain();
        let first = s.nf[0].name.clone();
        let last = s.nf.len() - 1;
        s.nf[last].next = first;
        assert!(s.validate().unwrap_err().to_string().contains("cycle"));
    }
}
