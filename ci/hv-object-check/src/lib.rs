//! The rules the Rust module's object must keep before Xen links it, checked on the object
//! itself (`cargo xtask check-hv-object`, part of `cargo xtask ci`):
//!
//! 1. no GOT or PLT: no such sections, and no relocation that needs a GOT or PLT entry (Xen's
//!    linker script asserts `.got`/`.plt` are empty; a direct call's `R_X86_64_PLT32` is fine,
//!    a static link resolves it to the function);
//! 2. no indirect `call`/`jmp` (Xen runs with CET-IBT and retpolines; our code has none);
//! 3. no SSE/AVX/MMX instruction or register (Xen does not save the guest's vector state
//!    around its own code);
//! 4. no undefined symbol but the C glue's services and what Xen itself provides;
//! 5. every exported function begins with `endbr64`;
//! 6. no path to a panic: the module's panic handler calls [`PANIC_REACHABLE`], which nobody
//!    defines, so the symbol is in the object exactly when the optimiser kept a panic.

use anyhow::{Context, Result};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Formatter, GasFormatter, Instruction};
use object::elf;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, SectionKind, SymbolKind};

/// The services of `glue.c`, as declared in `hypervisor-patch/src/ffi.rs`.
pub const GLUE_SERVICES: &[&str] = &["pvma_glue_log", "pvma_glue_alloc", "pvma_glue_free"];
/// The symbol the module's panic handler calls (`hypervisor-patch/src/ffi.rs`).
pub const PANIC_REACHABLE: &str = "pvma_rust_panic_is_reachable";
/// Symbols Xen defines that compiled Rust may call: the compiler emits the mem* calls, and
/// returns go through Xen's return thunk.
const XEN_PROVIDED: &[&str] = &[
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "__x86_return_thunk",
];

const GOT_PLT_SECTIONS: &[&str] = &[".got", ".got.plt", ".plt", ".plt.got", ".igot.plt", ".iplt"];
const GOT_PLT_RELOCATIONS: &[u32] = &[
    elf::R_X86_64_GOT32,
    elf::R_X86_64_GOTPCREL,
    elf::R_X86_64_GOTOFF64,
    elf::R_X86_64_GOTPC32,
    elf::R_X86_64_GOT64,
    elf::R_X86_64_GOTPCREL64,
    elf::R_X86_64_GOTPC64,
    elf::R_X86_64_GOTPLT64,
    elf::R_X86_64_PLTOFF64,
    elf::R_X86_64_GOTPCRELX,
    elf::R_X86_64_REX_GOTPCRELX,
    elf::R_X86_64_TLSGD,
    elf::R_X86_64_TLSLD,
    elf::R_X86_64_GOTTPOFF,
];
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// Checks an ELF relocatable object; returns one line per broken rule instance.
pub fn check(bytes: &[u8]) -> Result<Vec<String>> {
    let file = object::File::parse(bytes).context("not an object file")?;
    let mut problems = Vec::new();
    for section in file.sections() {
        let name = section.name().unwrap_or("");
        if GOT_PLT_SECTIONS.contains(&name) {
            problems.push(format!("rule 1: has a {name} section"));
        }
        for (offset, relocation) in section.relocations() {
            if let RelocationFlags::Elf { r_type } = relocation.flags() {
                if GOT_PLT_RELOCATIONS.contains(&r_type) {
                    problems.push(format!(
                        "rule 1: relocation type {r_type} (needs a GOT/PLT entry) in {name}+{offset:#x}"
                    ));
                }
            }
        }
        if section.kind() == SectionKind::Text {
            let code = section.data()?;
            check_code(&file, &section, code, &mut problems);
        }
    }
    for symbol in file.symbols() {
        let name = symbol.name().unwrap_or("");
        if symbol.is_undefined() && !name.is_empty() {
            if name == PANIC_REACHABLE {
                problems.push(format!(
                    "rule 6: a panic is reachable ({name} is referenced): find the indexing, \
                     unwrap or overflow check the optimiser could not remove"
                ));
            } else if !GLUE_SERVICES.contains(&name) && !XEN_PROVIDED.contains(&name) {
                problems.push(format!("rule 4: undefined symbol {name}"));
            }
        } else if symbol.is_global() && symbol.kind() == SymbolKind::Text {
            let starts_with_endbr = symbol
                .section_index()
                .and_then(|index| file.section_by_index(index).ok())
                .and_then(|section| section.data().ok())
                .and_then(|data| data.get(symbol.address() as usize..)?.get(..4))
                == Some(&ENDBR64[..]);
            if !starts_with_endbr {
                problems.push(format!(
                    "rule 5: exported function {name} does not begin with endbr64"
                ));
            }
        }
    }
    Ok(problems)
}

