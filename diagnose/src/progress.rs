//! A terminal progress bar for [`crate::run_with_progress`] (drawn on
//! stderr, only when stderr is a TTY).

use crate::Stage;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

/// Draws the engine's stages; a no-op when stderr is not a terminal.
pub struct TtyProgress {
    bar: Option<Mutex<(Option<Stage>, ProgressBar)>>,
}

impl TtyProgress {
    pub fn new() -> TtyProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(1);
            b.set_style(
                ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            Mutex::new((None, b))
        });
        TtyProgress { bar }
    }

    /// The callback to pass to [`crate::run_with_progress`].
    pub fn update(&self, stage: Stage, done: u64, total: u64) {
        let Some(m) = &self.bar else { return };
        let Ok(mut g) = m.lock() else { return };
        if g.0 != Some(stage) {
            g.0 = Some(stage);
            g.1.set_message(match stage {
                Stage::Reconstruct => "reconstruct",
                Stage::Victims => "victims",
                Stage::Diagnose => "diagnose",
            });
            g.1.set_length(total.max(1));
        }
        g.1.set_position(done);
    }

    pub fn finish(&self) {
        if let Some(m) = &self.bar {
            if let Ok(g) = m.lock() {
                g.1.finish_and_clear();
            }
        }
    }
}

impl Default for TtyProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// This process's CPU time so far (user + system, seconds) and minor page
/// faults, from `/proc/self/stat`; NaN where that file is missing. For the
/// stage timings printed under `MICROSCOPE_TIMING`, which wall time alone
/// would misreport on a shared machine (and on a VM, first touches of
/// fresh memory are a large part of the CPU time).
pub fn process_cpu_s() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name start at field 3 (state):
    // minflt, utime and stime (fields 10, 14 and 15) are then at 7, 11 and
    // 12, times in USER_HZ = 100 ticks.
    let rest = s.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    ((num(11) + num(12)) / 100.0, num(7))
}

/// Prints `what`, wall time since `t0`, process CPU time and page faults
/// on stderr when `MICROSCOPE_TIMING` is set.
pub fn lap(t0: std::time::Instant, what: &str) {
    if std::env::var_os("MICROSCOPE_TIMING").is_some() {
        let (cpu, flt) = process_cpu_s();
        eprintln!(
            "{what} {:.2}s (process CPU {cpu:.2}s, {:.0}k minor faults)",
            t0.elapsed().as_secs_f64(),
            flt / 1e3
        );
    }
}
