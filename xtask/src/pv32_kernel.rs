//! The smallest 32-bit PV kernel Xen's domain builder accepts, written byte by byte: an
//! ELF32 (i386) executable whose only code yields the CPU again and again. `abi/pv32-refused`
//! boots it to prove that Xen refuses PV mem_access for a 32-bit PV guest (our patch 0011
//! answers `-EOPNOTSUPP` when `is_pv_32bit_domain(d)`), so it needs no runtime of its own: no
//! console, no trap table, no event callback, no stack.
//!
//! What it mirrors:
//! - the Xen ELF notes (`xen/include/public/elfnote.h`) and what libxenguest requires of
//!   them: `LOADER "generic"` and `XEN_VERSION "xen-3.0"` (libelf's `elf_xen_note_check`);
//!   `PAE_MODE "yes"` makes an EM_386 image a `xen-3.0-x86_32p` guest
//!   (`xc_dom_guest_type` in `tools/libs/guest/xg_dom_elfloader.c`; the non-PAE
//!   `xen-3.0-x86_32` is long gone from 64-bit Xen), and the builder then calls
//!   `XEN_DOMCTL_set_address_size` with 32;
//! - the notes Linux's `arch/x86/xen/xen-head.S` gives a 32-bit kernel: `VIRT_BASE` is
//!   `__PAGE_OFFSET` (0xc0000000), `PADDR_OFFSET` 0, `ENTRY`, `FEATURES`
//!   `"!writable_page_tables|pae_pgdir_above_4gb"`. Numbers are 4 bytes, as `_ASM_PTR` is for
//!   i386 (libelf's `elf_note_numeric` takes 1, 2, 4 or 8). No `HYPERCALL_PAGE`: a 32-bit PV
//!   guest can make hypercalls with `int $0x82` (`entry_int82` in
//!   `xen/arch/x86/x86_64/compat/entry.S`), number in `%eax`, arguments in `%ebx`, `%ecx`, ...
//!
//! Layout (one loadable segment holds the whole file, loaded at `VIRT_BASE`, physical 0, the
//! way `elf_xen_addr_calc_check` computes `virt_kstart = pstart + VIRT_BASE - PADDR_OFFSET`):
//!
//! ```text
//! 0x00  ELF header (52 bytes)
//! 0x34  program headers: PT_LOAD (the file), PT_NOTE (the notes)
//! 0x74  Xen notes
//! ....  code, 16-byte aligned: ENTRY
//! ```
//!
//! No section headers: libelf reads notes from PT_NOTE segments first and loads by program
//! header. The builder masks event delivery for every vCPU (`evtchn_upcall_mask` 1 in the
//! shared info it writes), so the loop is never interrupted by an upcall it could not take.

/// `__PAGE_OFFSET` of 32-bit Linux: the kernel's virtual base (`XEN_ELFNOTE_VIRT_BASE`).
pub const VIRT_BASE: u32 = 0xc000_0000;

/// `XEN_ELFNOTE_*` (public/elfnote.h, from xen-sys's bindings of Xen's headers).
pub mod note {
    pub use xen_sys::{
        XEN_ELFNOTE_ENTRY as ENTRY, XEN_ELFNOTE_FEATURES as FEATURES,
        XEN_ELFNOTE_GUEST_OS as GUEST_OS, XEN_ELFNOTE_LOADER as LOADER,
        XEN_ELFNOTE_PADDR_OFFSET as PADDR_OFFSET, XEN_ELFNOTE_PAE_MODE as PAE_MODE,
        XEN_ELFNOTE_VIRT_BASE as VIRT_BASE, XEN_ELFNOTE_XEN_VERSION as XEN_VERSION,
    };
}

/// The guest's name in `XEN_ELFNOTE_GUEST_OS` (any name will do with the generic loader).
pub const GUEST_OS: &str = "pv32-yield";

// ELF constants (the System V ABI), as the `object` crate names them.
use object::elf::{
    ELFCLASS32, ELFDATA2LSB, EM_386, ET_EXEC, EV_CURRENT, PF_R, PF_X, PT_LOAD, PT_NOTE,
};
/// `sizeof(Elf32_Ehdr)`, `sizeof(Elf32_Phdr)`.
const EHDR_SIZE: u32 = 52;
const PHDR_SIZE: u32 = 32;
const PHDR_COUNT: u32 = 2;

/// `__HYPERVISOR_sched_op` (public/xen.h) and `SCHEDOP_yield` (public/sched.h).
use xen_sys::{__HYPERVISOR_sched_op as HYPERVISOR_SCHED_OP, SCHEDOP_yield as SCHEDOP_YIELD};

