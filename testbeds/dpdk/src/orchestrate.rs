//! Runs a chain: the dumper, then one `ms-nf` process per NF, servers
//! before clients; stops everything and cleans up.
//!
//! Every link `A -> B` is a memif pair: B (downstream) is the memif server,
//! A the client, over a socket file in the run directory. Processes start in
//! reverse topological order (sinks first), each only once the sockets of
//! its inputs exist, so every client finds its server. Each process gets its
//! own `--file-prefix`, `--no-huge`, `--no-pci`, one core (round-robin over
//! the machine's cores). Traffic starts at a common CLOCK_MONOTONIC instant
//! after every process is up; injections are absolute times from it. Every
//! NF waits until all its links are up and fails, naming each link still
//! down (device, memif role, `FROM--TO.sock`), 1 s after the traffic start;
//! the run then fails with that message instead of tracing a broken chain.
//!
//! Stop order: generator, then NFs upstream to downstream (so queues drain
//! into running processes), then the dumper, which then sees no more
//! writers. Cleanup removes the run directory (sockets, rings) and the DPDK
//! runtime directories of the run's file prefixes, and reports anything it
//! could not remove. A guard kills every child if the orchestrator errors
//! out or panics.

use crate::inject::{self, Injection, Truth};
use crate::topology::{Kind, Topology};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub topology: Topology,
    pub duration_ns: u64,
    pub injections: Vec<Injection>,
    pub out: PathBuf,
    /// Generator rate, packets per second.
    pub rate_pps: f64,
    pub flows: usize,
    pub seed: u64,
    pub pcap: Option<PathBuf>,
    /// The `ms-nf` binary.
    pub nf_bin: PathBuf,
    /// The `microscope` binary (for `dump`); `None` runs without a dumper
    /// (rings are left in `out/rings` for inspection).
    pub microscope: Option<PathBuf>,
    /// Cooperative yield after N empty polls (NFs share the cores).
    pub yield_after: u32,
    /// Sleep this many µs instead of yielding (0 = yield); see `ms-nf
    /// --idle-sleep-us`.
    pub idle_sleep_us: u64,
    /// Nice value for the NF processes (negative needs CAP_SYS_NICE;
    /// ignored with a warning when refused); `None` leaves it.
    pub nice: Option<i32>,
    /// Run the NFs under SCHED_FIFO (`ms-nf --realtime 1`); needs
    /// CAP_SYS_NICE, falls back to normal scheduling with a warning.
    pub realtime: bool,
    /// Attach the shim (false: overhead baseline, no trace).
    pub shim: bool,
    /// Cores to spread the processes over.
    pub cores: u32,
}

