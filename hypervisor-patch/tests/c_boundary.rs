//! The C header of the boundary (`asm/pv-mem-access.h`, added by the first patch of the
//! series) and the Rust declarations in `src/ffi.rs` must say the same thing: same functions,
//! same parameter and return types, same constants (every `PVMA_*` of the header), and the
//! layouts both sides assume (the tracker's storage, the packing of a fault decision). These
//! tests read both and compare them, so neither can change alone.

use std::collections::BTreeMap;

use hypervisor_patch::access::{FaultAction, PageAccess};
use hypervisor_patch::domain_tracker::TrackerState;
use hypervisor_patch::ffi;

const HEADER: &str = "xen/arch/x86/include/asm/pv-mem-access.h";

/// A function signature in C terms: return type, then parameter types.
type Signature = (String, Vec<String>);

/// The header's text after the whole series: each patch's hunks for the header alone are
/// applied in order with `patch`, in a scratch directory.
fn header_from_series() -> String {
    let patches = concat!(env!("CARGO_MANIFEST_DIR"), "/patches");
    // One directory per call: the tests run in parallel threads.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("c-boundary-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let series = std::fs::read_to_string(format!("{patches}/series")).unwrap();
    let mut touched = false;
    for name in series.lines().map(str::trim) {
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        let patch = std::fs::read_to_string(format!("{patches}/{name}")).unwrap();
        let start = format!("diff --git a/{HEADER} b/{HEADER}");
        let Some(at) = patch.find(&start) else {
            continue;
        };
        let rest = &patch[at..];
        let end = rest[1..]
            .find("\ndiff --git ")
            .map_or(rest.len(), |end| end + 2);
        let diff = scratch.join("header.diff");
        std::fs::write(&diff, &rest[..end]).unwrap();
        let status = std::process::Command::new("patch")
            .args(["-p1", "--batch", "--quiet", "-d"])
            .arg(&scratch)
            .arg("-i")
            .arg(&diff)
            .status()
            .expect("the patch program (Debian package patch)");
        assert!(
            status.success(),
            "{name}: its hunks for {HEADER} do not apply"
        );
        touched = true;
    }
    assert!(touched, "no patch in the series adds {HEADER}");
    let header = std::fs::read_to_string(scratch.join(HEADER)).unwrap();
    std::fs::remove_dir_all(&scratch).unwrap();
    header
}

fn strip_c_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("unterminated comment") + start + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn normalise_c_type(text: &str) -> String {
    text.replace('*', " * ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Function prototypes and `#define NAME value` lines of the header (the value's words
/// joined by one space; defines without a value are left out).
fn parse_header(header: &str) -> (BTreeMap<String, Signature>, BTreeMap<String, String>) {
    let text = strip_c_comments(header);
    let mut defines = BTreeMap::new();
    let mut code = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(define) = line.strip_prefix("#define ") {
            let mut words = define.split_whitespace();
            if let Some(name) = words.next() {
                let value = words.collect::<Vec<_>>().join(" ");
                if !value.is_empty() {
                    defines.insert(name.to_string(), value);
                }
            }
        } else if !line.starts_with('#') {
            code.push_str(line);
            code.push(' ');
        }
    }
    let mut functions = BTreeMap::new();
    for declaration in code.split(';').filter(|d| d.contains('(')) {
        let (head, params) = declaration.split_once('(').unwrap();
        let params = params.trim().trim_end_matches(')');
        let head = normalise_c_type(head);
        let (returns, name) = head.rsplit_once(' ').unwrap();
        let params: Vec<String> = if params.trim() == "void" {
            Vec::new()
        } else {
            params
                .split(',')
                .map(|param| {
                    // Drop the parameter's name: the last word.
                    let param = normalise_c_type(param);
                    param.rsplit_once(' ').unwrap().0.to_string()
                })
                .collect()
        };
        // The boundary is the pvma_* functions; the header also declares C-only helpers.
        if name.starts_with("pvma_") {
            functions.insert(name.to_string(), (returns.to_string(), params));
        }
    }
    (functions, defines)
}

/// The C type a Rust type at the boundary stands for.
fn c_type_of(rust: &str) -> &'static str {
    match rust.trim() {
        "" | "()" => "void",
        "!" => "void noreturn",
        "usize" => "size_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i32" => "int",
        "bool" => "bool",
        "*const u8" => "const char *",
        "*const u64" => "const uint64_t *",
        "*mut u8" => "void *",
        "*mut TrackerState" => "struct pvma_tracker *",
        other => panic!("no C twin known for the Rust type {other}"),
    }
}

