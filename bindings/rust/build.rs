//! Finds liblongattn, in this order:
//!   1. `LONGATTN_LIB_DIR` (a directory holding liblongattn.so / liblongattn.a), with
//!      `LONGATTN_STATIC=1` to link the static archive;
//!   2. the `pkg-config` binary (`PKG_CONFIG_PATH=<build>/pkgconfig` finds the build tree's
//!      uninstalled longattn.pc; an installed library is found as is); `LONGATTN_STATIC=1` asks it
//!      for the static link line;
//!   3. a plain `-llongattn` from the linker's default paths.
//!
//! For a shared library found in 1 or 2, an rpath to its directory is added to this package's
//! tests, examples and binaries so that they run without LD_LIBRARY_PATH.

use std::env;
use std::path::Path;
use std::process::Command;

/// Libraries the static archive needs when no pkg-config file says so (C++ runtime, OpenMP).
const STATIC_DEPENDENCIES: &[&str] = &["stdc++", "gomp", "m", "dl", "pthread"];

fn main() {
    for var in [
        "LONGATTN_LIB_DIR",
        "LONGATTN_STATIC",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG",
    ] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    println!("cargo:rerun-if-changed=build.rs");

    let want_static = matches!(
        env::var("LONGATTN_STATIC").as_deref(),
        Ok("1") | Ok("true") | Ok("ON")
    );

    if let Some(dir) = env::var_os("LONGATTN_LIB_DIR") {
        let dir = Path::new(&dir);
        println!("cargo:rustc-link-search=native={}", dir.display());
        if want_static {
            println!("cargo:rustc-link-lib=static=longattn");
            for lib in STATIC_DEPENDENCIES {
                println!("cargo:rustc-link-lib=dylib={}", lib);
            }
        } else {
            println!("cargo:rustc-link-lib=dylib=longattn");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        }
        return;
    }

    if link_with_pkg_config(want_static) {
        return;
    }

    println!("cargo:warning=longattn: LONGATTN_LIB_DIR not set and pkg-config found no longattn; linking -llongattn from the default paths");
    if want_static {
        println!("cargo:rustc-link-lib=static=longattn");
        for lib in STATIC_DEPENDENCIES {
            println!("cargo:rustc-link-lib=dylib={}", lib);
        }
    } else {
        println!("cargo:rustc-link-lib=dylib=longattn");
    }
}

/// Emits the link line `pkg-config --libs longattn` gives; false when pkg-config or the package
/// is missing.
fn link_with_pkg_config(want_static: bool) -> bool {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let mut command = Command::new(pkg_config);
    command.arg("--libs");
    if want_static {
        command.arg("--static");
    }
    command.arg("longattn");
    let output = match command.output() {
        Ok(output) if output.status.success() => output,
        _ => return false,
    };
    let flags = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lib_dirs = Vec::new();
    for flag in flags.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
            lib_dirs.push(dir.to_string());
        } else if let Some(lib) = flag.strip_prefix("-l") {
            if lib == "longattn" && want_static {
                println!("cargo:rustc-link-lib=static=longattn");
            } else {
                println!("cargo:rustc-link-lib=dylib={}", lib);
            }
        } else if flag.starts_with("-Wl,") {
            // e.g. the build tree's -Wl,-rpath,<dir>
            println!("cargo:rustc-link-arg={}", flag);
        }
    }
    // An installed library in a non-default prefix: let this package's own tests and examples
    // find it at run time.
    if !want_static && !flags.contains("-rpath") {
        for dir in &lib_dirs {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
        }
    }
    true
}
