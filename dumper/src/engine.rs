//! The dumper's threads: the main thread discovers rings, owns the trace
//! writer, syncs and commits; crossbeam worker threads drain rings.

use crate::sink::{FaultPlan, FaultyFile};
use collector::ring::{Committer, Consumer, Observer, RingError, TrustPolicy, RING_SUFFIX};
use collector::{LossCounters, Record, StreamId, StreamInfo, TraceMeta};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracefile::{AppendReport, TraceError, TraceWriter, WriterStats};

/// How to run the dumper.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory holding `*.ring` files (polled for new ones).
    pub rings_dir: PathBuf,
    /// Trace file: continued if it already holds a trace (a restart after a
    /// crash), created otherwise.
    pub out: PathBuf,
    /// Start a new file even if `out` holds a trace.
    pub overwrite: bool,
    /// How often written chunks are fsynced and ring tails committed.
    pub sync_interval: Duration,
    /// How often `rings_dir` is scanned for new or removed rings.
    pub scan_interval: Duration,
    /// How long an idle worker waits before polling its rings again (it
    /// backs off up to 8 times this while its rings stay empty).
    pub idle_sleep: Duration,
    /// Worker threads draining rings (at least 1).
    pub workers: usize,
    /// Records taken from one ring per drain.
    pub drain_batch: usize,
    /// Records per stream gathered into one chunk (up to a sync).
    pub chunk_records: usize,
    /// Attempts (one per sync interval) to write a stream's records before
    /// a persistently failing disk makes the dumper drop them as
    /// `lost_write` (so the ring can move on). Until then they stay
    /// uncommitted in the ring.
    pub write_attempts: u32,
    /// Which ring files to trust.
    pub trust: TrustPolicy,
    /// Inject disk faults into the output (tests; needs a new file).
    pub faults: Option<FaultPlan>,
    /// Show a live progress line on stderr when it is a terminal.
    pub progress: bool,
    /// The NF graph (with peak rates when known) written into the trace's
    /// metadata when the trace is created (see [`crate::read_topology`]); a
    /// continued trace keeps the metadata it has.
    pub topology: Option<collector::Topology>,
}

impl Config {
    pub fn new(rings_dir: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Config {
        Config {
            rings_dir: rings_dir.into(),
            out: out.into(),
            overwrite: false,
            sync_interval: Duration::from_millis(200),
            scan_interval: Duration::from_millis(250),
            idle_sleep: Duration::from_millis(1),
            workers: 2,
            drain_batch: 4096,
            chunk_records: 4096,
            write_attempts: 3,
            trust: TrustPolicy::current_user(),
            faults: None,
            progress: false,
            topology: None,
        }
    }
}

/// Errors that stop the dumper. Ring problems and recoverable write
/// failures do not: they are reported in [`DumpSummary`].
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("rings directory {path}: {source}")]
    RingsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{path}: fsync failed, ring tails not committed (restart to rewrite): {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a dumper worker thread panicked")]
    WorkerPanicked,
    #[error("topology file {path}: {reason}")]
    Topology { path: PathBuf, reason: String },
}

/// What one stream got this session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    pub info: StreamInfo,
    pub ring: PathBuf,
    /// Records and packets written this session.
    pub records: u64,
    pub packets: u64,
    /// Cumulative loss counters last written for the stream.
    pub loss: LossCounters,
}

/// What a dumper session did.
#[derive(Clone, Debug, Default)]
pub struct DumpSummary {
    pub out: PathBuf,
    pub elapsed: Duration,
    pub records: u64,
    pub packets: u64,
    /// Bytes appended to the trace this session.
    pub bytes: u64,
    pub chunks: u64,
    /// Records already on file (re-delivered after a restart) and skipped.
    pub duplicates_skipped: u64,
    /// Records lost to failed writes this session.
    pub lost_write: u64,
    pub write_errors: Vec<String>,
    /// Rings refused or found corrupt, with the reason.
    pub ring_errors: Vec<String>,
    pub streams: Vec<StreamSummary>,
    /// Present when an existing trace was continued.
    pub appended: Option<AppendReport>,
}

