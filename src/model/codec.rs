//! The wire format of the change log.
//!
//! One Kinesis record (and later one archive frame) holds a batch of change records that share a
//! stream partition key, so a crawler writing thousands of partitions to one table costs a handful
//! of Kinesis records instead of thousands.
//!
//! Layout, version 1:
//! ```text
//! b"LKLG" | version: u8 = 1 | flags: u8 = 0 | MessagePack array of ChangeRecord (maps with field names)
//! ```
//! Field names (not positions) are encoded so that fields can be added in later releases without
//! breaking old logs. The golden files in `tests/fixtures/` pin this format: a change log written
//! by this release must decode with every later one.

use thiserror::Error;

use super::record::ChangeRecord;

pub const MAGIC: &[u8; 4] = b"LKLG";
pub const VERSION: u8 = 1;
const HEADER_LEN: usize = 6;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("not a lakelog change-log frame (bad magic {found:02x?}); was this stream written by another producer?")]
    BadMagic { found: Vec<u8> },
    #[error("change-log frame version {found} is newer than this lakelog understands ({VERSION}); upgrade lakelog")]
    UnsupportedVersion { found: u8 },
    #[error("change-log frame uses flags {found:#04x} that this lakelog does not understand; upgrade lakelog")]
    UnsupportedFlags { found: u8 },
    #[error("change-log frame is truncated ({len} bytes)")]
    Truncated { len: usize },
    #[error("change-log frame body does not decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("change record does not encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Encodes a batch of records into one frame.
pub fn encode(records: &[ChangeRecord]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() * 256);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(0);
    rmp_serde::encode::write_named(&mut out, records)?;
    Ok(out)
}

/// The encoded size of one record inside a frame (without the frame header).
pub fn encoded_len(record: &ChangeRecord) -> Result<usize, CodecError> {
    Ok(rmp_serde::to_vec_named(record)?.len())
}

/// Decodes one frame into its records.
pub fn decode(frame: &[u8]) -> Result<Vec<ChangeRecord>, CodecError> {
    if frame.len() < HEADER_LEN {
        return Err(CodecError::Truncated { len: frame.len() });
    }
    if &frame[..4] != MAGIC {
        return Err(CodecError::BadMagic { found: frame[..4].to_vec() });
    }
    match frame[4] {
        VERSION => {}
        found => return Err(CodecError::UnsupportedVersion { found }),
    }
    if frame[5] != 0 {
        return Err(CodecError::UnsupportedFlags { found: frame[5] });
    }
    Ok(rmp_serde::from_slice(&frame[HEADER_LEN..])?)
}

/// Builds one frame from records encoded one at a time, so a producer can measure each record
/// once and stop before a frame outgrows a Kinesis record. `finish` yields exactly what
/// [`encode`] would for the same records.
#[derive(Debug, Default)]
pub struct FrameBuilder {
    body: Vec<u8>,
    count: u32,
}

impl FrameBuilder {
    /// Encodes one record on its own (to be pushed later with [`FrameBuilder::push_encoded`]).
    pub fn encode_record(record: &ChangeRecord) -> Result<Vec<u8>, CodecError> {
        Ok(rmp_serde::to_vec_named(record)?)
    }

    pub fn push_encoded(&mut self, encoded: &[u8]) {
        self.body.extend_from_slice(encoded);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Size of the finished frame.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + 5 + self.body.len()
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.frame_len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(0);
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, self.count);
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::*;

