//! `ms-nf` fails, naming the link, when a memif link never comes up by
//! `--links-up-by-ns` (the testbed passes its traffic start, so
//! `ms-testbed` then fails too instead of tracing a chain that drops
//! everything). Needs DPDK at run time: `scripts/test-dpdk` runs it.
#![cfg(has_dpdk)]

use std::process::Command;

#[test]
fn nf_fails_naming_a_memif_link_that_never_came_up() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("gen1--sink1.sock");
    // A memif server no client ever connects to: its link stays down.
    let deadline = dpdk_testbed::mono_ns() + 1_000_000_000;
    let prefix = format!("ms-linkdown-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_ms-nf"))
        .args(["--no-huge", "-m", "256", "--no-pci", "-l", "0"])
        .args(["--file-prefix", &prefix, "--log-level", "lib.eal:warning"])
        .arg("--vdev")
        .arg(format!(
            "net_memif0,role=server,id=0,socket={},socket-abstract=no",
            sock.display()
        ))
        .args([
            "--",
            "--kind",
            "sink",
            "--inputs",
            "net_memif0",
            "--no-shim",
        ])
        .args(["--links-up-by-ns", &deadline.to_string()])
        .output()
        .unwrap();
    // The EAL's runtime directory of the prefix (root: /var/run/dpdk).
    let _ = std::fs::remove_dir_all(std::path::Path::new("/var/run/dpdk").join(&prefix));
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
        let _ = std::fs::remove_dir_all(std::path::Path::new(&x).join("dpdk").join(&prefix));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("link never came up in time")
            && err.contains("net_memif0 (memif server, socket ")
            && err.contains("gen1--sink1.sock"),
        "the error must name the link: {err}"
    );
    assert!(
        dpdk_testbed::mono_ns() >= deadline,
        "it must wait for the link until the deadline"
    );
}
