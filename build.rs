//! Compiles src/image/log_shim.c, the printf-style log callbacks of native
//! plugins (stable Rust cannot define a C variadic function), with the
//! target's C compiler into a static library the crate links.
//!
//! The compiler and archiver are found the way cargo build scripts usually
//! find them (the `cc` crate's conventions, without the dependency: one C
//! file does not need it, and Buildroot and Yocto would have to vendor it):
//! `CC_<target>` (dashes or underscores), `TARGET_CC`, `CC`, else `cc` for a
//! native build and Debian's `<arch>-linux-<abi>-gcc` for a cross build (the
//! linkers .cargo/config.toml names). Likewise `AR_<target>`, `TARGET_AR`,
//! `AR`, else the compiler's name with `gcc`/`cc` replaced by `ar`. Flags
//! come from `CFLAGS_<target>`, `TARGET_CFLAGS` or `CFLAGS`. Buildroot
//! exports CC/AR/CFLAGS (TARGET_CONFIGURE_OPTS), Yocto TARGET_CC/TARGET_AR
//! and scripts/cross-build `CC_<target>`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SHIM: &str = "src/image/log_shim.c";

/// The first of `names` set (and not empty) in the environment, each tried
/// with the target triple's dashes and underscores.
fn tool_var(tool: &str, target: &str) -> Option<(String, String)> {
    let names = [
        format!("{tool}_{target}"),
        format!("{tool}_{}", target.replace('-', "_")),
        format!("TARGET_{tool}"),
        tool.to_string(),
    ];
    names.into_iter().find_map(|n| {
        println!("cargo:rerun-if-env-changed={n}");
        env::var(&n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n, v))
    })
}

/// Debian's cross compiler for a `<arch>-unknown-linux-<abi>` triple
/// (armv7 → arm-linux-gnueabihf-gcc).
fn default_cross_cc(target: &str) -> Option<String> {
    let (arch, rest) = target.split_once("-unknown-linux-")?;
    let arch = if arch.starts_with("armv7") {
        "arm"
    } else {
        arch
    };
    Some(format!("{arch}-linux-{rest}-gcc"))
}

/// A command line from a variable (Yocto's CC may carry flags).
fn split(v: &str) -> Vec<String> {
    v.split_ascii_whitespace().map(str::to_string).collect()
}

fn run(cmd: &mut Command, what: &str, hint: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what} failed ({s}): {cmd:?}\n{hint}"),
        Err(e) => panic!("cannot run {what} ({e}): {cmd:?}\n{hint}"),
    }
}

fn main() {
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let host = env::var("HOST").expect("cargo sets HOST");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let hint = format!(
        "build.rs compiles {SHIM} with the target's C compiler: set CC_{target} (or TARGET_CC, CC) and AR_{target} (or TARGET_AR, AR) for {target}"
    );

    let cc = match tool_var("CC", &target) {
        Some((_, v)) => split(&v),
        None if target == host => vec!["cc".to_string()],
        None => vec![default_cross_cc(&target).unwrap_or_else(|| panic!("{hint}"))],
    };
    let ar = match tool_var("AR", &target) {
        Some((_, v)) => split(&v),
        None => {
            let c = &cc[0];
            let stem = c
                .strip_suffix("gcc")
                .or_else(|| c.strip_suffix("cc"))
                .unwrap_or_else(|| panic!("{hint}"));
            vec![format!("{stem}ar")]
        }
    };
    let cflags = tool_var("CFLAGS", &target)
        .map(|(_, v)| split(&v))
        .unwrap_or_default();

    let obj = out.join("log_shim.o");
    let lib = out.join("libopenplc_log_shim.a");
    run(
        Command::new(&cc[0])
            .args(&cc[1..])
            .args(&cflags)
            .args(["-std=c11", "-fPIC", "-O2", "-Wall", "-Wextra", "-c"])
            .arg(SHIM)
            .arg("-o")
            .arg(&obj),
        "the C compiler",
        &hint,
    );
    let _ = std::fs::remove_file(&lib);
    run(
        Command::new(&ar[0])
            .args(&ar[1..])
            .arg("crs")
            .arg(&lib)
            .arg(&obj),
        "the archiver",
        &hint,
    );
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=openplc_log_shim");
}
