//! `ms-nf` — one DPDK NF process of the testbed (generator, firewall,
//! monitor, NAT, VPN or sink), with the Microscope shim linked in.
//!
//! Usage: `ms-nf [EAL args] -- --kind KIND --inputs DEV,.. --outputs DEV,.. [options]`
//! where DEVs are ethdev names given to EAL with `--vdev` (e.g. `net_memif0`).
//! Normally started by `ms-testbed` / `microscope testbed dpdk`, which
//! builds the memif vdevs; see `--help` for every option.
//!
//! On SIGINT/SIGTERM it stops polling, prints one JSON line of statistics
//! on stdout, closes its ports and releases the EAL.

#[cfg(not(has_dpdk))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "ms-nf: this build has no DPDK (dpdk-sys found no libdpdk >= 22.11 or no libclang at \
         build time). Install: apt-get install dpdk libdpdk-dev pkg-config clang libclang-dev, \
         then rebuild: cargo build --release -p dpdk-testbed"
    );
    std::process::ExitCode::from(2)
}

#[cfg(has_dpdk)]
fn main() -> std::process::ExitCode {
    match app::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ms-nf: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(has_dpdk)]
mod app {
    use anyhow::{bail, Context, Result};
    use clap::Parser;
    use collector::FiveTuple;
    use dpdk_testbed::inject::{self, SCHEDULE_LEN};
    use dpdk_testbed::nf::{Firewall, FirewallBug, Monitor, Nat, Rule, Verdict, Vpn, VPN_TAG_LEN};
    use dpdk_testbed::packet;
    use dpdk_testbed::runtime::{self as rt, Mbuf, Pool};
    use dpdk_testbed::topology::Kind;
    use dpdk_testbed::{mono_ns, traffic};
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::sync::atomic::{AtomicBool, Ordering};

    const BURST: usize = 32;

