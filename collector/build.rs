//! Compiles `csrc/ring_check.c` — which includes the shared ring header
//! `shim-c/include/microscope_ring.h` and so runs its `_Static_assert`s —
//! into a small static library that tests and benches use to drive the real
//! C producer. A missing C compiler does not fail the build (the default
//! build needs only Rust); it sets `ms_ring_no_c`, and the tests that need
//! the C side then fail with a message saying so.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ms_ring_c)");
    println!("cargo::rustc-check-cfg=cfg(ms_ring_no_c)");
    println!("cargo::rerun-if-changed=csrc/ring_check.c");
    println!("cargo::rerun-if-changed=../shim-c/include/microscope_ring.h");
    println!("cargo::rerun-if-changed=build.rs");
    // The platform's default compiler (`cc`), else clang or gcc by name.
    let works = |b: &cc::Build| {
        b.try_get_compiler()
            .ok()
            .and_then(|c| c.to_command().arg("--version").output().ok())
            .is_some_and(|o| o.status.success())
    };
    let mut build = cc::Build::new();
    let mut compiler_works = works(&build);
    for alt in ["clang", "gcc"] {
        if compiler_works {
            break;
        }
        let mut b = cc::Build::new();
        b.compiler(alt);
        if works(&b) {
            build = b;
            compiler_works = true;
        }
    }
    let result = build
        .file("csrc/ring_check.c")
        .include("../shim-c/include")
        .flag_if_supported("-std=c11")
        .warnings(true)
        .extra_warnings(true)
        // Layout asserts (_Static_assert) and real errors fail the build; a
        // warning from some other compiler version must not, so it is shown
        // instead (the header is kept -Wall -Wextra clean by review).
        .warnings_into_errors(false)
        .cargo_warnings(true)
        .try_compile("microscope_ring_check");
    match result {
        Ok(()) => println!("cargo::rustc-cfg=ms_ring_c"),
        Err(e) if compiler_works => {
            // A working compiler rejected the header: its layout asserts or
            // code are broken. That must fail the build.
            panic!("compiling csrc/ring_check.c with microscope_ring.h failed: {e}");
        }
        Err(e) => {
            println!("cargo::warning=microscope_ring.h not compiled (no working C compiler?): {e}");
            println!("cargo::rustc-cfg=ms_ring_no_c");
        }
    }
}
