//! `microscope testbed dpdk`: run the real DPDK NF chain of `testbeds/dpdk`
//! and trace it.
//!
//! The DPDK code lives in the `dpdk-testbed` package (binaries `ms-testbed`
//! and `ms-nf`), so that this binary never links DPDK. The options are
//! defined once, by `ms-testbed`: this command passes its arguments to
//! `ms-testbed` (next to this binary) unchanged, `--help` included, adding
//! `--microscope` pointing at this binary so the chain's dumper is
//! `microscope dump`.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// Real DPDK NFs (firewall, monitor, NAT, VPN) between a generator and a
    /// sink over memif, no NICs or hugepages needed; writes trace.bin,
    /// truth.json, topology.json and logs/ into --out. Options:
    /// `microscope testbed dpdk --help` (they are ms-testbed's).
    #[command(disable_help_flag = true)]
    Dpdk(DpdkArgs),
}

#[derive(clap::Args)]
struct DpdkArgs {
    /// Passed to ms-testbed unchanged (`--topology`, `--duration`,
    /// `--inject`, `--out`, …; see `--help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// The `ms-testbed` command line for `args`: the user's arguments, then
/// `--microscope ME` unless the user chose a dumper binary or none.
fn forwarded(args: &[OsString], me: &Path) -> Vec<OsString> {
    let mut v = args.to_vec();
    let chosen = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "--microscope" || a.starts_with("--microscope=") || a == "--help" || a == "-h"
    });
    if !chosen {
        v.push("--microscope".into());
        v.push(me.as_os_str().to_owned());
    }
    v
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Which::Dpdk(a) = args.which;
    let me = std::env::current_exe()?;
    let dir = me
        .parent()
        .ok_or_else(|| anyhow::anyhow!("cannot locate the directory of {}", me.display()))?;
    let bin = dir.join("ms-testbed");
    if !bin.exists() {
        anyhow::bail!(
            "{} not found: build the DPDK testbed with `cargo build --release -p dpdk-testbed` \
             (needs: apt-get install dpdk libdpdk-dev pkg-config clang libclang-dev)",
            bin.display()
        );
    }
    let status = Command::new(&bin)
        .args(forwarded(&a.args, &me))
        .status()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", bin.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::from(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_pass_through_with_the_dumper_added() {
        let me = Path::new("/x/microscope");
        let user: Vec<OsString> = ["--out", "d", "--inject", "stall:nf=nat1,at=1s,for=1ms"]
            .iter()
            .map(OsString::from)
            .collect();
        let v = forwarded(&user, me);
        assert_eq!(&v[..4], &user[..]);
        assert_eq!(&v[4..], &[OsString::from("--microscope"), me.into()]);
        let own: Vec<OsString> = ["--microscope=/y/ms", "--out", "d"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(forwarded(&own, me), own);
        let help = vec![OsString::from("--help")];
        assert_eq!(forwarded(&help, me), help);
    }
}
