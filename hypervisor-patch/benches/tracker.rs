//! Lookup time of the tracker at 4M frames against a flat array loaded at the same keys (the
//! fastest a per-frame table can be), and the tracker's bytes per tracked frame.
//!
//! `cargo bench -p hypervisor-patch --bench tracker`; the ratio and the memory figures are
//! printed before criterion's own report.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use hypervisor_patch::access::PageAccess;
use hypervisor_patch::tracker::{NodeAlloc, Tree, NODE_BYTES};

const LAYOUT: std::alloc::Layout = match std::alloc::Layout::from_size_align(NODE_BYTES, 4096) {
    Ok(layout) => layout,
    Err(_) => panic!("bad layout"),
};

/// Nodes from the host's heap.
struct Heap;

// SAFETY: zeroed, page-sized and aligned nodes, freed with the layout they came with.
unsafe impl NodeAlloc for Heap {
    fn alloc_node() -> *mut u8 {
        // SAFETY: LAYOUT has a non-zero size.
        unsafe { std::alloc::alloc_zeroed(LAYOUT) }
    }

    unsafe fn free_node(node: *mut u8) {
        // SAFETY: from alloc_node, as the trait requires of the caller.
        unsafe { std::alloc::dealloc(node, LAYOUT) }
    }
}

const FRAMES: u64 = 4 << 20;
/// Repetitions of the ratio: `cargo xtask bench` reports their median, minimum and maximum.
const RUNS: usize = 7;
/// Where to write the figures as JSON (`cargo xtask bench` sets it).
const OUTPUT_VARIABLE: &str = "PVMA_TRACKER_BENCH_JSON";
/// Set: only the figures, not criterion's own measurement (`cargo xtask bench --quick`).
const QUICK_VARIABLE: &str = "PVMA_TRACKER_BENCH_QUICK";
const BASE: u64 = 0x12_3400_0000;

/// xorshift64: the lookup order, random so neither side gets a sequential-prefetch gift.
fn keys(count: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BASE + x % FRAMES
        })
        .collect()
}

fn tracker(c: &mut Criterion) {
    let mut tree = Box::new(Tree::<Heap>::EMPTY);
    let mut flat = vec![0u8; FRAMES as usize];
    for (i, mfn) in (BASE..BASE + FRAMES).enumerate() {
        let access = PageAccess::ALL[i % 10];
        assert!(tree.set(mfn, access).is_ok(), "out of memory");
        flat[i] = access as u8;
    }
    let keys = keys(1 << 16);
    let tree_lookups = || keys.iter().filter_map(|&mfn| tree.lookup(mfn)).count();
    let flat_lookups = || {
        keys.iter()
            .map(|&mfn| flat[(mfn - BASE) as usize])
            .filter(|&access| access != 0)
            .count()
    };

    // Figures of our own, whatever criterion's output format: the ratio measured RUNS
    // times, the two sides interleaved, so `cargo xtask bench` has its runs.
    let time = |f: &dyn Fn() -> usize| {
        let start = Instant::now();
        for _ in 0..50 {
            black_box(f());
        }
        start.elapsed().as_secs_f64() / (50.0 * keys.len() as f64) * 1e9
    };
    let ratios: Vec<f64> = (0..RUNS)
        .map(|_| time(&tree_lookups) / time(&flat_lookups))
        .collect();
    let bytes_per_frame = tree.bytes() as f64 / FRAMES as f64;
    println!(
        "tracker at 4M frames: lookup / flat array {ratios:.2?}; {bytes_per_frame:.3} bytes per \
         tracked frame ({} nodes, {} in reserve)",
        tree.nodes(),
        tree.reserved()
    );
    if let Some(path) = std::env::var_os(OUTPUT_VARIABLE) {
        let runs: Vec<String> = ratios.iter().map(|ratio| format!("{ratio}")).collect();
        let json = format!(
            "{{\"lookup_ratio_runs\":[{}],\"bytes_per_frame\":{bytes_per_frame}}}\n",
            runs.join(",")
        );
        assert!(std::fs::write(&path, json).is_ok(), "writing {path:?}");
    }
    if std::env::var_os(QUICK_VARIABLE).is_some() {
        tree.destroy();
        return;
    }

    let mut group = c.benchmark_group("lookup 64Ki random keys at 4M frames");
    group.bench_function("tracker", |b| b.iter(|| black_box(tree_lookups())));
    group.bench_function("flat array", |b| b.iter(|| black_box(flat_lookups())));
    group.finish();
    tree.destroy();
}

criterion_group!(benches, tracker);
criterion_main!(benches);
