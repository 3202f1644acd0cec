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

/// "object+0xOFF" for `site` (stable for one build of the object).
pub fn object_offset(site: usize) -> String {
    // SAFETY: dladdr only reads the loader's tables; `info` is written.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(site as *const libc::c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return format!("{site:#x}");
    }
    // SAFETY: a NUL-terminated path owned by the loader.
    let file = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    let object = file.rsplit('/').next().unwrap_or(&file).to_string();
    format!("{object}+{:#x}", site - info.dli_fbase as usize)
}

/// The name of the static object at `addr` (a lock variable) from its
/// object file's symbol table (`.symtab`, which `dladdr` does not read),
/// else its dynamic symbols; None if neither has it.
pub fn object_name(addr: usize) -> Option<String> {
    // SAFETY: dladdr only reads the loader's tables; `info` is written.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) } == 0 {
        return None;
    }
    if !info.dli_fname.is_null() {
        // SAFETY: a NUL-terminated path owned by the loader.
        let file = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy();
        // The main program's path may be empty: /proc/self/exe then.
        let file = if file.is_empty() {
            "/proc/self/exe".to_string()
        } else {
            file.into_owned()
        };
        let base = info.dli_fbase as usize;
        if let Ok(bytes) = std::fs::read(&file) {
            // Symbol values are addresses in the file: relative to the load
            // base in a shared object or a PIE, absolute otherwise.
            let is_dyn = bytes.get(16..18) == Some(&[3, 0]);
            let rel = if is_dyn { addr - base } else { addr };
            if let Some(n) = symtab_object(&bytes, rel as u64) {
                return Some(n);
            }
        }
    }
    if !info.dli_sname.is_null() && !info.dli_saddr.is_null() {
        // SAFETY: as above.
        let n = unsafe { std::ffi::CStr::from_ptr(info.dli_sname) }.to_string_lossy();
        let off = addr - info.dli_saddr as usize;
        return Some(if off == 0 {
            n.into_owned()
        } else {
            format!("{n}+{off:#x}")
        });
    }
    None
}

/// The data object covering `value` in a 64-bit little-endian ELF file's
/// `.symtab` ("name" or "name+0xOFF").
fn symtab_object(elf: &[u8], value: u64) -> Option<String> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if !elf.starts_with(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    for i in 0..shnum {
        let sh = section(i)?;
        const SHT_SYMTAB: u32 = 2;
        if u32_at(sh + 4)? != SHT_SYMTAB {
            continue;
        }
        let off = usize::try_from(u64_at(sh + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(sh + 0x20)?).ok()?;
        let entsize = usize::try_from(u64_at(sh + 0x38)?).ok()?.max(24);
        let strtab = section(usize::try_from(u32_at(sh + 0x28)?).ok()?)?;
        let str_off = usize::try_from(u64_at(strtab + 0x18)?).ok()?;
        for k in 0..size / entsize {
            let sym = off + k * entsize;
            const STT_OBJECT: u8 = 1;
            if elf.get(sym + 4)? & 0xf != STT_OBJECT {
                continue;
            }
            let (start, len) = (u64_at(sym + 8)?, u64_at(sym + 16)?);
            if value < start || value >= start.saturating_add(len.max(1)) {
                continue;
            }
            let name_at = str_off + usize::try_from(u32_at(sym)?).ok()?;
            let name = elf.get(name_at..)?.split(|&b| b == 0).next()?;
            let name = String::from_utf8_lossy(name);
            return Some(if value == start {
                name.into_owned()
            } else {
                format!("{name}+{:#x}", value - start)
            });
        }
    }
    None
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

    // Only operators on integers: no call inlined from another file (an
    // optimised build names an address by its innermost inlined frame:
    // with `black_box` here, `hint.rs`).
    #[inline(never)]
    fn here(x: u64) -> u64 {
        (x ^ 0x55) + (x >> 3)
    }

    #[test]
    fn a_site_with_debug_information_is_named_by_file_and_line() {
        assert_eq!(here(std::hint::black_box(8)), 0x5d + 1);
        let name = site_name(here as *const () as usize + 2);
        assert!(
            name.contains("here") && name.contains("sites.rs:"),
            "{name}"
        );
    }
}