    const GOLDEN_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v1.bin");
    const GOLDEN_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v1.json");

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The records pinned by the v1 golden files. Never change them: add a v2 file instead.
    fn golden_records() -> Vec<ChangeRecord> {
        let origin = Origin { account: "123456789012".into(), region: "us-east-1".into(), catalog_id: "123456789012".into() };
        let db = Database {
            name: "sales".into(),
            description: Some("Ventes journalières — 売上 📈".into()),
            location_uri: Some("s3://data/sales/".into()),
            parameters: params(&[("owner", "team-a")]),
            create_table_default_permissions: vec![PrincipalPermissions { principal: Some("IAM_ALLOWED_PRINCIPALS".into()), permissions: vec!["ALL".into()] }],
            target_database: None,
            federated_database: None,
            meta: DatabaseMeta { catalog_id: Some("123456789012".into()), create_time: Some(1_760_000_000_000) },
        };
        let column = |n: &str, t: &str| Column { name: n.into(), type_: Some(t.into()), comment: Some(format!("{n} — ✓")), parameters: params(&[("k", "v")]) };
        let sd = StorageDescriptor {
            columns: vec![column("id", "bigint"), column("amount", "decimal(10,2)")],
            location: Some("s3://data/sales/orders/".into()),
            additional_locations: vec!["s3://data/sales/orders-extra/".into()],
            input_format: Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into()),
            output_format: Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat".into()),
            compressed: true,
            number_of_buckets: 8,
            serde_info: Some(SerDeInfo {
                name: Some("parquet".into()),
                serialization_library: Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into()),
                parameters: params(&[("serialization.format", "1")]),
            }),
            bucket_columns: vec!["id".into()],
            sort_columns: vec![Order { column: "id".into(), sort_order: 1 }, Order { column: "amount".into(), sort_order: 0 }],
            parameters: params(&[("classification", "parquet")]),
            skewed_info: Some(SkewedInfo {
                skewed_column_names: vec!["id".into()],
                skewed_column_values: vec!["42".into()],
                skewed_column_value_location_maps: params(&[("42", "s3://data/sales/orders/id=42/")]),
            }),
            stored_as_sub_directories: true,
            schema_reference: Some(SchemaReference {
                schema_id: Some(SchemaId { schema_arn: None, schema_name: Some("orders".into()), registry_name: Some("reg".into()) }),
                schema_version_id: None,
                schema_version_number: Some(3),
            }),
        };
        let table = Table {
            database_name: "sales".into(),
            name: "orders".into(),
            description: Some("Commandes — 注文".into()),
            owner: Some("owner".into()),
            last_access_time: Some(1_760_000_100_000),
            last_analyzed_time: Some(1_760_000_200_000),
            retention: 7,
            storage_descriptor: Some(sd.clone()),
            partition_keys: vec![column("dt", "string")],
            view_original_text: Some("/* Presto View: e30= */".into()),
            view_expanded_text: Some("/* Presto View */".into()),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: params(&[("metadata_location", "s3://data/sales/orders/metadata/00001.metadata.json"), ("table_type", "ICEBERG")]),
            target_table: Some(TableIdentifier {
                catalog_id: Some("111122223333".into()),
                database_name: Some("shared".into()),
                name: Some("orders".into()),
                region: Some("us-east-1".into()),
            }),
            federated_table: Some(FederatedTable { identifier: Some("fid".into()), database_identifier: Some("fdb".into()), connection_name: Some("conn".into()), connection_type: None }),
            view_definition: Some(ViewDefinition {
                is_protected: Some(true),
                definer: Some("arn:aws:iam::123456789012:role/definer".into()),
                representations: vec![ViewRepresentation {
                    dialect: Some("ATHENA".into()),
                    dialect_version: Some("3".into()),
                    view_original_text: Some("SELECT 1".into()),
                    view_expanded_text: Some("SELECT 1".into()),
                    validation_connection: None,
                }],
                sub_objects: vec!["arn:aws:glue:us-east-1:123456789012:table/sales/base".into()],
            }),
            meta: TableMeta {
                catalog_id: Some("123456789012".into()),
                create_time: Some(1_760_000_000_000),
                update_time: Some(1_760_000_300_000),
                created_by: Some("arn:aws:iam::123456789012:role/crawler".into()),
                version_id: Some("4".into()),
                is_registered_with_lake_formation: true,
                is_multi_dialect_view: Some(false),
                is_materialized_view: None,
            },
        };
        let partition = Partition {
            database_name: "sales".into(),
            table_name: "orders".into(),
            values: vec!["2026-01-01".into()],
            last_access_time: None,
            storage_descriptor: Some(StorageDescriptor { location: Some("s3://data/sales/orders/dt=2026-01-01/".into()), ..sd }),
            parameters: params(&[("recordCount", "1000")]),
            last_analyzed_time: None,
            meta: PartitionMeta { catalog_id: Some("123456789012".into()), creation_time: Some(1_760_000_400_000) },
        };
        let snapshot = Cause { kind: CauseKind::Snapshot, event_id: None };
        let event = Cause { kind: CauseKind::Event, event_id: Some("e-7".into()) };
        let mut with_change = ChangeRecord::upsert(CatalogObject::Partition(partition.clone()), &origin, event.clone(), 1_760_000_500_000);
        with_change.changed_at = Some(1_760_000_499_000);
        vec![
            ChangeRecord::upsert(CatalogObject::Database(db), &origin, snapshot.clone(), 1_760_000_000_001),
            ChangeRecord::upsert(CatalogObject::Table(table), &origin, snapshot, 1_760_000_000_002),
            with_change,
            ChangeRecord::delete(ObjectKey::of("123456789012", &CatalogObject::Partition(partition)), &origin, event, 1_760_000_600_000),
        ]
    }

    /// Writes the golden files (only with LAKELOG_BLESS=1, once per format version).
    #[test]
    fn bless_golden_files() {
        if std::env::var("LAKELOG_BLESS").as_deref() != Ok("1") {
            return;
        }
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).expect("dir");
        std::fs::write(GOLDEN_BIN, encode(&golden_records()).expect("encode")).expect("write bin");
        let json = serde_json::to_string_pretty(&golden_records()).expect("json");
        std::fs::write(GOLDEN_JSON, json + "\n").expect("write json");
    }

    #[test]
    fn golden_v1_decodes() {
        let bytes = std::fs::read(GOLDEN_BIN).expect("golden file (bless with LAKELOG_BLESS=1)");
        assert_eq!(decode(&bytes).expect("decodes"), golden_records());
    }

    #[test]
    fn golden_v1_encodes_identically() {
        let bytes = std::fs::read(GOLDEN_BIN).expect("golden file");
        assert_eq!(encode(&golden_records()).expect("encode"), bytes, "the v1 wire format changed");
    }

    #[test]
    fn golden_json_matches() {
        let text = std::fs::read_to_string(GOLDEN_JSON).expect("golden json");
        let records: Vec<ChangeRecord> = serde_json::from_str(&text).expect("json");
        assert_eq!(records, golden_records());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(matches!(decode(b"LKL"), Err(CodecError::Truncated { len: 3 })));
        assert!(matches!(decode(b"JSON{}"), Err(CodecError::BadMagic { .. })));
        assert!(matches!(decode(b"LKLG\x02\x00\x90"), Err(CodecError::UnsupportedVersion { found: 2 })));
        assert!(matches!(decode(b"LKLG\x01\x01\x90"), Err(CodecError::UnsupportedFlags { found: 1 })));
        assert!(matches!(decode(b"LKLG\x01\x00\x91\xc1"), Err(CodecError::Decode(_))));
        assert_eq!(decode(b"LKLG\x01\x00\x90").expect("empty frame"), Vec::new());
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("\\PC{0,12}")
    }

    fn small_params() -> impl Strategy<Value = Params> {
        proptest::collection::btree_map("[a-z_.]{1,8}", "\\PC{0,10}", 0..3)
    }

    fn sd() -> impl Strategy<Value = StorageDescriptor> {
        (
            proptest::collection::vec(("[a-z_]{1,8}", opt_text(), opt_text(), small_params()), 0..3),
            opt_text(),
            any::<bool>(),
            -1i32..16,
            small_params(),
            proptest::collection::vec(("[a-z]{1,5}", 0i32..2), 0..2),
            proptest::option::of((proptest::collection::vec("[a-z]{1,4}", 0..2), small_params())),
        )
            .prop_map(|(cols, location, compressed, buckets, parameters, sort, skew)| StorageDescriptor {
                columns: cols.into_iter().map(|(name, type_, comment, parameters)| Column { name, type_, comment, parameters }).collect(),
                location,
                compressed,
                number_of_buckets: buckets,
                parameters,
                sort_columns: sort.into_iter().map(|(column, sort_order)| Order { column, sort_order }).collect(),
                skewed_info: skew.map(|(names, maps)| SkewedInfo { skewed_column_names: names, skewed_column_values: vec![], skewed_column_value_location_maps: maps }),
                ..Default::default()
            })
    }

    fn object() -> impl Strategy<Value = CatalogObject> {
        let db = ("[a-z_]{1,10}", opt_text(), small_params(), proptest::option::of(0i64..2_000_000_000_000)).prop_map(|(name, description, parameters, t)| {
            CatalogObject::Database(Database { name, description, parameters, meta: DatabaseMeta { catalog_id: None, create_time: t }, ..Default::default() })
        });
        let table = ("[a-z_]{1,10}", "[a-z_]{1,10}", opt_text(), proptest::option::of(sd()), small_params(), opt_text(), 0i32..10, proptest::option::of("[0-9]{1,3}"))
            .prop_map(|(database_name, name, description, storage_descriptor, parameters, table_type, retention, version)| {
                CatalogObject::Table(Table {
                    database_name,
                    name,
                    description,
                    storage_descriptor,
                    parameters,
                    table_type,
                    retention,
                    meta: TableMeta { version_id: version, ..Default::default() },
                    ..Default::default()
                })
            });
        let partition = ("[a-z_]{1,10}", "[a-z_]{1,10}", proptest::collection::vec("\\PC{0,10}", 1..3), proptest::option::of(sd()), small_params()).prop_map(
            |(database_name, table_name, values, storage_descriptor, parameters)| {
                CatalogObject::Partition(Partition { database_name, table_name, values, storage_descriptor, parameters, ..Default::default() })
            },
        );
        prop_oneof![db, table, partition]
    }

    fn record() -> impl Strategy<Value = ChangeRecord> {
        (object(), any::<bool>(), any::<i64>(), proptest::option::of(any::<i64>()), proptest::option::of("[a-z0-9-]{1,12}")).prop_map(
            |(state, delete, at, changed, event)| {
                let origin = Origin { account: "1".into(), region: "r".into(), catalog_id: "1".into() };
                let cause = Cause { kind: if event.is_some() { CauseKind::Event } else { CauseKind::Reconcile }, event_id: event };
                let mut r = ChangeRecord::upsert(state, &origin, cause.clone(), at);
                if delete {
                    r = ChangeRecord::delete(r.key, &origin, cause, at);
                }
                r.changed_at = changed;
                r
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn frames_round_trip(records in proptest::collection::vec(record(), 0..6)) {
            let bytes = encode(&records).expect("encode");
            prop_assert_eq!(decode(&bytes).expect("decode"), records.clone());
            let mut builder = FrameBuilder::default();
            for r in &records {
                builder.push_encoded(&FrameBuilder::encode_record(r).expect("record"));
            }
            prop_assert_eq!(builder.finish(), bytes);
        }

        #[test]
        fn content_hash_ignores_metadata_only(obj in object(), t in any::<i64>()) {
            let mut with_meta = obj.clone();
            match &mut with_meta {
                CatalogObject::Database(d) => d.meta.create_time = Some(t),
                CatalogObject::Table(x) => x.meta.update_time = Some(t),
                CatalogObject::Partition(p) => p.meta.creation_time = Some(t),
            }
            prop_assert_eq!(content_hash(&obj), content_hash(&with_meta));
            let mut changed = obj.clone();
            match &mut changed {
                CatalogObject::Database(d) => d.parameters.insert("lakelog.test".into(), "x".into()),
                CatalogObject::Table(x) => x.parameters.insert("lakelog.test".into(), "x".into()),
                CatalogObject::Partition(p) => p.parameters.insert("lakelog.test".into(), "x".into()),
            };
            prop_assert_ne!(content_hash(&obj), content_hash(&changed));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut framed = b"LKLG\x01\x00".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
            let _ = decode(&bytes);
        }
    }
}
