//! Build script: generates the C header into OUT_DIR (a test compares it
//! with the committed include/rtcore.h), sets the shared object's soname
//! and marks it never to be unloaded,
//! and creates the `librtcore.so.0` link next to `librtcore.so`, which
//! cargo does not make and which programs linked with `-lrtcore` need at
//! run time.

use std::env;
use std::path::{Path, PathBuf};

const SONAME: &str = "librtcore.so.0";

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

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
