//! Change-log codec throughput: encoding and decoding frames of realistic partition records
//! (records/s and bytes/s, one core), in the current frame version and, to show what its
//! checksum costs, in version 1. Run: `cargo bench --bench codec`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lakelog::model::codec::{decode, encode, encode_as, FrameVersion};
use lakelog::model::{CatalogObject, Cause, CauseKind, ChangeRecord, Origin};
use lakelog::simulate::catalog::{generate, CatalogSpec};

/// Frames of ~1,000 partition records from a generated crawler-like table.
fn frames() -> Vec<Vec<ChangeRecord>> {
    let spec = CatalogSpec {
        prefix: "bench".into(),
        databases: 1,
        tables_per_database: 4,
        partitions_per_table: 2_500,
        bucket: "bench-data".into(),
    };
    let origin =
        Origin { account: "123456789012".into(), region: "us-east-1".into(), catalog_id: "123456789012".into() };
    let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
    let records: Vec<ChangeRecord> = generate(&spec)
        .partitions
        .into_iter()
        .map(|p| ChangeRecord::upsert(CatalogObject::Partition(p), &origin, cause.clone(), 1_760_000_000_000))
        .collect();
    records.chunks(1_000).map(<[ChangeRecord]>::to_vec).collect()
}

fn codec(c: &mut Criterion) {
    let frames = frames();
    let records: usize = frames.iter().map(Vec::len).sum();
    let encoded: Vec<Vec<u8>> = frames.iter().map(|f| encode(f).expect("encode")).collect();
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    assert!(encoded.iter().zip(&frames).all(|(e, f)| decode(e).is_ok_and(|d| &d == f)), "frames must round-trip");
    let encoded_v1: Vec<Vec<u8>> = frames.iter().map(|f| encode_as(f, FrameVersion::V1).expect("encode v1")).collect();
    println!(
        "{records} partition records in {} frames, {bytes} bytes ({:.1} bytes per record)",
        frames.len(),
        bytes as f64 / records as f64
    );

    // The same runs, reported once per record and once per byte.
    for (group, throughput) in
        [("records", Throughput::Elements(records as u64)), ("bytes", Throughput::Bytes(bytes as u64))]
    {
        let mut g = c.benchmark_group(group);
        g.sample_size(20).measurement_time(Duration::from_secs(3)).throughput(throughput);
        g.bench_function("encode", |b| {
            b.iter(|| frames.iter().map(|f| encode(black_box(f)).map(|v| v.len()).unwrap_or(0)).sum::<usize>())
        });
        for (name, frames) in [("decode", &encoded), ("decode_v1", &encoded_v1)] {
            g.bench_function(name, |b| {
                b.iter(|| frames.iter().map(|f| decode(black_box(f)).map(|v| v.len()).unwrap_or(0)).sum::<usize>())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
