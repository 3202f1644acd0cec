//! Build script: generates the C header into OUT_DIR (a test compares it
//! with the committed include/rtcore.h), sets the shared object's soname
//! and marks it never to be unloaded,
//! and creates the `librtcore.so.0` link next to `librtcore.so`, which
//! cargo does not make and which programs linked with `-lrtcore` need at
//! run time; and compiles the preload library (`preload/rtcore_preload.c`,
//! C: interposing versioned libc symbols is C's job) into
//! `librtcore_preload.so` beside it, for `rtcore run`.

use std::env;
use std::path::{Path, PathBuf};

const SONAME: &str = "librtcore.so.0";

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=preload");
    println!("cargo:rerun-if-env-changed=CC");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let patch = env::var("CARGO_PKG_VERSION_PATCH").unwrap();
    let version = env::var("CARGO_PKG_VERSION").unwrap();

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    config.after_includes = Some(format!(
        "\n/* Version of this header (Cargo.toml is the one source). */\n\
         #define RTC_VERSION_MAJOR {major}\n\
         #define RTC_VERSION_MINOR {minor}\n\
         #define RTC_VERSION_PATCH {patch}\n\
         #define RTC_VERSION_STRING \"{version}\"\n\
         /* MAJOR << 16 | MINOR << 8 | PATCH, as rtc_version_number() returns. */\n\
         #define RTC_VERSION_NUMBER ((RTC_VERSION_MAJOR << 16) | (RTC_VERSION_MINOR << 8) | RTC_VERSION_PATCH)\n"
    ));
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => {
            b.write_to_file(out_dir.join("rtcore.h"));
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }

    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");
        // Never unloaded (DF_1_NODELETE): rtcore's threads (sysmon, hooks,
        // the trace writer) and every thread's thread-local destructors run
        // its code until the process exits, so `dlclose` must not unmap
        // it. docs/sysmon.md, "Unloading", says what a plugin must do.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
        link_soname(&out_dir);
        build_preload(&crate_dir, &out_dir);
    }
}

/// Compile `librtcore_preload.so` next to the library (with `$CC`, else
/// `cc`). It does not link against librtcore (it finds it at run time), so
/// it can be built before it. A machine without a C compiler still builds
/// the library: only `rtcore run` is then missing its preload library,
/// and says so.
fn build_preload(crate_dir: &Path, out_dir: &Path) {
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return;
    };
    if !profile_dir.join("build").is_dir() {
        return;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let src = crate_dir.join("preload/rtcore_preload.c");
    let tmp = out_dir.join("librtcore_preload.so");
    let status = std::process::Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
        ])
        .args(["-fvisibility=hidden", "-Wl,-soname,librtcore_preload.so"])
        .arg(format!(
            "-Wl,--version-script={}",
            crate_dir.join("preload/rtcore_preload.map").display()
        ))
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .args(["-ldl", "-pthread"])
        .status();
    match status {
        Ok(s) if s.success() => {
            // Replaced whole (a rename), never rewritten in place under a
            // program that has it mapped.
            let dest = profile_dir.join("librtcore_preload.so");
            let staged = profile_dir.join(".librtcore_preload.so.new");
            if std::fs::copy(&tmp, &staged).is_ok() {
                let _ = std::fs::rename(&staged, &dest);
            }
        }
        Ok(s) => println!(
            "cargo:warning=compiling preload/rtcore_preload.c with {cc} failed ({s}): `rtcore run` will not work"
        ),
        Err(e) => println!("cargo:warning=no C compiler ({cc}: {e}): `rtcore run` will not work"),
    }
}

/// OUT_DIR is <target>/<profile>/build/rtcore-<hash>/out: the artifacts sit
/// three levels up. Make `librtcore.so.0 -> librtcore.so` there (dangling
/// until the library is linked, which is fine for a symlink).
fn link_soname(out_dir: &Path) {
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return;
    };
    if profile_dir.join("build").is_dir() {
        let link = profile_dir.join(SONAME);
        if std::fs::symlink_metadata(&link).is_err() {
            let _ = std::os::unix::fs::symlink("librtcore.so", &link);
        }
    }
}
