//! Names for call sites (return addresses) in reports, chosen to survive a
//! rebuild of unchanged code: "function (file:line)" from the object's
//! debug information where it has some, else "function+0xOFF (object)"
//! from its dynamic symbols, else "object+0xOFF".

/// The name of the call that returns to `site` ("?" for 0).
pub fn site_name(site: usize) -> String {
    if site == 0 {
        return "?".to_string();
    }
    // The call instruction is just before the return address.
    let pc = site - 1;
    let mut from_debug = None;
    backtrace::resolve(pc as *mut std::ffi::c_void, |sym| {
        if from_debug.is_some() {
            return;
        }
        if let (Some(name), Some(file), Some(line)) = (sym.name(), sym.filename(), sym.lineno()) {
            let file = file.file_name().map_or_else(
                || file.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            );
            from_debug = Some(format!("{name} ({file}:{line})"));
        }
    });
    if let Some(n) = from_debug {
        return n;
    }
    // SAFETY: dladdr only reads the loader's tables; `info` is written.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let found = unsafe { libc::dladdr(pc as *const libc::c_void, &mut info) } != 0;
    if !found {
        return format!("{pc:#x}");
    }
    let object = if info.dli_fname.is_null() {
        "?".to_string()
    } else {
        // SAFETY: a NUL-terminated path owned by the loader.
        let full = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy();
        full.rsplit('/').next().unwrap_or(&full).to_string()
    };
    if !info.dli_sname.is_null() && !info.dli_saddr.is_null() {
        // SAFETY: as above.
        let name = unsafe { std::ffi::CStr::from_ptr(info.dli_sname) }.to_string_lossy();
        let off = pc - info.dli_saddr as usize;
        return format!("{name}+{off:#x} ({object})");
    }
    let off = pc - info.dli_fbase as usize;
    format!("{object}+{off:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_in_libc_is_named_by_its_function_and_zero_is_unknown() {
        assert_eq!(site_name(0), "?");
        let f = libc::getpid as *const () as usize;
        let name = site_name(f + 1);
        assert!(name.contains("getpid"), "{name}");
    }

    #[inline(never)]
    fn here() -> u64 {
        std::hint::black_box(7)
    }

    #[test]
    fn a_site_with_debug_information_is_named_by_file_and_line() {
        let name = site_name(here as *const () as usize + 2);
        assert!(
            name.contains("here") && name.contains("sites.rs:"),
            "{name}"
        );
    }
}