    #[derive(Parser, Debug)]
    #[command(name = "ms-nf", about = "One DPDK NF of the Microscope testbed")]
    struct Opts {
        /// gen, firewall, monitor, nat, vpn or sink.
        #[arg(long)]
        kind: String,
        /// Input devices (ethdev names), polled round-robin.
        #[arg(long, value_delimiter = ',')]
        inputs: Vec<String>,
        /// Output devices; output i is the i-th.
        #[arg(long, value_delimiter = ',')]
        outputs: Vec<String>,
        /// Firewall rule (repeatable), `nf::Rule` syntax.
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// Generator rate in packets per second.
        #[arg(long, default_value_t = 200_000.0)]
        rate: f64,
        /// Synthetic traffic: number of flows.
        #[arg(long, default_value_t = 1000)]
        flows: usize,
        /// Synthetic traffic seed (also derives burst and bug flows).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replay this pcap instead of synthetic traffic.
        #[arg(long)]
        pcap: Option<std::path::PathBuf>,
        /// CLOCK_MONOTONIC ns at which the generator starts sending.
        #[arg(long, default_value_t = 0)]
        start_at_ns: u64,
        /// CLOCK_MONOTONIC ns by which every input and output link must be
        /// up (the testbed passes its traffic start): until then the NF
        /// waits for them, after it fails naming the links still down
        /// (0 = no check).
        #[arg(long, default_value_t = 0)]
        links_up_by_ns: u64,
        /// Generator: stop sending after this many ns (0 = until signalled).
        #[arg(long, default_value_t = 0)]
        duration_ns: u64,
        /// Burst injection `AT_NS:PACKETS:FLOWS:INDEX` (absolute mono ns).
        #[arg(long = "burst")]
        bursts: Vec<String>,
        /// Stall injection `AT_NS:FOR_NS` (absolute mono ns).
        #[arg(long = "stall")]
        stalls: Vec<String>,
        /// Firewall bug `AT_NS:FOR_NS:CYCLES:FLOWS` (absolute mono ns).
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Loss injection `AT_NS:FOR_NS:THRESHOLD:INDEX`: drop a received
        /// packet when a ChaCha8 draw (u32) is below THRESHOLD
        /// (`inject::loss_threshold`), seeded by `inject::loss_seed(seed, INDEX)`.
        #[arg(long = "loss")]
        losses: Vec<String>,
        /// Delay injection `AT_NS:FOR_NS:PER_PACKET_NS:INDEX`: busy-wait that
        /// long before processing each received packet.
        #[arg(long = "delay")]
        delays: Vec<String>,
        /// mbufs in the pool.
        #[arg(long, default_value_t = 8191)]
        mbufs: u32,
        /// Descriptors per queue.
        #[arg(long, default_value_t = 1024)]
        ring: u16,
        /// Do not attach the Microscope shim (overhead baseline).
        #[arg(long)]
        no_shim: bool,
        /// Generator: send when at least this many packets are due (or 200 µs
        /// passed since the last send), as a real traffic source batches.
        #[arg(long, default_value_t = 16)]
        gen_batch: u64,
        /// Yield the CPU after this many consecutive empty polls of all
        /// inputs (0 = never); for NFs sharing a core.
        #[arg(long, default_value_t = 0)]
        yield_after: u32,
        /// Instead of yielding, sleep this many microseconds once
        /// `--yield-after` empty polls ran in a row (0 = yield). A sleeping
        /// NF leaves its core to the others and is woken promptly by the
        /// scheduler (the idea of DPDK's l3fwd-power), so NFs sharing a core
        /// see far less scheduling delay than busy pollers. The generator
        /// sleeps until its next packet is due, at most this long.
        #[arg(long, default_value_t = 0)]
        idle_sleep_us: u64,
        /// NFs: process at most this many packets per second (0 = as fast
        /// as the CPU allows). Each received batch of n packets occupies the
        /// NF for n/PEAK_RATE seconds (paced on the TSC, yielding the core
        /// meanwhile when `--yield-after` is set) before its output is sent,
        /// so the NF's peak rate is known — the value the testbed writes into
        /// the trace's topology — as long as the CPU-bound rate is higher
        /// (statistics: `pace_wait_ns` is the time spent pacing).
        #[arg(long, default_value_t = 0.0)]
        peak_rate: f64,
        /// Run the polling thread under SCHED_FIFO at this priority (0 =
        /// normal scheduling): woken at once when its idle sleep ends instead
        /// of waiting out other processes' time slices. Only sensible with
        /// `--idle-sleep-us` (an NF that never sleeps would starve its core
        /// but for the kernel's real-time throttling). While pacing to
        /// `--peak-rate` it yields to other real-time NFs on its core.
        #[arg(long, default_value_t = 0)]
        realtime: i32,
    }