/// `fn` declarations of `src/ffi.rs` that cross the boundary: the `extern "C"` block's
/// imports and the `extern "C" fn` exports, in C terms.
fn parse_rust(ffi: &str) -> BTreeMap<String, Signature> {
    let mut functions = BTreeMap::new();
    let flat: String = ffi
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut in_extern_block = false;
    let mut rest = flat.as_str();
    loop {
        let next_fn = rest.find("fn ");
        let next_block = rest.find("extern \"C\" {");
        match (next_fn, next_block) {
            (_, Some(block)) if next_fn.is_none_or(|f| block < f) => {
                in_extern_block = true;
                rest = &rest[block + 12..];
                continue;
            }
            (None, _) => break,
            (Some(at), _) => {
                let before = &rest[..at];
                if in_extern_block && before.contains('}') {
                    in_extern_block = false;
                }
                let exported = before.trim_end().ends_with("extern \"C\"");
                let (name, after) = rest[at + 3..].split_once('(').unwrap();
                let (params, after) = after.split_once(')').unwrap();
                let end = after.find([';', '{']).unwrap();
                let returns = after[..end].trim().trim_start_matches("->").trim();
                if in_extern_block || exported {
                    let params = params
                        .split(',')
                        .filter(|p| !p.trim().is_empty())
                        .map(|p| c_type_of(p.split_once(':').unwrap().1).to_string())
                        .collect();
                    functions.insert(
                        name.trim().to_string(),
                        (c_type_of(returns).to_string(), params),
                    );
                }
                rest = &after[end..];
            }
        }
    }
    functions
}

#[test]
fn header_and_rust_declare_the_same_boundary() {
    let (c_functions, defines) = parse_header(&header_from_series());
    let mut rust_functions = parse_rust(include_str!("../src/ffi.rs"));
    // Declared only to break the link if a panic is reachable: no C side has it, on purpose.
    assert!(rust_functions
        .remove("pvma_rust_panic_is_reachable")
        .is_some());
    assert!(!c_functions.is_empty());
    assert_eq!(c_functions, rust_functions);
    assert_eq!(
        defines.get("PVMA_LOG_MAX_NUMBERS").map(String::as_str),
        Some(ffi::LOG_MAX_NUMBERS.to_string().as_str())
    );
}

/// The value of a C integer constant as the header writes them: `4`, `0x10`, `2u`, or a
/// shift such as `(1u << 2)`. Anything else fails the test, so a new form is looked at.
fn c_integer(value: &str) -> u64 {
    let value = value.trim();
    if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
        return c_integer(inner);
    }
    if let Some((left, right)) = value.split_once("<<") {
        return c_integer(left) << c_integer(right);
    }
    let digits = value.trim_end_matches(['u', 'U', 'l', 'L']);
    let parsed = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("not a C integer constant this test reads: {value}"))
}

/// Every constant the boundary shares, by its C name, with the value Rust gives it.
fn rust_constants() -> BTreeMap<String, u64> {
    [
        ("PVMA_LOG_MAX_NUMBERS", ffi::LOG_MAX_NUMBERS as u64),
        ("PVMA_L1_PRESENT", u64::from(ffi::L1_PRESENT)),
        ("PVMA_L1_WRITABLE", u64::from(ffi::L1_WRITABLE)),
        ("PVMA_L1_NO_EXECUTE", u64::from(ffi::L1_NO_EXECUTE)),
        ("PVMA_FAULT_ALLOWED", FaultAction::Allowed as u64),
        ("PVMA_FAULT_SYNC", FaultAction::SyncEvent as u64),
        ("PVMA_FAULT_ASYNC", FaultAction::AsyncEvent as u64),
        ("PVMA_FAULT_RELAX", FaultAction::Relax as u64),
        ("PVMA_FAULT_CRASH", FaultAction::CrashDomain as u64),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// Every `PVMA_*` constant of the header, by name.
fn c_constants(defines: &BTreeMap<String, String>) -> BTreeMap<String, u64> {
    defines
        .iter()
        .filter(|(name, _)| name.starts_with("PVMA_"))
        .map(|(name, value)| (name.clone(), c_integer(value)))
        .collect()
}

#[test]
fn header_and_rust_agree_on_every_constant() {
    let (_, defines) = parse_header(&header_from_series());
    // Both ways: a constant one side adds without its twin fails too.
    assert_eq!(c_constants(&defines), rust_constants());
}

#[test]
fn constants_are_read_as_c_computes_them() {
    assert_eq!(c_integer("4"), 4);
    assert_eq!(c_integer("(1u << 2)"), 4);
    assert_eq!(c_integer("0x10"), 16);
    let header = "#define PVMA_L1_WRITABLE    (1u << 1)\n#define PVMA_FAULT_SYNC 1 /* why */";
    let (_, defines) = parse_header(header);
    assert_eq!(
        c_constants(&defines),
        BTreeMap::from([
            ("PVMA_FAULT_SYNC".to_string(), 1),
            ("PVMA_L1_WRITABLE".to_string(), 2)
        ])
    );
}

/// The lines the series adds, in every patch (C and header alike).
fn added_lines() -> String {
    let patches = concat!(env!("CARGO_MANIFEST_DIR"), "/patches");
    let mut added = String::new();
    for entry in std::fs::read_dir(patches).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|line| line.starts_with('+')) {
            added.push_str(line);
            added.push('\n');
        }
    }
    added
}