/// What happened.
#[derive(Debug, Default, serde::Serialize)]
pub struct RunSummary {
    pub traffic_start_ns: u64,
    /// Per NF: its JSON statistics line (None if it printed none).
    pub nf_stats: Vec<(String, Option<serde_json::Value>)>,
    pub dumper_status: Option<i32>,
    pub leftovers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Failed(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let w = what.into();
    move |e| RunError::Io(w, e)
}

/// Kills and reaps whatever is still running when dropped.
struct Guard {
    children: Vec<(String, Child)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (_, c) in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(c: &Child, sig: libc::c_int) {
    // SAFETY: sends a signal to our own child's pid (still unreaped, so the
    // pid cannot have been reused).
    unsafe {
        libc::kill(c.id() as libc::pid_t, sig);
    }
}

/// SIGINT, then wait up to `grace`, then SIGKILL. Returns the exit code.
fn stop(name: &str, c: &mut Child, grace: Duration) -> Option<i32> {
    if let Ok(Some(s)) = c.try_wait() {
        return s.code();
    }
    signal(c, libc::SIGINT);
    let t = Instant::now();
    while t.elapsed() < grace {
        if let Ok(Some(s)) = c.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("testbed: {name} did not stop within {grace:?}; killing it");
    let _ = c.kill();
    c.wait().ok().and_then(|s| s.code())
}

/// The `key=value` parameter `key` of the `--vdev DEV,...` (or
/// `--vdev=DEV,...`) EAL argument that creates `dev` in `eal_args`, e.g.
/// the socket file of a memif device; `None` when absent.
pub fn vdev_param(eal_args: &[String], dev: &str, key: &str) -> Option<String> {
    let mut it = eal_args.iter();
    while let Some(a) = it.next() {
        let spec = match a.strip_prefix("--vdev") {
            Some("") => it.next().map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        let Some(spec) = spec else { continue };
        let mut parts = spec.split(',');
        if parts.next() != Some(dev) {
            continue;
        }
        return parts
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string());
    }
    None
}

/// The error of an NF whose links `down` (ethdev names) were not up by its
/// `--links-up-by-ns` deadline (the testbed's traffic start + 1 s): names each device, its memif role and socket
/// (`FROM--TO.sock` in the testbed: the link), from the EAL arguments.
pub fn links_down_error(down: &[&str], eal_args: &[String]) -> String {
    let each: Vec<String> = down
        .iter()
        .map(|d| {
            let role = vdev_param(eal_args, d, "role");
            match (vdev_param(eal_args, d, "socket"), role) {
                (Some(s), Some(r)) => format!("{d} (memif {r}, socket {s})"),
                (Some(s), None) => format!("{d} (socket {s})"),
                _ => d.to_string(),
            }
        })
        .collect();
    format!(
        "link{} never came up in time: {} (is the peer NF running, and \
         does it use the same socket?)",
        if down.len() == 1 { "" } else { "s" },
        each.join(", ")
    )
}

/// The last line of an NF log that reports an error (`ms-nf: error: ...`),
/// trimmed, for messages about an NF that exited early.
pub fn last_error_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| l.contains("error"))
}

fn early_exit(name: &str, what: &str, status: std::process::ExitStatus, logs: &Path) -> String {
    let log = logs.join(format!("{name}.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    match last_error_line(&text) {
        Some(e) => format!("{name} {what} ({status}): {e} (log: {})", log.display()),
        None => format!("{name} {what} ({status}); see {}", log.display()),
    }
}

fn sock_path(dir: &Path, from: &str, to: &str) -> PathBuf {
    dir.join(format!("{from}--{to}.sock"))
}

/// The EAL + app arguments of one NF process.
fn nf_command(
    cfg: &RunConfig,
    run_dir: &Path,
    prefix: &str,
    name: &str,
    core: u32,
    start_ns: u64,
) -> Command {
    let t = &cfg.topology;
    let node = t.node(name).expect("validated");
    let mut cmd = Command::new(&cfg.nf_bin);
    cmd.arg("--no-huge")
        .args(["-m", "256"])
        .arg("--no-pci")
        .args(["-l", &core.to_string()])
        .args(["--file-prefix", &format!("{prefix}-{name}")])
        .args(["--log-level", "lib.eal:warning"]);
    let mut vdev = 0;
    let mut inputs = Vec::new();
    for l in t.inputs(name) {
        let dev = format!("net_memif{vdev}");
        vdev += 1;
        cmd.args([
            "--vdev",
            &format!(
                "{dev},role=server,id=0,socket={},socket-abstract=no",
                sock_path(run_dir, &l.from, &l.to).display()
            ),
        ]);
        inputs.push(dev);
    }
    let mut outputs = Vec::new();
    for l in t.outputs(name) {
        let dev = format!("net_memif{vdev}");
        vdev += 1;
        cmd.args([
            "--vdev",
            &format!(
                "{dev},role=client,id=0,socket={},socket-abstract=no",
                sock_path(run_dir, &l.from, &l.to).display()
            ),
        ]);
        outputs.push(dev);
    }
    cmd.arg("--");
    cmd.args(["--kind", node.kind.as_str()]);
    if !inputs.is_empty() {
        cmd.args(["--inputs", &inputs.join(",")]);
    }
    if !outputs.is_empty() {
        cmd.args(["--outputs", &outputs.join(",")]);
    }
    for r in &node.rules {
        cmd.args(["--rule", r]);
    }
    if let Some(r) = node
        .peak_rate_pps
        .filter(|_| node.kind.role() == collector::Role::Nf)
    {
        cmd.args(["--peak-rate", &r.to_string()]);
    }
    // Every link must be up when traffic starts (+1 s for a process that
    // started late under load), or the NF fails naming the link instead of
    // dropping everything it would send over it; ms-testbed then fails.
    cmd.args(["--links-up-by-ns", &(start_ns + 1_000_000_000).to_string()]);
    cmd.args(["--flows", &cfg.flows.to_string()])
        .args(["--seed", &cfg.seed.to_string()])
        .args(["--yield-after", &cfg.yield_after.to_string()])
        .args(["--idle-sleep-us", &cfg.idle_sleep_us.to_string()]);
    if cfg.realtime {
        cmd.args(["--realtime", "1"]);
    }
    if !cfg.shim {
        cmd.arg("--no-shim");
    }
    if node.kind == Kind::Gen {
        cmd.args(["--rate", &cfg.rate_pps.to_string()])
            .args(["--start-at-ns", &start_ns.to_string()])
            .args(["--duration-ns", &cfg.duration_ns.to_string()]);
        if let Some(p) = &cfg.pcap {
            cmd.arg("--pcap").arg(p);
        }
    }
    for (i, inj) in cfg.injections.iter().enumerate() {
        match inj {
            Injection::Burst {
                at_ns,
                packets,
                flows,
            } if node.kind == Kind::Gen => {
                cmd.args([
                    "--burst",
                    &format!("{}:{packets}:{flows}:{i}", start_ns + at_ns),
                ]);
            }
            Injection::Stall { nf, at_ns, for_ns } if nf == name => {
                cmd.args(["--stall", &format!("{}:{for_ns}", start_ns + at_ns)]);
            }
            Injection::Bug {
                nf,
                at_ns,
                for_ns,
                flows,
                cycles,
            } if nf == name => {
                cmd.args([
                    "--bug",
                    &format!("{}:{for_ns}:{cycles}:{flows}", start_ns + at_ns),
                ]);
            }
            Injection::Loss {
                nf,
                at_ns,
                for_ns,
                p,
            } if nf == name => {
                cmd.args([
                    "--loss",
                    &format!(
                        "{}:{for_ns}:{}:{i}",
                        start_ns + at_ns,
                        inject::loss_threshold(*p)
                    ),
                ]);
            }
            Injection::Delay {
                nf,
                at_ns,
                for_ns,
                per_packet_ns,
            } if nf == name => {
                cmd.args([
                    "--delay",
                    &format!("{}:{for_ns}:{per_packet_ns}:{i}", start_ns + at_ns),
                ]);
            }
            _ => {}
        }
    }
    cmd.env("MICROSCOPE_RING_DIR", run_dir.join("rings"))
        .env("MICROSCOPE_NF_NAME", name)
        .env("MICROSCOPE_NF_TYPE", node.kind.as_str())
        .env(
            "MICROSCOPE_NF_ROLE",
            match node.kind {
                Kind::Gen => "source",
                Kind::Sink => "sink",
                _ => "nf",
            },
        )
        // The source's streams carry full 5-tuples; everywhere else packets
        // are identified by IPID and followed back to the source.
        .env(
            "MICROSCOPE_TUPLE_PORTS",
            if node.kind == Kind::Gen {
                "all"
            } else {
                "none"
            },
        )
        .env("MICROSCOPE_YIELD", cfg.yield_after.to_string());
    cmd
}

/// Runs the chain and writes `out/trace.bin` (when a dumper is configured),
/// `out/truth.json`, `out/topology.json` and `out/logs/*.log`.
pub fn run(cfg: &RunConfig) -> Result<RunSummary, RunError> {
    cfg.topology
        .validate()
        .map_err(|e| RunError::Failed(e.to_string()))?;
    for inj in &cfg.injections {
        inj.check(&cfg.topology).map_err(RunError::Failed)?;
    }
    if !cfg.nf_bin.exists() {
        return Err(RunError::Failed(format!(
            "{} not found: build it with `cargo build --release -p dpdk-testbed`",
            cfg.nf_bin.display()
        )));
    }
    std::fs::create_dir_all(&cfg.out).map_err(io(format!("creating {}", cfg.out.display())))?;
    let logs = cfg.out.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(format!("creating {}", logs.display())))?;
    let run_id = format!("msc{}", std::process::id());
    // Rings must live on tmpfs (a disk-backed mapping faults after every
    // writeback); the memif sockets go along.
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let run_dir = base.join(format!("microscope-testbed-{run_id}"));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(run_dir.join("rings"))
        .map_err(io(format!("creating {}", run_dir.display())))?;
    let result = run_in(cfg, &run_dir, &run_id, &logs);
    // Cleanup, whatever happened.
    let mut leftovers = Vec::new();
    if cfg.microscope.is_none() && cfg.shim {
        let keep = cfg.out.join("rings");
        let _ = std::fs::remove_dir_all(&keep);
        if let Err(e) = move_dir(&run_dir.join("rings"), &keep) {
            leftovers.push(format!("moving rings to {}: {e}", keep.display()));
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&run_dir) {
        leftovers.push(format!("{}: {e}", run_dir.display()));
    }
    for n in &cfg.topology.nf {
        let d = PathBuf::from("/var/run/dpdk").join(format!("{run_id}-{}", n.name));
        if d.exists() {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                leftovers.push(format!("{}: {e}", d.display()));
            }
        }
    }
    let mut summary = result?;
    summary.leftovers = leftovers;
    Ok(summary)
}

/// Replaces planned fault times by what the NFs report they did: a stall's
/// real sleep (a sleep overshoots under load), a bug's, loss's or delay's
/// real arming time. The plan stays in `params.planned_start_ns` /
/// `planned_end_ns`; a loss or delay also gets `params.packets` (packets
/// dropped or delayed).
fn record_actual_times(
    truth: &mut Truth,
    injections: &[Injection],
    stats: &[(String, Option<serde_json::Value>)],
) {
    let stats_of = |nf: &str| {
        stats
            .iter()
            .find(|(n, _)| n == nf)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| &v["stats"])
    };
    for (fault, inj) in truth.faults.iter_mut().zip(injections) {
        if let Injection::Loss { nf, .. } | Injection::Delay { nf, .. } = inj {
            let real = stats_of(nf).and_then(|s| {
                s["injected"]
                    .as_array()?
                    .iter()
                    .find(|w| w["index"].as_u64() == Some(fault.id as u64))
            });
            if let Some(w) = real {
                if let Some(p) = fault.params.as_object_mut() {
                    p.insert("planned_start_ns".into(), fault.start_ns.into());
                    p.insert("planned_end_ns".into(), fault.end_ns.into());
                    p.insert("packets".into(), w["packets"].clone());
                }
                fault.start_ns = w["start_ns"].as_u64().unwrap_or(fault.start_ns);
                fault.end_ns = w["end_ns"].as_u64().unwrap_or(fault.end_ns);
            }
            continue;
        }
        let actual = match inj {
            Injection::Stall { nf, at_ns, .. } => {
                // The k-th stall of this NF in plan order is its k-th real one.
                let mut mine: Vec<u64> = injections
                    .iter()
                    .filter_map(|i| match i {
                        Injection::Stall { nf: n, at_ns, .. } if n == nf => Some(*at_ns),
                        _ => None,
                    })
                    .collect();
                mine.sort_unstable();
                let k = mine.iter().position(|a| a == at_ns).unwrap_or(0);
                stats_of(nf)
                    .and_then(|s| s["stall_real_ns"].get(k))
                    .and_then(|p| Some((p.get(0)?.as_u64()?, p.get(1)?.as_u64()?)))
            }
            Injection::Bug { nf, for_ns, .. } => stats_of(nf)
                .and_then(|s| s["bug_real_ns"].as_u64())
                .map(|s| (s, s + for_ns)),
            Injection::Burst { .. } | Injection::Loss { .. } | Injection::Delay { .. } => None,
        };
        if let Some((s, e)) = actual {
            if let Some(p) = fault.params.as_object_mut() {
                p.insert("planned_start_ns".into(), fault.start_ns.into());
                p.insert("planned_end_ns".into(), fault.end_ns.into());
            }
            fault.start_ns = s;
            fault.end_ns = e;
        }
    }
}

