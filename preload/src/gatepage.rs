//! Mapping the gate page at start ([`shim::gatepage`]), with the facts
//! the seccomp net's supervisor reads there: where the dynamic loader's
//! code is (its library opens for `dlopen` run natively), whether the
//! preload is attached, and which threads are inside the hooked `fork`.

/// Maps the gate and records the loader's code range. Must run before
/// any other host call of the preload (the net lets only the gate's
/// redirected calls through).
pub fn init() -> Result<(), shim::gatepage::GateError> {
    shim::gatepage::map()?;
    if let Some((start, end)) = loader_text() {
        shim::gatepage::set_loader(start, end);
    }
    Ok(())
}

/// The executable segment of the dynamic loader (`AT_BASE`), from its
/// program headers in memory.
fn loader_text() -> Option<(u64, u64)> {
    // SAFETY: getauxval reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_BASE) };
    if base == 0 {
        return None;
    }
    // SAFETY: AT_BASE is the address of the loader's ELF header, mapped
    // read-only for the life of the process; the program headers follow
    // at e_phoff within its first mapped segment.
    unsafe {
        let eh = &*(base as *const libc::Elf64_Ehdr);
        if eh.e_ident[..4] != *b"\x7fELF" {
            return None;
        }
        let ph = (base + eh.e_phoff) as *const libc::Elf64_Phdr;
        (0..eh.e_phnum as usize)
            .map(|i| &*ph.add(i))
            .find(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)
            .map(|p| (base + p.p_vaddr, base + p.p_vaddr + p.p_memsz))
    }
}