fn check_code(
    file: &object::File,
    section: &object::Section,
    code: &[u8],
    problems: &mut Vec<String>,
) {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut formatter = GasFormatter::new();
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        let rule = if matches!(
            instruction.flow_control(),
            FlowControl::IndirectBranch | FlowControl::IndirectCall
        ) {
            Some("rule 2: indirect branch")
        } else if uses_vector_unit(&instruction) {
            Some("rule 3: SSE/AVX/MMX instruction")
        } else {
            None
        };
        if let Some(rule) = rule {
            let mut text = String::new();
            formatter.format(&instruction, &mut text);
            let place = locate(file, section, instruction.ip());
            problems.push(format!("{rule} at {place}: {text}"));
        }
    }
}

fn uses_vector_unit(instruction: &Instruction) -> bool {
    let vector_register = (0..instruction.op_count()).any(|operand| {
        let register = instruction.op_register(operand);
        register.is_xmm() || register.is_ymm() || register.is_zmm() || register.is_mm()
    });
    vector_register
        || instruction.cpuid_features().iter().any(|feature| {
            let name = format!("{feature:?}");
            ["SSE", "AVX", "MMX", "FMA", "F16C", "AES", "PCLMUL", "SHA"]
                .iter()
                .any(|family| name.starts_with(family))
        })
}