impl DumpSummary {
    /// True when nothing went wrong that the operator should look at.
    pub fn clean(&self) -> bool {
        self.ring_errors.is_empty() && self.write_errors.is_empty()
    }

    /// The summary as JSON (for scripts: `microscope dump --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64();
        serde_json::json!({
            "out": self.out,
            "elapsed_s": secs,
            "records": self.records,
            "packets": self.packets,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "records_per_s": if secs > 0.0 { self.records as f64 / secs } else { 0.0 },
            "packets_per_s": if secs > 0.0 { self.packets as f64 / secs } else { 0.0 },
            "bytes_per_packet": if self.packets > 0 { self.bytes as f64 / self.packets as f64 } else { 0.0 },
            "duplicates_skipped": self.duplicates_skipped,
            "lost_write": self.lost_write,
            "write_errors": self.write_errors,
            "ring_errors": self.ring_errors,
            "appended": self.appended.as_ref().map(|a| serde_json::json!({
                "valid_end": a.valid_end,
                "truncated_bytes": a.truncated_bytes,
                "footer_removed": a.footer_removed,
                "chunks": a.chunks,
            })),
            "streams": self.streams.iter().map(|s| serde_json::json!({
                "info": s.info,
                "ring": s.ring,
                "records": s.records,
                "packets": s.packets,
                "loss": s.loss,
            })).collect::<Vec<_>>(),
        })
    }
}

impl std::fmt::Display for DumpSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "trace: {}", self.out.display())?;
        if let Some(a) = &self.appended {
            writeln!(
                f,
                "continued an existing trace: {} valid chunks, {} torn bytes cut{}",
                a.chunks,
                a.truncated_bytes,
                if a.footer_removed {
                    ", old footer removed"
                } else {
                    ""
                }
            )?;
        }
        writeln!(
            f,
            "{} records, {} packets, {} bytes in {} chunks in {:.2} s: {:.0} records/s, {:.0} packets/s, {:.2} MB/s, {:.2} bytes/packet",
            self.records,
            self.packets,
            self.bytes,
            self.chunks,
            secs,
            self.records as f64 / secs,
            self.packets as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            if self.packets > 0 { self.bytes as f64 / self.packets as f64 } else { 0.0 },
        )?;
        if self.duplicates_skipped > 0 {
            writeln!(
                f,
                "{} re-delivered records were already on file (skipped)",
                self.duplicates_skipped
            )?;
        }
        writeln!(
            f,
            "{:>4}  {:<16} {:>5} {:>5} {:<3} {:>10} {:>11} {:>10} {:>10} {:>10} {:>10}",
            "id",
            "nf",
            "port",
            "queue",
            "dir",
            "records",
            "packets",
            "lost_full",
            "too_big",
            "lost_write",
            "corrupt"
        )?;
        for s in &self.streams {
            writeln!(
                f,
                "{:>4}  {:<16} {:>5} {:>5} {:<3} {:>10} {:>11} {:>10} {:>10} {:>10} {:>10}",
                s.info.id,
                s.info.nf,
                s.info.port,
                s.info.queue,
                match s.info.direction {
                    collector::Direction::Rx => "rx",
                    collector::Direction::Tx => "tx",
                },
                s.records,
                s.packets,
                s.loss.lost_full,
                s.loss.lost_too_big,
                s.loss.lost_write,
                s.loss.lost_corrupt
            )?;
        }
        for e in &self.write_errors {
            writeln!(f, "disk error: {e}")?;
        }
        for e in &self.ring_errors {
            writeln!(f, "ring skipped: {e}")?;
        }
        Ok(())
    }
}

/// `(st_dev, st_ino)` of a ring file.
type RingKey = (u64, u64);

enum Ctl {
    Add(Box<Consumer>, StreamId),
    /// The file went away or was replaced: drain what is left, then drop it.
    Retire(RingKey),
}

struct Drained {
    key: RingKey,
    stream: StreamId,
    records: Vec<Record>,
    loss: LossCounters,
    /// Ring position after `records`.
    pos: u64,
    error: Option<String>,
    /// The worker dropped the ring after this message.
    retired: bool,
}

struct Task {
    consumer: Box<Consumer>,
    stream: StreamId,
    key: RingKey,
    retiring: bool,
    /// Loss counters last sent to the writer: a change is sent even when
    /// no record came with it (a drop after the stream's last record).
    sent_loss: LossCounters,
}

