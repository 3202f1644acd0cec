#![cfg(not(loom))]
//! The committed header matches the one cbindgen generates, compiles in
//! every mode we promise, agrees with Cargo.toml on the version, and names
//! exactly the symbols the shared object exports.

mod common;

use std::path::Path;
use std::process::Command;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/rtcore.h"));

#[test]
fn committed_header_matches_generated() {
    let path = common::manifest_dir().join("include/rtcore.h");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var("RTCORE_BLESS_HEADER").as_deref() == Ok("1") {
        std::fs::write(&path, GENERATED).unwrap();
        return;
    }
    assert!(
        committed == GENERATED,
        "include/rtcore.h differs from the header cbindgen generates from src/; \
         regenerate it with: RTCORE_BLESS_HEADER=1 cargo test --test header"
    );
}

/// Every type and enum constant the header defines carries the prefix.
#[test]
fn every_header_type_and_constant_is_prefixed() {
    let text = std::fs::read_to_string(common::manifest_dir().join("include/rtcore.h")).unwrap();
    let mut bad = Vec::new();
    let mut in_enum = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l
            .strip_prefix("enum ")
            .or_else(|| l.strip_prefix("typedef struct "))
        {
            let name = rest.split([' ', '{', ';']).next().unwrap_or("");
            if !name.starts_with("rtc_") {
                bad.push(name.to_string());
            }
            in_enum = l.starts_with("enum ");
        } else if in_enum && l.starts_with('}') {
            in_enum = false;
        } else if in_enum && l.contains(" = ") && !l.starts_with("RTC_") {
            bad.push(l.to_string());
        }
    }
    assert!(
        bad.is_empty(),
        "unprefixed names in include/rtcore.h: {bad:?}"
    );
}