/// `function+offset` for an address in a section.
fn locate(file: &object::File, section: &object::Section, address: u64) -> String {
    let index = section.index();
    file.symbols()
        .filter(|symbol| {
            symbol.section_index() == Some(index)
                && symbol.kind() == SymbolKind::Text
                && symbol.address() <= address
        })
        .max_by_key(|symbol| symbol.address())
        .map(|symbol| {
            format!(
                "{}+{:#x}",
                symbol.name().unwrap_or("?"),
                address - symbol.address()
            )
        })
        .unwrap_or_else(|| format!("{}+{address:#x}", section.name().unwrap_or("?")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{Object as Writer, Relocation, Symbol, SymbolSection};
    use object::{Architecture, BinaryFormat, Endianness, SymbolFlags, SymbolScope};

    const RET: u8 = 0xc3;

    /// An object with one exported function `f` whose code is `code`, and optionally a
    /// relocation of `r_type` against an undefined symbol `target`.
    fn object(
        code: &[u8],
        relocation: Option<(u32, &str)>,
        extra_section: Option<&str>,
    ) -> Vec<u8> {
        let mut writer = Writer::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = writer.add_section(Vec::new(), b".text.f".to_vec(), SectionKind::Text);
        writer.append_section_data(text, code, 16);
        writer.add_symbol(Symbol {
            name: b"f".to_vec(),
            value: 0,
            size: code.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
        if let Some((r_type, target)) = relocation {
            let symbol = writer.add_symbol(Symbol {
                name: target.as_bytes().to_vec(),
                value: 0,
                size: 0,
                kind: SymbolKind::Text,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Undefined,
                flags: SymbolFlags::None,
            });
            writer
                .add_relocation(
                    text,
                    Relocation {
                        offset: 5,
                        symbol,
                        addend: -4,
                        flags: RelocationFlags::Elf { r_type },
                    },
                )
                .unwrap();
        }
        if let Some(name) = extra_section {
            let section =
                writer.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Data);
            writer.append_section_data(section, &[0; 8], 8);
        }
        writer.write().unwrap()
    }

    fn with_endbr(rest: &[u8]) -> Vec<u8> {
        let mut code = ENDBR64.to_vec();
        code.extend_from_slice(rest);
        code
    }

    fn problems(bytes: &[u8]) -> Vec<String> {
        check(bytes).unwrap()
    }

    #[test]
    fn a_clean_object_passes() {
        // endbr64; call pvma_glue_log (PLT32); ret
        let code = with_endbr(&[0xe8, 0, 0, 0, 0, RET]);
        assert_eq!(
            problems(&object(
                &code,
                Some((elf::R_X86_64_PLT32, "pvma_glue_log")),
                None
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rule_1_got_section_and_got_relocations() {
        let code = with_endbr(&[RET]);
        let found = problems(&object(&code, None, Some(".got")));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("rule 1: has a .got section")),
            "{found:?}"
        );
        // endbr64; mov memset@GOTPCREL(%rip), %rax; ret
        let code = with_endbr(&[0x48, 0x8b, 0x05, 0, 0, 0, 0, RET]);
        let found = problems(&object(
            &code,
            Some((elf::R_X86_64_REX_GOTPCRELX, "memset")),
            None,
        ));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("rule 1: relocation type 42")),
            "{found:?}"
        );
    }

    #[test]
    fn rule_2_indirect_call_and_jump() {
        let found = problems(&object(&with_endbr(&[0xff, 0xd0, RET]), None, None));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("rule 2: indirect branch at f+0x4: call"),
            "{found:?}"
        );
        let found = problems(&object(&with_endbr(&[0xff, 0xe0]), None, None));
        assert!(
            found[0].starts_with("rule 2: indirect branch at f+0x4: jmp"),
            "{found:?}"
        );
    }

    #[test]
    fn rule_3_vector_instructions() {
        // movaps %xmm1, %xmm0
        let found = problems(&object(&with_endbr(&[0x0f, 0x28, 0xc1, RET]), None, None));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("rule 3: SSE/AVX/MMX instruction at f+0x4"),
            "{found:?}"
        );
        // vpxor %ymm0, %ymm0, %ymm0
        let found = problems(&object(
            &with_endbr(&[0xc5, 0xfd, 0xef, 0xc0, RET]),
            None,
            None,
        ));
        assert!(found[0].starts_with("rule 3"), "{found:?}");
    }

    #[test]
    fn rule_4_undefined_symbols_outside_the_glue() {
        let code = with_endbr(&[0xe8, 0, 0, 0, 0, RET]);
        let found = problems(&object(&code, Some((elf::R_X86_64_PLT32, "printk")), None));
        assert_eq!(found, ["rule 4: undefined symbol printk"]);
    }

    #[test]
    fn rule_6_a_reachable_panic_is_named() {
        let code = with_endbr(&[0xe8, 0, 0, 0, 0, RET]);
        let found = problems(&object(
            &code,
            Some((elf::R_X86_64_PLT32, PANIC_REACHABLE)),
            None,
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("rule 6: a panic is reachable"),
            "{found:?}"
        );
    }

    #[test]
    fn rule_5_exported_functions_begin_with_endbr64() {
        let found = problems(&object(&[0x90, RET], None, None));
        assert_eq!(
            found,
            ["rule 5: exported function f does not begin with endbr64"]
        );
    }

    #[test]
    fn glue_list_matches_the_ffi_declarations() {
        let ffi = include_str!("../../../hypervisor-patch/src/ffi.rs");
        let declared: Vec<&str> = ffi
            .lines()
            .filter_map(|line| line.trim().strip_prefix("pub fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        assert_eq!(declared, GLUE_SERVICES);
    }
}
