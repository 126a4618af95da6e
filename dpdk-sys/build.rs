//! Build script of `dpdk-sys`: find DPDK, generate bindings, compile the
//! inline-function wrappers — or, when DPDK cannot be used, build an empty
//! shell so the rest of the workspace never needs DPDK or libclang.
//!
//! Decision, in order:
//! 1. `DPDK_SYS_DISABLE=1` in the environment → shell (simulates a machine
//!    without DPDK; `PKG_CONFIG_LIBDIR=/nonexistent` does the same by hiding
//!    `libdpdk.pc`).
//! 2. `pkg-config --atleast-version 22.11 libdpdk` fails → shell.
//! 3. bindgen cannot load libclang (package `libclang-dev` missing) → shell.
//! 4. Otherwise: `$OUT_DIR/bindings.rs` from `csrc/wrapper.h`, and
//!    `libdpdk_sys_wrapper.a` from `csrc/wrapper.c`, linked with
//!    `pkg-config --libs libdpdk`.
//!
//! In shell mode the crate gets `--cfg no_dpdk`; dependents read
//! `DEP_DPDK_AVAILABLE` (`1`/`0`, via `links = "dpdk"`) in their own build
//! scripts to gate their DPDK code the same way.

use std::env;
use std::path::PathBuf;

const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rustc-check-cfg=cfg(no_dpdk)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.c");
    println!("cargo:rerun-if-env-changed=DPDK_SYS_DISABLE");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");

    match try_build() {
        Ok(version) => {
            println!("cargo:available=1");
            println!("cargo:version={version}");
            println!("cargo:rustc-env=DPDK_SYS_VERSION={version}");
        }
        Err(why) => {
            println!("cargo:warning=dpdk-sys: building without DPDK ({why})");
            println!("cargo:rustc-cfg=no_dpdk");
            println!("cargo:available=0");
        }
    }
}

fn try_build() -> Result<String, String> {
    if env::var("DPDK_SYS_DISABLE").is_ok_and(|v| !v.is_empty() && v != "0") {
        return Err("DPDK_SYS_DISABLE is set".into());
    }
    // Probe without emitting link flags yet: only a complete build links.
    let lib = pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
        .map_err(|e| {
            format!(
                "pkg-config found no libdpdk >= {MIN_VERSION}: {}",
                first_line(&e.to_string())
            )
        })?;

    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let mut clang_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    // Same ISA level DPDK's own pkg-config flags ask for (SSE4.2 intrinsics
    // in the headers).
    clang_args.push("-march=corei7".into());
    clang_args.push("-include".into());
    clang_args.push("rte_config.h".into());

    let builder = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("dpdk_sys_.*")
        .allowlist_function("rte_(eal|eth|pktmbuf|mempool|lcore|socket|get_tsc|delay|exit|strerror|malloc|free|zmalloc|vdev|version|get_main|get_next)_?.*")
        .allowlist_var("rte_eth_fp_ops")
        .allowlist_var("RTE_.*")
        .allowlist_type("rte_(ether|ipv4|tcp|udp)_hdr")
        .allowlist_type("rte_eth_(conf|rxconf|txconf|dev_info|stats|fp_ops|rx_callback_fn|tx_callback_fn)")
        // Packed structs with aligned members: rustc refuses them (E0588).
        .opaque_type("rte_arp_ipv4|rte_arp_hdr|rte_l2tpv2_.*|rte_gtp_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    // With bindgen's `runtime` feature a missing libclang is a panic inside
    // `generate`; turn it into the shell build instead.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    std::panic::set_hook(prev);
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(format!("bindgen failed on csrc/wrapper.h: {e}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!(
                "bindgen could not run (libclang missing? install libclang-dev): {}",
                first_line(&msg)
            ));
        }
    };
    bindings
        .write_to_file(out.join("bindings.rs"))
        .map_err(|e| format!("writing {}/bindings.rs: {e}", out.display()))?;

    let mut build = cc::Build::new();
    build
        .file("csrc/wrapper.c")
        .flag("-march=corei7")
        .opt_level(3);
    build.flag("-include").flag("rte_config.h");
    for p in &lib.include_paths {
        build.include(p);
    }
    build
        .try_compile("dpdk_sys_wrapper")
        .map_err(|e| format!("compiling csrc/wrapper.c: {e}"))?;

    // Now link DPDK itself. `--as-needed` would drop the driver libraries
    // nobody references by symbol; EAL loads drivers from its plugin
    // directory anyway, so the plain list is what we want.
    for p in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }
    for l in &lib.libs {
        println!("cargo:rustc-link-lib={l}");
    }
    Ok(lib.version)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}