fn compile(cc: &str, args: &[&str], src: &str, name: &str) {
    let dir = std::env::temp_dir().join(format!("rtcore-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, src).unwrap();
    let inc = common::manifest_dir().join("include");
    let out = Command::new(cc)
        .args(args)
        .arg("-I")
        .arg(&inc)
        .arg("-c")
        .arg(&file)
        .arg("-o")
        .arg(dir.join(format!("{name}.o")))
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{cc} {args:?} {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"];

#[test]
fn header_compiles_alone_as_c99_c11_and_cpp() {
    let src = "#include \"rtcore.h\"\nint rtc_header_probe(void) { return RTC_OK; }\n";
    for std in ["-std=c99", "-std=c11"] {
        let mut a = vec![std];
        a.extend(STRICT);
        compile("gcc", &a, src, &format!("alone{}.c", &std[5..]));
    }
    let mut a = vec!["-x", "c++", "-std=c++11"];
    a.extend(STRICT);
    compile("g++", &a, src, "alone.cpp");
}

#[test]
fn header_can_be_included_twice() {
    let src = "#include \"rtcore.h\"\n#include \"rtcore.h\"\nstatic rtc_mutex m = RTC_MUTEX_INIT_RANKED(\"m\", \"r\");\n\
               int rtc_probe(void) { return RTC_MUTEX_LOCK(&m); }\n";
    let mut a = vec!["-std=c11"];
    a.extend(STRICT);
    compile("gcc", &a, src, "twice.c");
}

#[test]
fn version_macros_and_runtime_agree_with_cargo_toml() {
    let cargo_version = env!("CARGO_PKG_VERSION");
    let dir = common::lib_dir();
    let tmp = std::env::temp_dir().join(format!("rtcore-version-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let src = tmp.join("v.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include \"rtcore.h\"\nint main(void){\n\
         printf(\"%d.%d.%d %s %s %u %u\\n\", RTC_VERSION_MAJOR, RTC_VERSION_MINOR, RTC_VERSION_PATCH,\n\
         RTC_VERSION_STRING, rtc_version(), (unsigned)RTC_VERSION_NUMBER, (unsigned)rtc_version_number());\n\
         return 0; }\n",
    )
    .unwrap();
    let exe = tmp.join("v");
    build_c(&src, &exe, dir);
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = s.split_whitespace().collect();
    assert_eq!(parts[0], cargo_version, "RTC_VERSION_MAJOR/MINOR/PATCH");
    assert_eq!(parts[1], cargo_version, "RTC_VERSION_STRING");
    assert_eq!(parts[2], cargo_version, "rtc_version()");
    let nums: Vec<u32> = cargo_version
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    let packed = (nums[0] << 16) | (nums[1] << 8) | nums[2];
    assert_eq!(parts[3], packed.to_string(), "RTC_VERSION_NUMBER");
    assert_eq!(parts[4], packed.to_string(), "rtc_version_number()");
}

fn build_c(src: &Path, exe: &Path, lib: &Path) {
    let out = Command::new("gcc")
        .arg("-std=c11")
        .args(STRICT)
        .arg("-I")
        .arg(common::manifest_dir().join("include"))
        .arg(src)
        .arg("-o")
        .arg(exe)
        .arg(format!("-L{}", lib.display()))
        .arg("-lrtcore")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shared_object_has_the_soname_and_exports_exactly_the_header() {
    let so = common::lib_dir().join("librtcore.so");
    let dynamic = Command::new("readelf").arg("-d").arg(&so).output().unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains("Library soname: [librtcore.so.0]"),
        "soname missing:\n{dynamic}"
    );

    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .expect("run nm");
    assert!(out.status.success());
    let mut exported_fns = Vec::new();
    let mut exported_vars = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        match f[1] {
            "T" => exported_fns.push(f[2].to_string()),
            "D" | "B" | "R" => exported_vars.push(f[2].to_string()),
            _ => {}
        }
    }
    exported_fns.sort();
    exported_vars.sort();
    for s in exported_fns.iter().chain(exported_vars.iter()) {
        assert!(
            s.starts_with("rtc_"),
            "exported symbol without the rtc_ prefix: {s}"
        );
    }
    assert_eq!(
        exported_fns,
        common::header_functions(),
        "functions: nm -D vs header"
    );
    assert_eq!(
        exported_vars,
        common::header_variables(),
        "variables: nm -D vs header"
    );
}

/// include/rtcore.hpp compiles alone, twice included, with every warning
/// as an error (-Wpedantic too), in C++17 and C++20.
#[test]
fn cpp_header_compiles_alone_warning_free() {
    // Every template instantiated (templates are checked only when used).
    let src = r#"#include "rtcore.hpp"
#include "rtcore.hpp"
#include <mutex>
#include <shared_mutex>
int rtc_hpp_probe() {
    rtcore::mutex m;
    rtcore::shared_mutex rw;
    rtcore::condition_variable cv;
    std::condition_variable_any any;
    { std::lock_guard<rtcore::mutex> g(m); }
    { std::scoped_lock both(m, rw); }
    { std::shared_lock<rtcore::shared_mutex> r(rw); }
    std::unique_lock<rtcore::mutex> l(m);
    cv.wait(l, [] { return true; });
    (void)cv.wait_for(l, std::chrono::milliseconds(1));
    (void)cv.wait_for(l, std::chrono::hours::max(), [] { return true; });
    any.wait(l, [] { return true; });
    rtcore::region r("r");
    rtcore::task t("t");
    rtcore::trace_session s("x.rtctrace", 10);
    return static_cast<int>(t.id());
}
"#;
    for std in ["-std=c++17", "-std=c++20"] {
        let mut a = vec![
            "-x",
            "c++",
            std,
            "-Wconversion",
            "-Wsign-conversion",
            "-Wshadow",
        ];
        a.extend(STRICT);
        compile("g++", &a, src, &format!("hpp{}.cpp", &std[7..]));
    }
}

/// Every status of rtcore.h has its name in rtcore.hpp's status_name (the
/// C++ header is written by hand: a new status must be added there too).
#[test]
fn cpp_header_names_every_status() {
    let h = std::fs::read_to_string(common::manifest_dir().join("include/rtcore.h")).unwrap();
    let hpp = std::fs::read_to_string(common::manifest_dir().join("include/rtcore.hpp")).unwrap();
    let statuses: Vec<&str> = h
        .lines()
        .filter_map(|l| l.trim().strip_suffix(','))
        .filter_map(|l| l.split_once(" = ").map(|(n, _)| n))
        .filter(|n| *n == "RTC_OK" || n.starts_with("RTC_ERR_"))
        .collect();
    assert!(statuses.len() > 20, "{statuses:?}");
    for s in statuses {
        assert!(
            hpp.contains(&format!("case {s}: return \"{s}\";")),
            "rtcore.hpp's status_name lacks {s}"
        );
    }
}