fn apply(tasks: &mut Vec<Task>, c: Ctl) {
    match c {
        Ctl::Add(consumer, stream) => {
            let key = consumer.file_id();
            tasks.push(Task {
                consumer,
                stream,
                key,
                retiring: false,
                sent_loss: LossCounters::default(),
            })
        }
        Ctl::Retire(key) => tasks
            .iter_mut()
            .filter(|t| t.key == key)
            .for_each(|t| t.retiring = true),
    }
}

fn worker(ctl: Receiver<Ctl>, tx: Sender<Drained>, stop: Arc<AtomicBool>, cfg: Config) {
    let mut tasks: Vec<Task> = Vec::new();
    let mut final_passes = 0u32;
    // Idle polls back off from idle_sleep up to 8x, and snap back on data.
    let mut idle = cfg.idle_sleep;
    loop {
        while let Ok(c) = ctl.try_recv() {
            apply(&mut tasks, c);
        }
        let stopping = stop.load(Ordering::Acquire);
        let mut any = false;
        let mut i = 0;
        while i < tasks.len() {
            let t = &mut tasks[i];
            let mut records = Vec::new();
            let res = t.consumer.drain(cfg.drain_batch, &mut records);
            let error = res.as_ref().err().map(|e| e.to_string());
            let retired = error.is_some() || (t.retiring && t.consumer.is_drained());
            let loss = t.consumer.loss();
            if !records.is_empty() || error.is_some() || retired || loss != t.sent_loss {
                any |= !records.is_empty();
                t.sent_loss = loss;
                let msg = Drained {
                    key: t.key,
                    stream: t.stream,
                    records,
                    loss,
                    pos: t.consumer.position(),
                    error,
                    retired,
                };
                if tx.send(msg).is_err() {
                    return; // the writer is gone (fatal error there)
                }
            }
            if retired {
                tasks.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if stopping {
            // Final drain: keep going while rings still yield records, but
            // not forever against producers that never pause.
            final_passes += 1;
            if !any || final_passes > 10_000 {
                return;
            }
            continue;
        }
        if any {
            idle = cfg.idle_sleep;
        } else {
            match ctl.recv_timeout(idle) {
                Ok(c) => apply(&mut tasks, c),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(idle),
            }
            idle = (idle * 2).min(cfg.idle_sleep * 8);
        }
    }
}

/// An output that can be made durable (fsync).
pub(crate) trait Durable: Write {
    fn sync_data(&self) -> std::io::Result<()>;
}

impl Durable for File {
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
}

impl Durable for FaultyFile {
    fn sync_data(&self) -> std::io::Result<()> {
        FaultyFile::sync_data(self)
    }
}

struct RingEntry {
    stream: StreamId,
    committer: Committer,
    worker: usize,
    /// Position to commit at the next successful sync.
    pending_pos: Option<u64>,
    retire_sent: bool,
    /// The worker dropped it; forget it after the next commit.
    gone: bool,
}

struct StreamAcc {
    info: StreamInfo,
    ring: PathBuf,
    key: RingKey,
    buf: Vec<Record>,
    loss: LossCounters,
    records: u64,
    packets: u64,
    /// Consecutive failed attempts to write `buf`.
    attempts: u32,
}

fn max_loss(a: &LossCounters, b: &LossCounters) -> LossCounters {
    LossCounters {
        lost_full: a.lost_full.max(b.lost_full),
        lost_too_big: a.lost_too_big.max(b.lost_too_big),
        lost_write: a.lost_write.max(b.lost_write),
        lost_corrupt: a.lost_corrupt.max(b.lost_corrupt),
    }
}

fn cookie_of(path: &Path) -> std::io::Result<u64> {
    let m = std::fs::metadata(path)?;
    // splitmix64 of (dev, ino): a non-zero tag naming this trace file.
    let mut z = m.dev() ^ m.ino().rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Ok((z ^ (z >> 31)) | 1)
}

/// The nominal TSC frequency the first trusted ring present at start
/// reports (`rte_get_tsc_hz()` on the NF side); a hint for the trace's
/// metadata, used only where clock anchors are missing.
fn tsc_hint(dir: &Path, trust: &TrustPolicy) -> Option<f64> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(RING_SUFFIX))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| Observer::open(p, trust).ok())
        .find_map(|c| c.identity().tsc_hz_hint)
        .map(|hz| hz as f64)
}