/// The kernel's code, hand-encoded (Intel SDM vol. 2; 32-bit operand size):
///
/// ```text
/// loop:
///   bb 00 00 00 00    mov  $SCHEDOP_yield, %ebx   (B8+rd id, rd = 3: ebx)
///   b8 1d 00 00 00    mov  $29, %eax              (B8+rd id, rd = 0: eax; __HYPERVISOR_sched_op)
///   cd 82             int  $0x82                  (CD ib: the 32-bit PV hypercall gate)
///   eb f2             jmp  loop                   (EB cb: -14, back over these 14 bytes)
/// ```
///
/// Both registers are loaded on every round: a debug Xen clobbers the argument registers
/// a hypercall does not use, and `%eax` carries the result back.
pub fn code() -> Vec<u8> {
    let mut code = Vec::new();
    code.push(0xbb);
    code.extend(SCHEDOP_YIELD.to_le_bytes());
    code.push(0xb8);
    code.extend(HYPERVISOR_SCHED_OP.to_le_bytes());
    code.extend([0xcd, 0x82]);
    let back = -(code.len() as i8 + 2);
    code.extend([0xeb, back as u8]);
    code
}

/// One Xen note: namesz, descsz, type (three 32-bit words), the name `"Xen\0"`, then the
/// descriptor padded to 4 bytes.
fn push_note(notes: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    const NAME: &[u8; 4] = b"Xen\0";
    notes.extend((NAME.len() as u32).to_le_bytes());
    notes.extend((desc.len() as u32).to_le_bytes());
    notes.extend(kind.to_le_bytes());
    notes.extend(NAME);
    notes.extend(desc);
    notes.resize(notes.len().next_multiple_of(4), 0);
}

