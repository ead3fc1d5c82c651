//! Bytes per object of the publisher's memory (`lakelog run`'s "what was recorded"), measured by
//! a counting global allocator: its own test binary, so nothing else allocates while it counts.
//! Counted are the bytes requested from the allocator (its size-class rounding excluded).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use lakelog::model::ObjectKey;
use lakelog::stream::recorded::{Recorded, RecordedMemory};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const REGIONS: [&str; 5] = ["eu-west-1", "us-east-1", "ap-south-1", "sa-east-1", "ca-central-1"];

/// 1,000,000 partitions (date, region) in 200 tables of one database, as a snapshot records them;
/// `LAKELOG_RECORDED_MILLIONS=10` measures 10M in 2,000 tables (the README's figure, best in a
/// release build: `cargo test --release --test recorded_memory -- --nocapture`).
#[test]
fn a_million_partitions_in_200_tables_cost_under_40_bytes_each() {
    let millions: usize = std::env::var("LAKELOG_RECORDED_MILLIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let before = LIVE.load(Ordering::Relaxed);
    let mut memory = RecordedMemory::default();
    let mut n = 0i64;
    for table in 0..200 * millions {
        let table = format!("table_{table:04}");
        for day in 0..1000 {
            let date = format!("{}-{:02}-{:02}", 2026 + day / 336, 1 + day / 28 % 12, 1 + day % 28);
            for region in REGIONS {
                let key = ObjectKey::Partition {
                    catalog: "123456789012".into(),
                    database: "sales".into(),
                    table: table.clone(),
                    values: vec![date.clone(), region.into()],
                };
                memory.insert(&key, Recorded { captured_at: 1_764_000_000_000 + n, hash: Some(n as u64) });
                n += 1;
            }
        }
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let objects = millions * 1_000_000;
    assert_eq!(memory.len(), objects);
    let per_object = bytes as f64 / objects as f64;
    let estimated = memory.heap_bytes() as f64 / objects as f64;
    println!(
        "recorded memory, {objects} partitions: {per_object:.1} bytes per object (allocator), {estimated:.1} (capacities)"
    );
    assert!(per_object <= 40.0, "{per_object:.1} bytes per object");
    // The capacity estimate (the unit test's) is close to what the allocator handed out.
    assert!((per_object - estimated).abs() <= 2.0, "allocator {per_object:.1} vs capacities {estimated:.1}");
}