/// Runs the dumper until `stop` becomes true (e.g. set by a signal handler,
/// see [`crate::install_signal_handlers`]), then drains the rings one last
/// time, writes everything, fsyncs, commits, and writes the footer.
///
/// Errors: see [`DumpError`]. Problems with single rings and recoverable
/// write failures are reported in the summary instead.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<DumpSummary, DumpError> {
    let meta = TraceMeta {
        producer: format!("microscope-dumper {}", env!("CARGO_PKG_VERSION")),
        topology: cfg.topology.clone(),
        tsc_hz_hint: None,
    };
    std::fs::read_dir(&cfg.rings_dir).map_err(|source| DumpError::RingsDir {
        path: cfg.rings_dir.clone(),
        source,
    })?;
    let mut meta = meta;
    meta.tsc_hz_hint = tsc_hint(&cfg.rings_dir, &cfg.trust);
    match cfg.faults {
        None => {
            let w = if cfg.overwrite {
                TraceWriter::create(&cfg.out, &meta)?
            } else {
                TraceWriter::open_or_create(&cfg.out, &meta)?
            };
            Engine::new(cfg, w)?.run(stop)
        }
        Some(plan) => {
            if !cfg.overwrite && cfg.out.exists() {
                return Err(DumpError::Config {
                    path: cfg.out.clone(),
                    reason: "fault injection writes a new file: pass --overwrite".into(),
                });
            }
            let io = |source| TraceError::Io {
                path: cfg.out.clone(),
                offset: 0,
                source,
            };
            let file = File::create(&cfg.out).map_err(io)?;
            let ff = FaultyFile::new(file, plan).map_err(io)?;
            let w = TraceWriter::with_rollback(ff.clone(), &cfg.out, Box::new(ff), &meta)?;
            Engine::new(cfg, w)?.run(stop)
        }
    }
}

struct Engine<'a, W: Durable> {
    cfg: &'a Config,
    out: TraceWriter<W>,
    cookie: u64,
    start: Instant,
    start_offset: u64,
    start_stats: WriterStats,
    rings: HashMap<RingKey, RingEntry>,
    /// Ring files that could not be opened (reported once).
    refused: HashSet<RingKey>,
    /// Ring files another consumer holds (reported once, retried).
    busy: HashSet<RingKey>,
    streams: BTreeMap<StreamId, StreamAcc>,
    next_worker: usize,
    ctl: Vec<Sender<Ctl>>,
    summary: DumpSummary,
    dirty: bool,
}

impl<'a, W: Durable> Engine<'a, W> {
    fn new(cfg: &'a Config, out: TraceWriter<W>) -> Result<Self, DumpError> {
        let cookie = cookie_of(&cfg.out).map_err(|source| TraceError::Io {
            path: cfg.out.clone(),
            offset: 0,
            source,
        })?;
        let start_offset = out.offset();
        let start_stats = out.stats();
        let appended = out.append_report().cloned();
        Ok(Engine {
            cfg,
            out,
            cookie,
            start: Instant::now(),
            start_offset,
            start_stats,
            rings: HashMap::new(),
            refused: HashSet::new(),
            busy: HashSet::new(),
            streams: BTreeMap::new(),
            next_worker: 0,
            ctl: Vec::new(),
            summary: DumpSummary {
                out: cfg.out.clone(),
                appended,
                ..Default::default()
            },
            dirty: false,
        })
    }

    fn run(mut self, stop: Arc<AtomicBool>) -> Result<DumpSummary, DumpError> {
        let (tx, rx) = channel::bounded::<Drained>(256);
        let nworkers = self.cfg.workers.max(1);
        let result = crossbeam::thread::scope(|scope| {
            for _ in 0..nworkers {
                let (ctx, crx) = channel::unbounded();
                self.ctl.push(ctx);
                let tx = tx.clone();
                let stop = stop.clone();
                let cfg = self.cfg.clone();
                scope.spawn(move |_| worker(crx, tx, stop, cfg));
            }
            drop(tx);
            let r = self.main_loop(&rx, &stop);
            if r.is_err() {
                // Make the workers finish; dropping the receiver unblocks them.
                stop.store(true, Ordering::Release);
                drop(rx);
            }
            r
        });
        match result {
            Err(_) => Err(DumpError::WorkerPanicked),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => self.finish(),
        }
    }