/// Renames `from` to `to`, copying file by file across file systems.
fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    std::fs::remove_dir_all(from)
}

fn run_in(
    cfg: &RunConfig,
    run_dir: &Path,
    run_id: &str,
    logs: &Path,
) -> Result<RunSummary, RunError> {
    let mut guard = Guard {
        children: Vec::new(),
    };
    let log = |name: &str| -> Result<(std::fs::File, std::fs::File), RunError> {
        let p = logs.join(format!("{name}.log"));
        let f = std::fs::File::create(&p).map_err(io(format!("creating {}", p.display())))?;
        let g = f.try_clone().map_err(io("dup log"))?;
        Ok((f, g))
    };

    // The NF graph with its peak rates: for the user, and for the dumper,
    // which stores it in the trace's metadata.
    let topo = cfg.out.join("topology.json");
    std::fs::write(
        &topo,
        serde_json::to_vec_pretty(&cfg.topology.to_collector()).expect("serializes"),
    )
    .map_err(io(format!("writing {}", topo.display())))?;
    if let Some(ms) = &cfg.microscope {
        let trace = cfg.out.join("trace.bin");
        let _ = std::fs::remove_file(&trace);
        let (_, e) = log("dumper")?;
        let child = Command::new(ms)
            .arg("dump")
            .arg("--rings")
            .arg(run_dir.join("rings"))
            .arg("--topology")
            .arg(&topo)
            .arg("--out")
            .arg(&trace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(e)
            .spawn()
            .map_err(io(format!("starting {} dump", ms.display())))?;
        guard.children.push(("dumper".into(), child));
    }

    let order = cfg
        .topology
        .topo_order()
        .map_err(|e| RunError::Failed(e.to_string()))?;
    let cores = cfg.cores.max(1);
    // Every process is up well before traffic starts: allow 1.5 s each.
    let start_ns = crate::mono_ns() + 2_000_000_000 + 1_500_000_000 * order.len() as u64;
    let mut nf_children: Vec<(String, Child)> = Vec::new();
    for (i, name) in order.iter().rev().enumerate() {
        let node = cfg.topology.node(name).expect("validated");
        let core = node.core.unwrap_or(i as u32 % cores);
        let (out, err) = log(name)?;
        let mut cmd = nf_command(cfg, run_dir, run_id, name, core, start_ns);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut child = cmd
            .spawn()
            .map_err(io(format!("starting {}", cfg.nf_bin.display())))?;
        if let Some(n) = cfg.nice {
            // SAFETY: setpriority on our own child's pid (unreaped, so not reused).
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, child.id(), n) };
            if r != 0 {
                eprintln!(
                    "testbed: could not set nice {n} on {name}: {} (running at default priority)",
                    std::io::Error::last_os_error()
                );
            }
        }
        // Servers must be listening before their clients start.
        let socks: Vec<PathBuf> = cfg
            .topology
            .inputs(name)
            .map(|l| sock_path(run_dir, &l.from, &l.to))
            .collect();
        let t = Instant::now();
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                guard.children.extend(nf_children);
                return Err(RunError::Failed(early_exit(
                    name,
                    "exited during start-up",
                    s,
                    logs,
                )));
            }
            if socks.iter().all(|s| s.exists()) && t.elapsed() > Duration::from_millis(100) {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                nf_children.push((name.clone(), child));
                guard.children.extend(nf_children);
                return Err(RunError::Failed(format!(
                    "{name}: memif server sockets did not appear within 30 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        nf_children.push((name.clone(), child));
    }
    if crate::mono_ns() > start_ns {
        guard.children.extend(nf_children);
        return Err(RunError::Failed(
            "the NFs took longer to start than the start-up allowance".into(),
        ));
    }
    // Traffic runs from start_ns for duration_ns; the generator stops itself.
    let end = start_ns + cfg.duration_ns;
    while crate::mono_ns() < end + 300_000_000 {
        for (name, c) in nf_children.iter_mut() {
            if let Ok(Some(s)) = c.try_wait() {
                // The generator stops by itself once its duration is over.
                let is_gen = cfg.topology.node(name).is_some_and(|n| n.kind == Kind::Gen);
                if is_gen && s.success() {
                    continue;
                }
                let msg = early_exit(name, "exited early", s, logs);
                guard.children.extend(nf_children);
                return Err(RunError::Failed(msg));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop upstream first (topological order: the generator is first).
    let mut summary = RunSummary {
        traffic_start_ns: start_ns,
        ..Default::default()
    };
    let mut by_name: std::collections::HashMap<String, Child> = nf_children.into_iter().collect();
    for name in &order {
        if let Some(mut c) = by_name.remove(name) {
            stop(name, &mut c, Duration::from_secs(5));
            let stats = std::fs::read_to_string(logs.join(format!("{name}.log")))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .rev()
                        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                });
            summary.nf_stats.push((name.clone(), stats));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The dumper drains what is left, then stops.
    if let Some(pos) = guard.children.iter().position(|(n, _)| n == "dumper") {
        let (_, mut d) = guard.children.remove(pos);
        std::thread::sleep(Duration::from_millis(500));
        summary.dumper_status = stop("dumper", &mut d, Duration::from_secs(20));
    }
    let mut truth: Truth = inject::truth(
        &cfg.injections,
        start_ns,
        cfg.duration_ns,
        cfg.rate_pps,
        cfg.flows,
        cfg.seed,
        &cfg.topology,
    );
    record_actual_times(&mut truth, &cfg.injections, &summary.nf_stats);
    let tpath = cfg.out.join("truth.json");
    std::fs::write(
        &tpath,
        serde_json::to_vec_pretty(&truth).expect("truth serializes"),
    )
    .map_err(io(format!("writing {}", tpath.display())))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vdev_params_are_found_per_device() {
        let eal = args(&[
            "--no-huge",
            "--vdev",
            "net_memif0,role=server,id=0,socket=/r/a--b.sock,socket-abstract=no",
            "--vdev=net_memif1,role=client,socket=/r/b--c.sock",
            "--",
            "--kind",
            "nat",
        ]);
        assert_eq!(
            vdev_param(&eal, "net_memif0", "socket").as_deref(),
            Some("/r/a--b.sock")
        );
        assert_eq!(
            vdev_param(&eal, "net_memif1", "role").as_deref(),
            Some("client")
        );
        assert_eq!(vdev_param(&eal, "net_memif1", "id"), None);
        // "net_memif1" must not match the prefix of another device name.
        assert_eq!(vdev_param(&eal, "net_memif", "socket"), None);
        assert_eq!(vdev_param(&eal, "net_memif2", "socket"), None);
    }

    #[test]
    fn links_down_error_names_every_link() {
        let eal = args(&[
            "--vdev",
            "net_memif0,role=server,socket=/r/gen1--nat1.sock",
            "--vdev",
            "net_memif1,role=client,socket=/r/nat1--vpn1.sock",
        ]);
        let e = links_down_error(&["net_memif1"], &eal);
        assert!(e.starts_with("link never came up"), "{e}");
        assert!(
            e.contains("net_memif1 (memif client, socket /r/nat1--vpn1.sock)"),
            "{e}"
        );
        assert!(!e.contains("gen1--nat1"), "{e}");
        let e = links_down_error(&["net_memif0", "net_pcap0"], &eal);
        assert!(e.starts_with("links never came up"), "{e}");
        assert!(
            e.contains("/r/gen1--nat1.sock") && e.contains(", net_pcap0 "),
            "{e}"
        );
    }

    #[test]
    fn early_exit_quotes_the_nf_error() {
        let log = "EAL: probing\nms-nf: error: link never came up in time: x\n{\"nf\":1}\n";
        assert_eq!(
            last_error_line(log),
            Some("ms-nf: error: link never came up in time: x")
        );
        assert_eq!(last_error_line("all fine\n"), None);
    }

    #[test]
    fn loss_and_delay_truth_takes_the_nf_reported_window() {
        let topo = Topology::small();
        let inj = vec![
            Injection::parse("loss:nf=nat1,at=1s,for=100ms,p=0.5").unwrap(),
            Injection::parse("delay:nf=vpn1,at=2s,for=100ms,per_packet=1us").unwrap(),
        ];
        let mut truth = inject::truth(&inj, 1_000, 3_000_000_000, 1e5, 100, 1, &topo);
        let stats = vec![
            (
                "nat1".to_string(),
                Some(serde_json::json!({ "stats": { "injected": [
                    { "index": 0, "kind": "loss", "start_ns": 1_000_005_000u64,
                      "end_ns": 1_100_005_000u64, "packets": 4321 } ] } })),
            ),
            // vpn1 printed no statistics: the plan stays.
            ("vpn1".to_string(), None),
        ];
        record_actual_times(&mut truth, &inj, &stats);
        let loss = &truth.faults[0];
        assert_eq!((loss.start_ns, loss.end_ns), (1_000_005_000, 1_100_005_000));
        assert_eq!(loss.params["packets"], 4321);
        assert_eq!(loss.params["planned_start_ns"], 1_000_001_000u64);
        let delay = &truth.faults[1];
        assert_eq!(delay.start_ns, 2_000_001_000);
        assert!(delay.params.get("packets").is_none());
    }
}
