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