    fn main_loop(&mut self, rx: &Receiver<Drained>, stop: &AtomicBool) -> Result<(), DumpError> {
        let tick = self
            .cfg
            .sync_interval
            .min(self.cfg.scan_interval)
            .min(Duration::from_millis(50));
        let mut last_scan: Option<Instant> = None;
        let mut scan_failing = false;
        let mut last_sync = Instant::now();
        let mut last_progress = Instant::now();
        let progress = self.cfg.progress && std::io::stderr().is_terminal();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            if !stopping && last_scan.map_or(true, |t| t.elapsed() >= self.cfg.scan_interval) {
                match self.scan() {
                    Ok(()) => scan_failing = false,
                    // The directory vanished or became unreadable: keep
                    // draining the rings already open, say so once.
                    Err(e @ DumpError::RingsDir { .. }) => {
                        if !scan_failing {
                            eprintln!("microscope dump: {e}");
                            self.summary.ring_errors.push(e.to_string());
                        }
                        scan_failing = true;
                    }
                    Err(e) => return Err(e),
                }
                last_scan = Some(Instant::now());
            }
            match rx.recv_timeout(tick) {
                Ok(msg) => {
                    self.handle(msg)?;
                    // Take whatever else is queued before looking at the clock.
                    while let Ok(m) = rx.try_recv() {
                        self.handle(m)?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.dirty && last_sync.elapsed() >= self.cfg.sync_interval {
                self.sync_all()?;
                last_sync = Instant::now();
            }
            if progress && last_progress.elapsed() >= Duration::from_secs(1) {
                self.progress_line();
                last_progress = Instant::now();
            }
        }
        if progress {
            eprintln!();
        }
        self.sync_all()
    }

    fn progress_line(&self) {
        let st = self.out.stats();
        let records = st.records - self.start_stats.records;
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let lost: u64 = self.streams.values().map(|s| s.loss.total()).sum();
        eprint!(
            "\r{:>7.1} s  {} records ({:.0}/s)  {:.1} MB  {} rings  {} lost   ",
            secs,
            records,
            records as f64 / secs,
            (self.out.offset() - self.start_offset) as f64 / 1e6,
            self.rings.len(),
            lost
        );
    }

    /// Finds new ring files and retires rings whose file went away.
    fn scan(&mut self) -> Result<(), DumpError> {
        let dir = std::fs::read_dir(&self.cfg.rings_dir).map_err(|source| DumpError::RingsDir {
            path: self.cfg.rings_dir.clone(),
            source,
        })?;
        let mut seen: HashSet<RingKey> = HashSet::new();
        let mut found: Vec<(PathBuf, RingKey)> = Vec::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.ends_with(RING_SUFFIX) || name.contains(".tmp.") {
                continue;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            let key = (meta.dev(), meta.ino());
            seen.insert(key);
            if !self.rings.contains_key(&key) && !self.refused.contains(&key) {
                found.push((entry.path(), key));
            }
        }
        found.sort();
        for (path, key) in found {
            self.add_ring(&path, key)?;
        }
        for (key, r) in self.rings.iter_mut() {
            if !seen.contains(key) && !r.retire_sent && !r.gone {
                r.retire_sent = true;
                let _ = self.ctl[r.worker].send(Ctl::Retire(*key));
            }
        }
        Ok(())
    }

    fn add_ring(&mut self, path: &Path, key: RingKey) -> Result<(), DumpError> {
        let consumer = match Consumer::open(path, &self.cfg.trust) {
            Ok(c) => c,
            Err(e @ RingError::Busy { .. }) => {
                // Another consumer holds it (another dumper?): try again at
                // every scan, say so once.
                if self.busy.insert(key) {
                    eprintln!("microscope dump: {e}; will retry");
                    self.summary.ring_errors.push(e.to_string());
                }
                return Ok(());
            }
            Err(e) => {
                eprintln!("microscope dump: {e}; ring skipped");
                self.summary.ring_errors.push(e.to_string());
                self.refused.insert(key);
                return Ok(());
            }
        };
        let key = consumer.file_id();
        let id = consumer.identity();
        let in_use: HashSet<StreamId> = self.streams.keys().copied().collect();
        let bound = consumer
            .binding()
            .filter(|&(c, _)| c == self.cookie)
            .map(|(_, s)| s)
            .filter(|s| !in_use.contains(s))
            .filter(|&s| self.out.stream_info(s) == Some(&id.stream_info(s)));
        let stream = match bound {
            Some(s) => s,
            None => {
                let next = self
                    .out
                    .declared_streams()
                    .map(|i| i.id + 1)
                    .chain(in_use.iter().map(|s| s + 1))
                    .max()
                    .unwrap_or(0);
                match self.out.declare_stream(&id.stream_info(next)) {
                    Ok(()) => next,
                    Err(
                        e @ TraceError::WriteFailed {
                            recovered: true, ..
                        },
                    ) => {
                        // Not declared: try this ring again at the next scan.
                        self.summary.write_errors.push(e.to_string());
                        eprintln!("microscope dump: {e}");
                        return Ok(());
                    }
                    Err(e @ TraceError::InvalidInput { .. }) => {
                        eprintln!("microscope dump: {e}; ring skipped");
                        self.summary.ring_errors.push(e.to_string());
                        self.refused.insert(key);
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        // Bind before any record of the ring is written: a restarted dumper
        // then continues this stream instead of duplicating it elsewhere.
        consumer.bind(self.cookie, stream);
        let worker = self.next_worker % self.ctl.len();
        self.next_worker += 1;
        self.rings.insert(
            key,
            RingEntry {
                stream,
                committer: consumer.committer(),
                worker,
                pending_pos: None,
                retire_sent: false,
                gone: false,
            },
        );
        self.streams.insert(
            stream,
            StreamAcc {
                info: id.stream_info(stream),
                ring: path.to_path_buf(),
                key,
                buf: Vec::new(),
                loss: consumer.loss(),
                records: 0,
                packets: 0,
                attempts: 0,
            },
        );
        self.dirty = true;
        if self.ctl[worker]
            .send(Ctl::Add(Box::new(consumer), stream))
            .is_err()
        {
            return Err(DumpError::WorkerPanicked);
        }
        Ok(())
    }

    fn handle(&mut self, m: Drained) -> Result<(), DumpError> {
        if let Some(e) = &m.error {
            eprintln!("microscope dump: {e}; ring skipped");
            self.summary.ring_errors.push(e.clone());
        }
        if let Some(r) = self.rings.get_mut(&m.key) {
            r.pending_pos = Some(m.pos);
            r.gone |= m.retired;
        }
        let full = {
            let Some(s) = self.streams.get_mut(&m.stream) else {
                return Ok(());
            };
            s.loss = max_loss(&s.loss, &m.loss);
            let mut records = m.records;
            if s.buf.is_empty() {
                s.buf = std::mem::take(&mut records);
            } else {
                s.buf.append(&mut records);
            }
            s.buf.len() >= self.cfg.chunk_records
        };
        self.dirty = true;
        if full {
            self.write_stream(m.stream)?;
        }
        Ok(())
    }

    /// Writes a stream's gathered records as a chunk. After a failed write
    /// the records stay gathered for another attempt at the next sync; after
    /// `write_attempts` failures in a row they are dropped and counted in
    /// `lost_write`.
    fn write_stream(&mut self, id: StreamId) -> Result<(), DumpError> {
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        // Records already on file: re-delivered after a restart (the ring's
        // tail was not yet committed when the last dumper died), or written
        // by an earlier, partly failed attempt.
        if let Some(last) = self.out.last_seq(id) {
            let done = s.buf.partition_point(|r| r.seq() <= last);
            s.buf.drain(..done);
            self.summary.duplicates_skipped += done as u64;
        }
        if s.buf.is_empty() {
            // Losses counted after the stream's last record still reach the
            // file: the writer's flush emits a loss-only chunk when the
            // counters grew since the last chunk of this stream.
            self.out.set_loss(id, &s.loss)?;
            return Ok(());
        }
        let before = self.out.stats();
        let res = self.out.write_chunk(id, &s.buf, &s.loss);
        let after = self.out.stats();
        s.records += after.records - before.records;
        s.packets += after.packets - before.packets;
        match res {
            Ok(()) => {
                s.buf.clear();
                s.attempts = 0;
                Ok(())
            }
            Err(
                e @ TraceError::WriteFailed {
                    recovered: true, ..
                },
            ) => {
                s.attempts += 1;
                let mut msg = e.to_string();
                if s.attempts >= self.cfg.write_attempts.max(1) {
                    let lost = e.lost_records();
                    s.loss.lost_write += lost;
                    self.summary.lost_write += lost;
                    if let Some(r) = self.rings.get(&s.key) {
                        r.committer.add_lost_write(lost);
                    }
                    s.buf.clear();
                    s.attempts = 0;
                    msg.push_str(&format!(
                        "; stream {id}: gave up after {} attempts, {lost} records counted in lost_write",
                        self.cfg.write_attempts.max(1)
                    ));
                } else {
                    msg.push_str(&format!("; stream {id}: will retry"));
                }
                eprintln!("microscope dump: {msg}");
                self.summary.write_errors.push(msg);
                Ok(())
            }
            Err(e @ TraceError::InvalidInput { .. }) => {
                // Cannot happen for records the consumer validated; if it
                // does, lose this stream's records, not the whole dump.
                let n = s.buf.len() as u64;
                s.loss.lost_corrupt += n;
                s.buf.clear();
                s.attempts = 0;
                let msg = format!("{e}; {n} records of stream {id} counted in lost_corrupt");
                eprintln!("microscope dump: {msg}");
                self.summary.ring_errors.push(msg);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes everything gathered, fsyncs, then commits every ring's tail.
    fn sync_all(&mut self) -> Result<(), DumpError> {
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            self.write_stream(id)?;
        }
        self.out.flush()?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|source| DumpError::Sync {
                path: self.cfg.out.clone(),
                source,
            })?;
        // Commit only rings whose records are all durable (or counted lost);
        // records still waiting for a retry keep their ring uncommitted.
        let streams = &self.streams;
        for r in self.rings.values_mut() {
            if streams.get(&r.stream).is_some_and(|s| !s.buf.is_empty()) {
                continue;
            }
            if let Some(pos) = r.pending_pos.take() {
                r.committer.commit(pos);
            }
        }
        self.rings.retain(|_, r| !r.gone || r.pending_pos.is_some());
        // Records waiting for another write attempt keep the next sync due.
        self.dirty = self.streams.values().any(|s| !s.buf.is_empty());
        Ok(())
    }

    fn finish(mut self) -> Result<DumpSummary, DumpError> {
        let st = self.out.stats();
        let mut s = std::mem::take(&mut self.summary);
        s.records = st.records - self.start_stats.records;
        s.packets = st.packets - self.start_stats.packets;
        s.duplicates_skipped += st.duplicates_skipped - self.start_stats.duplicates_skipped;
        s.streams = self
            .streams
            .values()
            .map(|a| StreamSummary {
                info: a.info.clone(),
                ring: a.ring.clone(),
                records: a.records,
                packets: a.packets,
                loss: a.loss,
            })
            .collect();
        // The footer: written on clean exit only, then made durable.
        let end = self.out.offset();
        match self.out.finish() {
            Ok(f) => f.sync_data().map_err(|source| DumpError::Sync {
                path: self.cfg.out.clone(),
                source,
            })?,
            // Everything else is already durable; readers never need the
            // footer, and the failed write was rolled back.
            Err(
                e @ TraceError::WriteFailed {
                    recovered: true, ..
                },
            ) => {
                let msg = format!("footer not written: {e}");
                eprintln!("microscope dump: {msg}");
                s.write_errors.push(msg);
            }
            Err(e) => return Err(e.into()),
        }
        s.chunks = st.chunks - self.start_stats.chunks;
        s.bytes = end - self.start_offset;
        s.elapsed = self.start.elapsed();
        Ok(s)
    }
}