    /// Gives the core away after a run of empty polls: sleeps `idle_sleep_us`
    /// when set, else yields.
    fn idle(o: &Opts, us: u64) {
        if o.idle_sleep_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(us.min(o.idle_sleep_us)));
        } else {
            std::thread::yield_now();
        }
    }

    static STOP: AtomicBool = AtomicBool::new(false);

    /// CPU time of the calling thread, ns.
    fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::Relaxed);
    }

    /// A CLOCK_MONOTONIC instant, checked cheaply from the TSC: the clock is
    /// read only once the TSC is within 2 % of the estimated deadline.
    #[derive(Clone, Copy, Debug)]
    struct Deadline {
        mono_ns: u64,
        tsc_early: u64,
    }

    struct Clock {
        tsc0: u64,
        mono0: u64,
        hz: f64,
    }

    impl Clock {
        fn new() -> Clock {
            let t = rt::rdtsc();
            Clock {
                tsc0: t,
                mono0: mono_ns(),
                hz: rt::tsc_hz() as f64,
            }
        }
        fn deadline(&self, mono: u64) -> Deadline {
            let dt = mono.saturating_sub(self.mono0) as f64 * 0.98;
            Deadline {
                mono_ns: mono,
                tsc_early: self.tsc0 + (dt * self.hz / 1e9) as u64,
            }
        }
    }

    impl Deadline {
        #[inline]
        fn reached(&self, tsc: u64) -> bool {
            tsc >= self.tsc_early && mono_ns() >= self.mono_ns
        }
    }

    fn nums<const N: usize>(s: &str, what: &str) -> Result<[u64; N]> {
        let v: Vec<u64> = s
            .split(':')
            .map(|x| x.parse::<u64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--{what} \"{s}\": expected {N} numbers separated by ':'"))?;
        v.try_into()
            .map_err(|_| anyhow::anyhow!("--{what} \"{s}\": expected {N} numbers"))
    }

    #[derive(Default, serde::Serialize)]
    struct Stats {
        rx: u64,
        tx: u64,
        dropped_nf: u64,
        dropped_tx: u64,
        burst_sent: u64,
        stalls_done: u32,
        stall_real_ns: Vec<(u64, u64)>,
        /// When the firewall bug was armed (CLOCK_MONOTONIC ns).
        bug_real_ns: Option<u64>,
        /// Time spent pacing to `--peak-rate` (0 without it; near 0 while
        /// backlogged would mean the CPU, not the cap, set the rate).
        pace_wait_ns: u64,
        /// Packets dropped by loss injections (not in `dropped_nf`).
        dropped_injected: u64,
        /// Loss and delay windows as they really ran.
        injected: Vec<InjectedReal>,
        /// CLOCK_MONOTONIC ns of the first packet received (NFs) or sent
        /// (generator), and of the end of the loop: the span throughput is
        /// measured over.
        first_ns: u64,
        last_ns: u64,
        /// CPU time of the polling thread over the same span (ns): with
        /// `rx`/`tx` it gives packets per CPU-second, which — unlike the
        /// wall-clock rate — does not fall when other processes take the
        /// core (the overhead benchmark's measure).
        cpu_ns: u64,
    }

    /// A loss or delay window as it ran: `index` is the injection's index
    /// on the command line of `ms-testbed` (the truth's fault id).
    #[derive(Clone, Debug, serde::Serialize)]
    struct InjectedReal {
        index: u64,
        kind: &'static str,
        start_ns: u64,
        end_ns: u64,
        /// Packets dropped (loss) or delayed (delay) in the window.
        packets: u64,
    }

    enum PacketFaultKind {
        Loss {
            threshold: u64,
            rng: Box<ChaCha8Rng>,
        },
        Delay {
            ticks: u64,
        },
    }

    /// A per-packet injection (loss or delay): armed on CLOCK_MONOTONIC,
    /// then active over a TSC window.
    struct PacketFault {
        index: u64,
        at: Deadline,
        for_ns: u64,
        kind: PacketFaultKind,
        /// (start, end) TSC once armed.
        window: Option<(u64, u64)>,
        real: Option<InjectedReal>,
    }

    fn packet_faults(o: &Opts, clock: &Clock) -> Result<Vec<PacketFault>> {
        let mut v = Vec::new();
        for s in &o.losses {
            let [at, dur, threshold, index] = nums::<4>(s, "loss")?;
            v.push(PacketFault {
                index,
                at: clock.deadline(at),
                for_ns: dur,
                kind: PacketFaultKind::Loss {
                    threshold,
                    rng: Box::new(ChaCha8Rng::seed_from_u64(inject::loss_seed(
                        o.seed,
                        index as usize,
                    ))),
                },
                window: None,
                real: None,
            });
        }
        for s in &o.delays {
            let [at, dur, per_packet_ns, index] = nums::<4>(s, "delay")?;
            v.push(PacketFault {
                index,
                at: clock.deadline(at),
                for_ns: dur,
                kind: PacketFaultKind::Delay {
                    ticks: (per_packet_ns as f64 * clock.hz / 1e9) as u64,
                },
                window: None,
                real: None,
            });
        }
        Ok(v)
    }

    /// Arms the faults whose time came; returns true when one is active at
    /// `now` (the per-packet path is only taken then).
    fn faults_active(faults: &mut [PacketFault], now: u64, clock: &Clock) -> bool {
        let mut any = false;
        for f in faults.iter_mut() {
            match f.window {
                None if f.at.reached(now) => {
                    let start_ns = mono_ns();
                    f.window = Some((now, now + (f.for_ns as f64 * clock.hz / 1e9) as u64));
                    f.real = Some(InjectedReal {
                        index: f.index,
                        kind: match f.kind {
                            PacketFaultKind::Loss { .. } => "loss",
                            PacketFaultKind::Delay { .. } => "delay",
                        },
                        start_ns,
                        end_ns: start_ns + f.for_ns,
                        packets: 0,
                    });
                    any = true;
                }
                Some((s, e)) if now >= s && now < e => any = true,
                _ => {}
            }
        }
        any
    }

    /// Applies the active faults to one packet; false means drop it.
    #[inline]
    fn apply_faults(faults: &mut [PacketFault], now: u64) -> bool {
        for f in faults.iter_mut() {
            let Some((s, e)) = f.window else { continue };
            if now < s || now >= e {
                continue;
            }
            let real = f.real.as_mut().expect("armed with its record");
            match &mut f.kind {
                PacketFaultKind::Loss { threshold, rng } => {
                    if (rng.next_u32() as u64) < *threshold {
                        real.packets += 1;
                        return false;
                    }
                }
                PacketFaultKind::Delay { ticks } => {
                    let t = rt::rdtsc();
                    while rt::rdtsc() < t + *ticks {
                        std::hint::spin_loop();
                    }
                    real.packets += 1;
                }
            }
        }
        true
    }

    struct Outs {
        ports: Vec<u16>,
        bufs: Vec<[Mbuf; BURST]>,
        lens: Vec<usize>,
    }

    impl Outs {
        fn new(ports: Vec<u16>) -> Outs {
            let n = ports.len();
            Outs {
                ports,
                bufs: vec![[std::ptr::null_mut(); BURST]; n],
                lens: vec![0; n],
            }
        }
        #[inline]
        fn push(&mut self, o: usize, m: Mbuf, st: &mut Stats) {
            if self.lens[o] == BURST {
                self.flush_one(o, st);
            }
            self.bufs[o][self.lens[o]] = m;
            self.lens[o] += 1;
        }
        #[inline]
        fn flush_one(&mut self, o: usize, st: &mut Stats) {
            let n = self.lens[o];
            if n == 0 {
                return;
            }
            let sent = rt::tx(self.ports[o], &mut self.bufs[o][..n]);
            st.tx += sent as u64;
            if sent < n {
                rt::free(&self.bufs[o][sent..n]);
                st.dropped_tx += (n - sent) as u64;
            }
            self.lens[o] = 0;
        }
        fn flush(&mut self, st: &mut Stats) {
            for o in 0..self.ports.len() {
                self.flush_one(o, st);
            }
        }
        #[inline]
        fn pick(&self, v: Verdict, t: Option<&FiveTuple>) -> Option<usize> {
            let n = self.ports.len();
            match v {
                Verdict::Drop => None,
                Verdict::Out(i) => Some(i.min(n - 1)),
                Verdict::Hash => Some(match t {
                    Some(t) if n > 1 => (packet::flow_hash(t) % n as u64) as usize,
                    _ => 0,
                }),
            }
        }
    }

    enum Proc {
        Firewall(Firewall),
        Monitor(Monitor),
        Nat(Nat),
        Vpn(Box<Vpn>),
        Sink,
    }

    pub fn main() -> Result<()> {
        let argv: Vec<String> = std::env::args().collect();
        let split = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
        let eal: Vec<String> = argv[..split].to_vec();
        let mut app = vec![argv[0].clone()];
        app.extend(argv.get(split + 1..).unwrap_or(&[]).iter().cloned());
        let o = Opts::parse_from(app);
        let kind = Kind::parse(&o.kind).with_context(|| {
            format!(
                "--kind {}: expected gen, firewall, monitor, nat, vpn or sink",
                o.kind
            )
        })?;
        if kind != Kind::Gen && o.inputs.is_empty() {
            bail!("--inputs: {} needs at least one input device", o.kind);
        }
        if kind != Kind::Sink && o.outputs.is_empty() {
            bail!("--outputs: {} needs at least one output device", o.kind);
        }

        rt::eal_init(&eal)?;
        if o.realtime > 0 {
            let p = libc::sched_param {
                sched_priority: o.realtime,
            };
            // SAFETY: sched_setscheduler on this thread with a valid param.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
                eprintln!(
                    "ms-nf: SCHED_FIFO {} refused ({}); normal scheduling",
                    o.realtime,
                    std::io::Error::last_os_error()
                );
            }
        }
        if o.idle_sleep_us > 0 {
            // Sleeps of a few µs would otherwise be rounded up by the
            // default 50 µs timer slack.
            // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer argument.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        }
        // SAFETY: installs async-signal-safe handlers that only store to an atomic.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
        let pool = rt::pool_create("ms_pool", o.mbufs)?;
        let mut inputs = Vec::new();
        for d in &o.inputs {
            let p = rt::port_by_name(d)?;
            rt::port_start(p, pool, o.ring, !o.no_shim)?;
            inputs.push(p);
        }
        let mut outputs = Vec::new();
        for d in &o.outputs {
            let p = rt::port_by_name(d)?;
            rt::port_start(p, pool, o.ring, !o.no_shim)?;
            outputs.push(p);
        }
        if o.links_up_by_ns > 0 {
            if let Err(e) = wait_links(&o, &eal, &inputs, &outputs) {
                for p in inputs.iter().chain(outputs.iter()) {
                    rt::port_stop(*p);
                }
                rt::eal_cleanup();
                return Err(e);
            }
        }
        let clock = Clock::new();
        let mut st = Stats::default();
        let mut outs = Outs::new(outputs.clone());

        let result = if kind == Kind::Gen {
            run_gen(&o, pool, &clock, &mut outs, &mut st)
        } else {
            let proc_ = match kind {
                Kind::Firewall => {
                    let mut fw = Firewall {
                        rules: o
                            .rules
                            .iter()
                            .map(|r| Rule::parse(r).map_err(anyhow::Error::msg))
                            .collect::<Result<_>>()?,
                        ..Default::default()
                    };
                    if let Some(b) = o.bugs.first() {
                        let [_, _, cycles, flows] = nums::<4>(b, "bug")?;
                        // Armed by run_nf when its start time comes.
                        fw.bug = Some(FirewallBug {
                            flows: inject::bug_flows(o.flows, o.seed, flows as u32),
                            extra_cycles: cycles,
                            start_tsc: u64::MAX,
                            end_tsc: u64::MAX,
                        });
                    }
                    Proc::Firewall(fw)
                }
                Kind::Monitor => Proc::Monitor(Monitor::new()),
                Kind::Nat => Proc::Nat(Nat::new(0x6440_0001)),
                Kind::Vpn => Proc::Vpn(Box::new(Vpn::new([0x42; 16], std::process::id()))),
                _ => Proc::Sink,
            };
            run_nf(&o, proc_, &inputs, &clock, &mut outs, &mut st)
        };
        outs.flush(&mut st);
        if !o.no_shim {
            rt::shim_shutdown();
        }
        let shim = if o.no_shim {
            None
        } else {
            Some(rt::shim_stats())
        };
        println!(
            "{}",
            serde_json::json!({ "nf": o.kind, "stats": st, "shim": shim })
        );
        for p in inputs.iter().chain(outputs.iter()) {
            rt::port_stop(*p);
        }
        rt::eal_cleanup();
        result
    }

    /// Waits until every port's link is up; fails, naming the links still
    /// down, at `--links-up-by-ns` (or on a stop signal).
    fn wait_links(o: &Opts, eal: &[String], inputs: &[u16], outputs: &[u16]) -> Result<()> {
        let devs: Vec<(&str, u16)> = o
            .inputs
            .iter()
            .zip(inputs)
            .chain(o.outputs.iter().zip(outputs))
            .map(|(d, p)| (d.as_str(), *p))
            .collect();
        loop {
            let down: Vec<&str> = devs
                .iter()
                .filter(|(_, p)| !rt::link_up(*p).unwrap_or(false))
                .map(|(d, _)| *d)
                .collect();
            if down.is_empty() {
                return Ok(());
            }
            if mono_ns() >= o.links_up_by_ns || STOP.load(Ordering::Relaxed) {
                bail!(
                    "{}",
                    dpdk_testbed::orchestrate::links_down_error(&down, eal)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn stall_list(o: &Opts, clock: &Clock) -> Result<Vec<(Deadline, u64)>> {
        let mut v = o
            .stalls
            .iter()
            .map(|s| nums::<2>(s, "stall").map(|[at, d]| (clock.deadline(at), d)))
            .collect::<Result<Vec<_>>>()?;
        v.sort_by_key(|(d, _)| d.mono_ns);
        v.reverse(); // pop() gives the earliest
        Ok(v)
    }

    fn run_nf(
        o: &Opts,
        mut proc_: Proc,
        inputs: &[u16],
        clock: &Clock,
        outs: &mut Outs,
        st: &mut Stats,
    ) -> Result<()> {
        let mut stalls = stall_list(o, clock)?;
        // A firewall bug starts on CLOCK_MONOTONIC; from then on its window
        // is checked per packet on the TSC.
        let mut bug_arm = match o.bugs.first() {
            Some(b) => {
                let [at, dur, _, _] = nums::<4>(b, "bug")?;
                Some((clock.deadline(at), dur))
            }
            None => None,
        };
        let mut faults = packet_faults(o, clock)?;
        let pace_ticks = if o.peak_rate > 0.0 {
            clock.hz / o.peak_rate
        } else {
            0.0
        };
        // The NF is busy (serving earlier packets at the peak rate) until then.
        let mut busy_until = 0u64;
        let mut bufs: [Mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut empty_run = 0u32;
        let mut cpu0 = 0u64;
        while !STOP.load(Ordering::Relaxed) {
            let now = rt::rdtsc();
            let faulty = !faults.is_empty() && faults_active(&mut faults, now, clock);
            if let Some((d, dur)) = stalls.last().copied() {
                if d.reached(now) {
                    // The interrupt: no polling at all for `dur` (the CPU is
                    // given to others, as a descheduled NF would).
                    let s = mono_ns();
                    std::thread::sleep(std::time::Duration::from_nanos(dur));
                    st.stall_real_ns.push((s, mono_ns()));
                    st.stalls_done += 1;
                    stalls.pop();
                }
            }
            if let Some((d, dur)) = bug_arm {
                if d.reached(now) {
                    if let Proc::Firewall(Firewall { bug: Some(b), .. }) = &mut proc_ {
                        b.start_tsc = now;
                        b.end_tsc = now + (dur as f64 * clock.hz / 1e9) as u64;
                        st.bug_real_ns = Some(mono_ns());
                    }
                    bug_arm = None;
                }
            }
            let mut got = 0usize;
            for &port in inputs {
                let n = rt::rx(port, &mut bufs);
                if n == 0 {
                    continue;
                }
                got += n;
                if st.rx == 0 {
                    st.first_ns = mono_ns();
                    cpu0 = thread_cpu_ns();
                }
                st.rx += n as u64;
                for &m in &bufs[..n] {
                    if faulty && !apply_faults(&mut faults, now) {
                        rt::free(&[m]);
                        st.dropped_injected += 1;
                        continue;
                    }
                    process_one(&mut proc_, m, outs, st);
                }
            }
            if got > 0 && pace_ticks > 0.0 {
                busy_until = busy_until.max(now) + (got as f64 * pace_ticks) as u64;
                let t = rt::rdtsc();
                if t < busy_until {
                    st.pace_wait_ns += ((busy_until - t) as f64 * 1e9 / clock.hz) as u64;
                    // Busy, as a slower NF would be: at most 32 packets'
                    // worth (tens of µs), and only while backlogged. (A
                    // yield here hands the core to whatever else runs for a
                    // whole time slice, milliseconds on a loaded machine.)
                    // Under SCHED_FIFO a yield only lets other real-time
                    // NFs of this core run, which is what sharing it needs.
                    while rt::rdtsc() < busy_until {
                        if o.realtime > 0 {
                            // SAFETY: sched_yield has no preconditions.
                            unsafe { libc::sched_yield() };
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
            outs.flush(st);
            if got > 0 {
                empty_run = 0;
            } else if o.yield_after > 0 {
                empty_run += 1;
                if empty_run >= o.yield_after {
                    empty_run = 0;
                    idle(o, o.idle_sleep_us);
                }
            }
        }
        st.last_ns = mono_ns();
        st.cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
        st.injected = faults.into_iter().filter_map(|f| f.real).collect();
        Ok(())
    }

    #[inline]
    fn process_one(proc_: &mut Proc, m: Mbuf, outs: &mut Outs, st: &mut Stats) {
        // SAFETY: m was just received and is owned by us until handed on.
        let (verdict, tuple) = match proc_ {
            Proc::Sink => (Verdict::Drop, None),
            Proc::Firewall(fw) => match unsafe { rt::data(m, 0) } {
                Some(f) => {
                    let (v, p) = fw.classify(f);
                    if let Some(p) = &p {
                        let now = rt::rdtsc();
                        let extra = fw.bug_cost(&p.tuple, now);
                        if extra > 0 {
                            while rt::rdtsc() < now + extra {
                                std::hint::spin_loop();
                            }
                        }
                    }
                    (v, p.map(|p| p.tuple))
                }
                None => (Verdict::Drop, None),
            },
            Proc::Monitor(mon) => match unsafe { rt::data(m, 0) } {
                Some(f) => (mon.process(f), packet::parse(f).map(|p| p.tuple)),
                None => (Verdict::Drop, None),
            },
            Proc::Nat(nat) => match unsafe { rt::data(m, 0) } {
                Some(f) => {
                    let v = nat.process(f);
                    (v, packet::parse(f).map(|p| p.tuple))
                }
                None => (Verdict::Drop, None),
            },
            Proc::Vpn(vpn) => {
                // SAFETY: as above; 16 bytes of tailroom appended for the tag.
                let len = unsafe { dpdk_sys::rte_pktmbuf_data_len(m) } as usize;
                match unsafe { rt::data(m, VPN_TAG_LEN as u16) } {
                    Some(f) => match vpn.seal(f, len) {
                        Some(_) => (Verdict::Hash, packet::parse(f).map(|p| p.tuple)),
                        None => (Verdict::Drop, None),
                    },
                    None => (Verdict::Drop, None),
                }
            }
        };
        match outs.pick(verdict, tuple.as_ref()) {
            Some(i) if !outs.ports.is_empty() => outs.push(i, m, st),
            _ => {
                rt::free(&[m]);
                if !matches!(proc_, Proc::Sink) {
                    st.dropped_nf += 1;
                }
            }
        }
    }

    struct Burst {
        at: Deadline,
        remaining: u64,
        frames: Vec<Vec<u8>>,
        ipids: Vec<u16>,
        next: usize,
    }

    fn run_gen(o: &Opts, pool: Pool, clock: &Clock, outs: &mut Outs, st: &mut Stats) -> Result<()> {
        let mut tr = match &o.pcap {
            Some(p) => traffic::from_pcap(p)?,
            None => traffic::synthetic(o.flows, SCHEDULE_LEN, o.seed),
        };
        let tuples: Vec<Option<FiveTuple>> = tr
            .frames
            .iter()
            .map(|f| packet::parse(f).map(|p| p.tuple))
            .collect();
        let mut bursts = o
            .bursts
            .iter()
            .map(|s| {
                let [at, packets, flows, index] = nums::<4>(s, "burst")?;
                let frames: Vec<Vec<u8>> =
                    inject::burst_flows(o.seed, index as usize, flows as u32)
                        .iter()
                        .map(|t| packet::build_frame(t, 0, packet::FRAME_LEN).expect("fits"))
                        .collect();
                Ok(Burst {
                    at: clock.deadline(at),
                    remaining: packets,
                    ipids: inject::burst_ipid_starts(o.seed, index as usize, flows as u32),
                    frames,
                    next: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Wait for the common start time.
        while mono_ns() < o.start_at_ns && !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let t0 = rt::rdtsc();
        st.first_ns = mono_ns();
        let cpu0 = thread_cpu_ns();
        let hz = clock.hz;
        let end = (o.duration_ns > 0)
            .then(|| clock.deadline(o.start_at_ns.max(mono_ns()) + o.duration_ns));
        let mut sched = 0u64; // packets of the base schedule sent or dropped
        let mut last_send = t0;
        let flush_ticks = (hz * 200e-6) as u64;
        let mut pos = 0usize;
        let mut ipids = tr.ipid_start.clone();
        let mut bufs: [Mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut scratch: Vec<Vec<u8>> = vec![Vec::new(); BURST];
        let nout = outs.ports.len();
        while !STOP.load(Ordering::Relaxed) {
            let now = rt::rdtsc();
            if end.is_some_and(|e| e.reached(now)) {
                break;
            }
            let due = ((now - t0) as f64 / hz * o.rate) as u64;
            let backlog = due.saturating_sub(sched);
            let mut n = if backlog >= o.gen_batch.max(1)
                || (backlog > 0 && now - last_send > flush_ticks)
            {
                backlog.min(BURST as u64) as usize
            } else {
                0
            };
            // Burst traffic rides on top of the schedule, back to back.
            let mut from_burst = 0usize;
            for b in bursts
                .iter_mut()
                .filter(|b| b.remaining > 0 && b.at.reached(now))
            {
                while from_burst < BURST && b.remaining > 0 {
                    let i = b.next % b.frames.len();
                    b.next += 1;
                    let mut f = b.frames[i].clone();
                    if let Some(mut p) = packet::parse(&f) {
                        packet::set_ipid(&mut f, &mut p, b.ipids[i]);
                    }
                    b.ipids[i] = b.ipids[i].wrapping_add(1);
                    scratch[from_burst] = f;
                    from_burst += 1;
                    b.remaining -= 1;
                }
            }
            if n == 0 && from_burst == 0 {
                if o.yield_after > 0 {
                    // Until the next send is due: the batch fills, or the
                    // 200 µs flush comes.
                    let to_batch = (o.gen_batch.max(1) - backlog) as f64 / o.rate * 1e6;
                    let to_flush = if backlog > 0 {
                        (last_send + flush_ticks).saturating_sub(now) as f64 / hz * 1e6
                    } else {
                        f64::INFINITY
                    };
                    idle(o, to_batch.min(to_flush).max(1.0) as u64);
                }
                continue;
            }
            n = n.min(BURST - from_burst);
            for k in 0..n {
                let idx = tr.order[pos] as usize;
                pos = (pos + 1) % tr.order.len();
                let mut f = std::mem::take(&mut tr.frames[idx]);
                if tr.rewrite_ipid {
                    if let Some(mut p) = packet::parse(&f) {
                        packet::set_ipid(&mut f, &mut p, ipids[idx]);
                    }
                    ipids[idx] = ipids[idx].wrapping_add(1);
                }
                scratch[from_burst + k].clear();
                scratch[from_burst + k].extend_from_slice(&f);
                tr.frames[idx] = f;
            }
            let total = from_burst + n;
            last_send = now;
            let got = rt::alloc_frames(
                pool,
                &mut bufs[..total],
                scratch[..total].iter().map(|v| v.as_slice()),
            );
            st.burst_sent += from_burst.min(got) as u64;
            // Spread over outputs by flow hash, like the NFs.
            for (k, &m) in bufs[..got].iter().enumerate() {
                let o_idx = if nout > 1 {
                    let t = if k < from_burst {
                        packet::parse(&scratch[k]).map(|p| p.tuple)
                    } else {
                        tuples[tr.order
                            [(pos + tr.order.len() - n + (k - from_burst)) % tr.order.len()]
                            as usize]
                    };
                    t.map_or(0, |t| (packet::flow_hash(&t) % nout as u64) as usize)
                } else {
                    0
                };
                outs.push(o_idx, m, st);
            }
            st.dropped_tx += (total - got) as u64;
            outs.flush(st);
            sched += n as u64;
        }
        st.last_ns = mono_ns();
        st.cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
        Ok(())
    }
}