fn string(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// The notes, for a kernel entered at `entry`.
fn notes(entry: u32) -> Vec<u8> {
    let mut notes = Vec::new();
    push_note(&mut notes, note::GUEST_OS, &string(GUEST_OS));
    push_note(&mut notes, note::XEN_VERSION, &string("xen-3.0"));
    push_note(&mut notes, note::LOADER, &string("generic"));
    push_note(&mut notes, note::VIRT_BASE, &VIRT_BASE.to_le_bytes());
    push_note(&mut notes, note::PADDR_OFFSET, &0u32.to_le_bytes());
    push_note(&mut notes, note::ENTRY, &entry.to_le_bytes());
    push_note(
        &mut notes,
        note::FEATURES,
        &string("!writable_page_tables|pae_pgdir_above_4gb"),
    );
    push_note(&mut notes, note::PAE_MODE, &string("yes"));
    notes
}

/// `Elf32_Phdr`.
struct Phdr {
    kind: u32,
    offset: u32,
    vaddr: u32,
    paddr: u32,
    size: u32,
    flags: u32,
    align: u32,
}

impl Phdr {
    fn write(&self, out: &mut Vec<u8>) {
        for word in [
            self.kind,
            self.offset,
            self.vaddr,
            self.paddr,
            self.size, // p_filesz
            self.size, // p_memsz
            self.flags,
            self.align,
        ] {
            out.extend(word.to_le_bytes());
        }
    }
}

/// The whole kernel image.
pub fn image() -> Vec<u8> {
    let notes_offset = EHDR_SIZE + PHDR_COUNT * PHDR_SIZE;
    // The notes' length does not depend on the entry's value (always 4 bytes).
    let notes_len = notes(0).len() as u32;
    let code_offset = (notes_offset + notes_len).next_multiple_of(16);
    let code = code();
    let file_len = code_offset + code.len() as u32;
    let entry = VIRT_BASE + code_offset;

    let mut out = Vec::with_capacity(file_len as usize);
    // Elf32_Ehdr.
    out.extend(b"\x7fELF");
    out.extend([ELFCLASS32, ELFDATA2LSB, EV_CURRENT]);
    out.resize(16, 0); // EI_OSABI 0 (System V), EI_ABIVERSION 0, padding
    out.extend(ET_EXEC.to_le_bytes());
    out.extend(EM_386.to_le_bytes());
    out.extend(u32::from(EV_CURRENT).to_le_bytes()); // e_version
    out.extend(entry.to_le_bytes()); // e_entry
    out.extend(EHDR_SIZE.to_le_bytes()); // e_phoff
    out.extend(0u32.to_le_bytes()); // e_shoff: no section headers
    out.extend(0u32.to_le_bytes()); // e_flags
    out.extend((EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    out.extend((PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    out.extend((PHDR_COUNT as u16).to_le_bytes()); // e_phnum
    out.extend(0u16.to_le_bytes()); // e_shentsize
    out.extend(0u16.to_le_bytes()); // e_shnum
    out.extend(0u16.to_le_bytes()); // e_shstrndx: SHN_UNDEF
    debug_assert_eq!(out.len() as u32, EHDR_SIZE);

    Phdr {
        kind: PT_LOAD,
        offset: 0,
        vaddr: VIRT_BASE,
        paddr: 0,
        size: file_len,
        flags: PF_R | PF_X,
        align: 0x1000,
    }
    .write(&mut out);
    Phdr {
        kind: PT_NOTE,
        offset: notes_offset,
        vaddr: VIRT_BASE + notes_offset,
        paddr: notes_offset,
        size: notes_len,
        flags: PF_R,
        align: 4,
    }
    .write(&mut out);
    debug_assert_eq!(out.len() as u32, notes_offset);

    out.extend(notes(entry));
    out.resize(code_offset as usize, 0);
    out.extend(code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf::{FileHeader32, PT_LOAD as LOAD, PT_NOTE as NOTE};
    use object::read::elf::{FileHeader, ProgramHeader};
    use object::LittleEndian as LE;

    #[test]
    fn the_header_says_i386_executable_entered_in_its_code() {
        let image = image();
        let header = FileHeader32::<LE>::parse(&*image).unwrap();
        assert!(!header.is_class_64());
        assert!(header.is_little_endian());
        assert_eq!(header.e_type(LE), object::elf::ET_EXEC);
        assert_eq!(header.e_machine(LE), object::elf::EM_386);
        assert_eq!(header.e_phnum(LE), 2);
        assert_eq!(header.e_shnum(LE), 0);
        let entry = header.e_entry(LE);
        let code_offset = (entry - VIRT_BASE) as usize;
        assert_eq!(code_offset % 16, 0);
        assert_eq!(&image[code_offset..], &code()[..]);
    }

    #[test]
    fn one_segment_loads_the_file_at_the_virtual_base() {
        let image = image();
        let header = FileHeader32::<LE>::parse(&*image).unwrap();
        let phdrs = header.program_headers(LE, &*image).unwrap();
        let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type(LE) == LOAD).collect();
        assert_eq!(loads.len(), 1);
        let load = loads[0];
        assert_eq!(load.p_offset(LE), 0);
        assert_eq!(load.p_vaddr(LE), VIRT_BASE);
        assert_eq!(load.p_paddr(LE), 0);
        assert_eq!(load.p_filesz(LE) as usize, image.len());
        assert_eq!(load.p_memsz(LE) as usize, image.len());
        assert_eq!(load.p_flags(LE), object::elf::PF_R | object::elf::PF_X);
        let entry = header.e_entry(LE);
        assert!(entry >= VIRT_BASE && ((entry - VIRT_BASE) as usize) < image.len());
    }

    #[test]
    fn the_notes_parse_back_as_libelf_reads_them() {
        let image = image();
        let header = FileHeader32::<LE>::parse(&*image).unwrap();
        let phdrs = header.program_headers(LE, &*image).unwrap();
        let note_phdr = phdrs.iter().find(|p| p.p_type(LE) == NOTE).unwrap();
        assert_ne!(note_phdr.p_offset(LE), 0, "libelf skips notes at offset 0");
        let mut notes = note_phdr.notes(LE, &*image).unwrap().unwrap();
        let mut found = Vec::new();
        while let Some(note) = notes.next().unwrap() {
            assert_eq!(note.name(), b"Xen");
            found.push((note.n_type(LE), note.desc().to_vec()));
        }
        let desc = |kind: u32| -> &[u8] {
            &found
                .iter()
                .find(|(k, _)| *k == kind)
                .unwrap_or_else(|| panic!("no note {kind}"))
                .1
        };
        let number = |kind: u32| u32::from_le_bytes(desc(kind).try_into().unwrap());
        assert_eq!(desc(note::XEN_VERSION), b"xen-3.0\0");
        assert_eq!(desc(note::LOADER), b"generic\0");
        assert_eq!(desc(note::GUEST_OS), b"pv32-yield\0");
        assert_eq!(desc(note::PAE_MODE), b"yes\0");
        assert_eq!(
            desc(note::FEATURES),
            b"!writable_page_tables|pae_pgdir_above_4gb\0"
        );
        assert_eq!(number(note::VIRT_BASE), VIRT_BASE);
        assert_eq!(number(note::PADDR_OFFSET), 0);
        assert_eq!(number(note::ENTRY), header.e_entry(LE));
        assert_eq!(found.len(), 8);
    }

    #[test]
    fn the_code_yields_through_int_0x82_in_a_loop() {
        use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
        let image = image();
        let entry = FileHeader32::<LE>::parse(&*image).unwrap().e_entry(LE);
        let code = code();
        let mut decoder = Decoder::with_ip(32, &code, u64::from(entry), DecoderOptions::NONE);
        let mut formatter = GasFormatter::new();
        formatter.options_mut().set_uppercase_hex(false);
        let mut lines = Vec::new();
        for instruction in &mut decoder {
            let mut text = String::new();
            formatter.format(&instruction, &mut text);
            lines.push(text);
        }
        assert_eq!(
            lines,
            [
                "mov $0,%ebx".to_string(),
                "mov $0x1d,%eax".to_string(),
                "int $0x82".to_string(),
                format!("jmp 0x{entry:x}"),
            ]
        );
    }
}
