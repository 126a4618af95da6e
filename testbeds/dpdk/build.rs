//! Build script of `dpdk-testbed`: when `dpdk-sys` was built against a real
//! DPDK (`DEP_DPDK_AVAILABLE=1`, from its `links = "dpdk"`), compile the
//! Microscope shim (`shim-c/src/shim.c`) into a static library linked into the
//! NF binaries and set `--cfg has_dpdk`. Otherwise the crate's DPDK runtime is
//! left out and the NF binaries only explain how to get it.

use std::env;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(has_dpdk)");
    println!("cargo:rerun-if-changed=build.rs");
    for f in [
        "../../shim-c/src/shim.c",
        "../../shim-c/src/shim_internal.h",
        "../../shim-c/include/microscope_ring.h",
        "../../shim-c/include/microscope_shim.h",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=DEP_DPDK_AVAILABLE");
    if env::var("DEP_DPDK_AVAILABLE").as_deref() != Ok("1") {
        return;
    }
    let lib = match pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(l) => l,
        Err(e) => {
            println!(
                "cargo:warning=dpdk-testbed: dpdk-sys found DPDK but pkg-config does not now: {e}"
            );
            return;
        }
    };
    let mut b = cc::Build::new();
    b.file("../../shim-c/src/shim.c")
        .include("../../shim-c/include")
        .include("../../shim-c/src")
        .flag("-std=gnu11")
        .flag("-march=corei7")
        .flag("-include")
        .flag("rte_config.h")
        .opt_level(3)
        .warnings(false);
    for p in &lib.include_paths {
        b.include(p);
    }
    b.compile("microscope_shim");
    println!("cargo:rustc-link-lib=dl");
    println!("cargo:rustc-cfg=has_dpdk");
}
