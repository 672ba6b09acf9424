//! The C header of the boundary (`asm/pv-mem-access.h`, added by the first patch of the
//! series) and the Rust declarations in `src/ffi.rs` must say the same thing: same functions,
//! same parameter and return types, same constants. This test reads both and compares them,
//! so neither can change alone.

use std::collections::BTreeMap;

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

/// Function prototypes and `#define NAME number` lines of the header.
fn parse_header(header: &str) -> (BTreeMap<String, Signature>, BTreeMap<String, String>) {
    let text = strip_c_comments(header);
    let mut defines = BTreeMap::new();
    let mut code = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(define) = line.strip_prefix("#define ") {
            let mut words = define.split_whitespace();
            if let (Some(name), Some(value)) = (words.next(), words.next()) {
                defines.insert(name.to_string(), value.to_string());
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
        Some(hypervisor_patch::ffi::LOG_MAX_NUMBERS.to_string().as_str())
    );
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
    let patches = concat!(env!("CARGO_MANIFEST_DIR"), "/patches");
    let mut added = String::new();
    for entry in std::fs::read_dir(patches).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|line| line.starts_with('+')) {
            added.push_str(line);
            added.push('\n');
        }
    }
    assert!(added.contains("+static int relax_frame("));
    assert!(added.contains("+    rc = pvma_tracker_relax(tracker_of(pvma), mfn_x(mfn), "));
    assert!(!added.contains("pvma_tracker_set(tracker_of(pvma), mfn_x(mfn)"));
}