/// `struct pvma_tracker` is Rust's layout in C's memory: the glue allocates
/// `pvma_tracker_size()` bytes, rounded up to whole `uint64_t`s, as the flexible array
/// `uint64_t tracker[]` (zeroed, so 8-byte aligned); the state must fit that alignment and
/// that size.
#[test]
fn the_tracker_state_fits_the_storage_c_gives_it() {
    let header = header_from_series();
    assert!(
        header.contains("allocate them zeroed, 8-byte aligned"),
        "the header no longer says how C allocates a tracker"
    );
    let added = added_lines();
    assert!(added.contains("+    uint64_t tracker[];"));
    assert!(added.contains("xzalloc_flex_struct(struct pv_mem_access_domain, tracker,"));
    assert!(added.contains("DIV_ROUND_UP(pvma_tracker_size(),"));
    assert!(added.contains("sizeof(uint64_t)));"));
    assert!(std::mem::align_of::<TrackerState>() <= std::mem::align_of::<u64>());
    assert_eq!(
        ffi::pvma_tracker_size(),
        std::mem::size_of::<TrackerState>()
    );
}

/// `pvma_fault_decide` packs a `PVMA_FAULT_*` in bits 0-7 and a `p2m_access_t` in bits 8-15,
/// and the glue unpacks it with `& 0xff` and `>> 8`: every decision Rust makes must read back
/// as one of the header's actions and an access Xen stores. And `pvma_l1_rights` answers in
/// the header's `PVMA_L1_*` bits only.
#[test]
fn results_are_packed_as_c_unpacks_them() {
    let (_, defines) = parse_header(&header_from_series());
    let constants = c_constants(&defines);
    let actions: Vec<u32> = constants
        .iter()
        .filter(|(name, _)| name.starts_with("PVMA_FAULT_"))
        .map(|(_, &value)| u32::try_from(value).unwrap())
        .collect();
    let l1_bits = ["PVMA_L1_PRESENT", "PVMA_L1_WRITABLE", "PVMA_L1_NO_EXECUTE"]
        .iter()
        .map(|name| u32::try_from(constants[*name]).unwrap())
        .fold(0, |bits, bit| bits | bit);
    let added = added_lines();
    assert!(added.contains("+    after = decision >> 8;"));
    assert!(added.contains("switch ( decision & 0xff )"));

    // Every p2m_access_t and one value past them; reads, writes, fetches, user and not.
    let error_codes = [0, 1, 2, 3, 4, 5, 6, 7, 0x10, 0x11, 0x14, 0x15];
    for access in 0..=10 {
        assert_eq!(ffi::pvma_l1_rights(access) & !l1_bits, 0, "access {access}");
        for error_code in error_codes {
            for (listener, required) in [(false, false), (false, true), (true, false), (true, true)]
            {
                let decision = ffi::pvma_fault_decide(access, error_code, listener, required);
                let case = format!("access {access}, error code {error_code:#x}, {listener}");
                assert_eq!(decision >> 16, 0, "{case}");
                assert!(actions.contains(&(decision & 0xff)), "{case}");
                assert!(PageAccess::from_p2m(decision >> 8).is_some(), "{case}");
            }
        }
    }
}

#[test]
fn the_comparison_sees_a_drift() {
    let header = "void pvma_module_init(void);\nvoid pvma_glue_log(const char *m, size_t n);\n\
                  int pv_mem_access_enable(struct domain *d);";
    let (c_functions, _) = parse_header(header);
    let rust = "extern \"C\" { pub fn pvma_glue_log(m: *const u8, n: u32); }\n\
                #[no_mangle] pub extern \"C\" fn pvma_module_init() {}";
    let rust_functions = parse_rust(rust);
    assert_eq!(
        c_functions["pvma_module_init"],
        rust_functions["pvma_module_init"]
    );
    assert_ne!(
        c_functions["pvma_glue_log"],
        rust_functions["pvma_glue_log"]
    );
}

/// The tracker's split between the listener's calls (which may allocate) and the fault
/// path's (which never does) is part of the boundary: both sides name the same functions
/// with the same signatures, and the C side's fault path calls only the one that cannot
/// allocate.
#[test]
fn the_tracker_boundary_splits_listener_and_fault_path() {
    let (c_functions, _) = parse_header(&header_from_series());
    let tracker = "struct pvma_tracker *";
    let expect = |name: &str, returns: &str, params: &[&str]| {
        assert_eq!(
            c_functions.get(name),
            Some(&(
                returns.to_string(),
                params.iter().map(|p| p.to_string()).collect()
            )),
            "{name}"
        );
    };
    expect(
        "pvma_tracker_set",
        "int",
        &[tracker, "uint64_t", "uint32_t"],
    );
    expect(
        "pvma_tracker_relax",
        "int",
        &[tracker, "uint64_t", "uint32_t"],
    );
    expect("pvma_tracker_refill", "int", &[tracker]);
    expect("pvma_tracker_set_default", "int", &[tracker, "uint64_t"]);

    // The glue's fault path: relax_frame() converts with pvma_tracker_relax, never with
    // pvma_tracker_set (which allocates), in every patch of the series.
    let added = added_lines();
    assert!(added.contains("+static int relax_frame("));
    assert!(added.contains("+    rc = pvma_tracker_relax(tracker_of(pvma), mfn_x(mfn), "));
    assert!(!added.contains("pvma_tracker_set(tracker_of(pvma), mfn_x(mfn)"));
}
