//! The wire format of the change log.
//!
//! One Kinesis record (and later one archive frame) holds a batch of change records that share a
//! stream partition key, so a crawler writing thousands of partitions to one table costs a handful
//! of Kinesis records instead of thousands.
//!
//! Layout, version 2 (written by this release); integers little-endian:
//! ```text
//! offset  0  b"LKLG"
//!         4  version: u8 = 2
//!         5  flags: u8 = 0
//!         6  body length: u32
//!        10  checksum: u64 = XXH3-64 (seed 0) of bytes 0..10 followed by the body
//!        18  body: MessagePack array of ChangeRecord (maps with field names)
//! ```
//! The checksum covers every byte but its own, so a frame damaged after it was written (one
//! flipped bit turns a table's location into another valid location) is an error, never records:
//! the consumer dead-letters it. XXH3 is already lakelog's hash; 64 bits leave a damaged frame
//! one chance in 2^64 to pass. The length makes a frame self-delimiting (an archive can hold
//! frames back to back) and tells a cut frame from a damaged one.
//!
//! Version 1 (releases before 2): `b"LKLG" | 1 | flags 0 | body`, no length, no checksum. It is
//! still read, so a stream or archive written by an older release stays readable.
//!
//! Field names (not positions) are encoded so that fields can be added in later releases without
//! breaking old logs. The golden files in `tests/fixtures/` pin every version: a change log written
//! by this release must decode with every later one. A reader checks everything before it hands
//! out a record: magic, version, length, checksum, flags, nesting depth, and that the body holds
//! exactly one array.

use thiserror::Error;
use xxhash_rust::xxh3::Xxh3Default;

use super::record::ChangeRecord;

pub const MAGIC: &[u8; 4] = b"LKLG";
/// The version this release writes.
pub const VERSION: u8 = FrameVersion::CURRENT as u8;
const HEADER_LEN_V1: usize = 6;
const HEADER_LEN_V2: usize = 18;
/// The largest MessagePack array header (array32).
const MAX_ARRAY_HEADER: usize = 5;
/// What a frame adds to its records' bytes, at most.
pub const MAX_FRAME_OVERHEAD: usize = HEADER_LEN_V2 + MAX_ARRAY_HEADER;
/// Deepest nesting a frame may have (the model itself needs fewer than 16 levels).
const MAX_DEPTH: usize = 32;

/// The frame versions this release reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVersion {
    /// No length, no checksum (releases before version 2 existed).
    V1 = 1,
    /// Body length and checksum in the header.
    V2 = 2,
}

impl FrameVersion {
    /// What this release writes. Readers must be upgraded before writers: a release that reads
    /// only version 1 dead-letters version 2 frames ("upgrade lakelog").
    pub const CURRENT: FrameVersion = FrameVersion::V2;

    fn header_len(self) -> usize {
        match self {
            FrameVersion::V1 => HEADER_LEN_V1,
            FrameVersion::V2 => HEADER_LEN_V2,
        }
    }
}

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
    #[error("change-log frame has {extra} bytes after its records (two frames glued together, or corruption)")]
    TrailingBytes { extra: usize },
    #[error("change-log frame is damaged: its checksum is {stored:016x} but its bytes hash to {computed:016x}; it changed after lakelog wrote it, so none of its records are applied (`lakelog sync` re-reads them from the source)")]
    ChecksumMismatch { stored: u64, computed: u64 },
    #[error(
        "change-log frame is cut short or damaged: its header declares a {declared}-byte body, {body} bytes arrived"
    )]
    Incomplete { body: usize, declared: usize },
    #[error("change-log frame body does not decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("change record does not encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Encodes a batch of records into one frame of the current version.
pub fn encode(records: &[ChangeRecord]) -> Result<Vec<u8>, CodecError> {
    encode_as(records, FrameVersion::CURRENT)
}

/// Encodes a batch of records into one frame of `version` (version 1: for readers that predate
/// version 2, and to pin that format).
pub fn encode_as(records: &[ChangeRecord], version: FrameVersion) -> Result<Vec<u8>, CodecError> {
    let mut out = open_frame(version, records.len() * 256);
    rmp_serde::encode::write_named(&mut out, records)?;
    Ok(seal(version, out))
}

/// The encoded size of one record inside a frame (without the frame header).
pub fn encoded_len(record: &ChangeRecord) -> Result<usize, CodecError> {
    Ok(rmp_serde::to_vec_named(record)?.len())
}

/// A header with room for the length and checksum, which [`seal`] fills in after the body.
fn open_frame(version: FrameVersion, body_capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(version.header_len() + body_capacity);
    out.extend_from_slice(MAGIC);
    out.push(version as u8);
    out.push(0);
    out.resize(version.header_len(), 0);
    out
}

/// Writes the length and checksum of the body that follows the header.
fn seal(version: FrameVersion, mut frame: Vec<u8>) -> Vec<u8> {
    if version == FrameVersion::V2 {
        // Kinesis records hold 1 MiB; a body over 4 GiB cannot be described, and saturating makes
        // it an error to read (Incomplete) rather than records.
        let len = u32::try_from(frame.len() - HEADER_LEN_V2).unwrap_or(u32::MAX);
        frame[6..10].copy_from_slice(&len.to_le_bytes());
        let sum = checksum(&frame[..10], &frame[HEADER_LEN_V2..]);
        frame[10..HEADER_LEN_V2].copy_from_slice(&sum.to_le_bytes());
    }
    frame
}

/// XXH3-64 of a v2 header's first 10 bytes followed by the body.
fn checksum(head: &[u8], body: &[u8]) -> u64 {
    let mut hasher = Xxh3Default::new();
    hasher.update(head);
    hasher.update(body);
    hasher.digest()
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// Decodes one frame (any version this release reads) into its records.
pub fn decode(frame: &[u8]) -> Result<Vec<ChangeRecord>, CodecError> {
    if frame.len() < HEADER_LEN_V1 {
        return Err(CodecError::Truncated { len: frame.len() });
    }
    if &frame[..4] != MAGIC {
        return Err(CodecError::BadMagic { found: frame[..4].to_vec() });
    }
    let body = match frame[4] {
        1 => {
            if frame[5] != 0 {
                return Err(CodecError::UnsupportedFlags { found: frame[5] });
            }
            &frame[HEADER_LEN_V1..]
        }
        2 => verified_body(frame)?,
        found => return Err(CodecError::UnsupportedVersion { found }),
    };
    decode_body(body)
}

/// The body of a v2 frame, once its length and checksum hold.
fn verified_body(frame: &[u8]) -> Result<&[u8], CodecError> {
    if frame.len() < HEADER_LEN_V2 {
        return Err(CodecError::Truncated { len: frame.len() });
    }
    let declared = usize::try_from(le_u32(&frame[6..10])).unwrap_or(usize::MAX);
    let body = &frame[HEADER_LEN_V2..];
    if body.len() < declared {
        return Err(CodecError::Incomplete { body: body.len(), declared });
    }
    if body.len() > declared {
        return Err(CodecError::TrailingBytes { extra: body.len() - declared });
    }
    let stored = le_u64(&frame[10..HEADER_LEN_V2]);
    let computed = checksum(&frame[..10], body);
    if stored != computed {
        return Err(CodecError::ChecksumMismatch { stored, computed });
    }
    // After the checksum: flags that are damage say so, flags a newer writer set ask for an upgrade.
    if frame[5] != 0 {
        return Err(CodecError::UnsupportedFlags { found: frame[5] });
    }
    Ok(body)
}

/// Decodes a frame body: exactly one MessagePack array of records.
fn decode_body(body: &[u8]) -> Result<Vec<ChangeRecord>, CodecError> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(body));
    // The model nests fewer than 16 levels; a deeper frame is garbage, and rejecting it early
    // keeps a hostile frame from exhausting a worker thread's stack.
    de.set_max_depth(MAX_DEPTH);
    let records: Vec<ChangeRecord> = serde::Deserialize::deserialize(&mut de)?;
    let read = usize::try_from(de.position()).unwrap_or(usize::MAX);
    if read != body.len() {
        // Another frame glued on, or corruption: decoding only the first part would lose records.
        return Err(CodecError::TrailingBytes { extra: body.len().saturating_sub(read) });
    }
    Ok(records)
}

/// Builds one frame from records encoded one at a time, so a producer can measure each record
/// once and stop before a frame outgrows a Kinesis record. `finish` yields exactly what
/// [`encode_as`] would for the same records and version.
#[derive(Debug)]
pub struct FrameBuilder {
    version: FrameVersion,
    body: Vec<u8>,
    count: u32,
}

impl Default for FrameBuilder {
    fn default() -> FrameBuilder {
        FrameBuilder::new(FrameVersion::CURRENT)
    }
}

impl FrameBuilder {
    pub fn new(version: FrameVersion) -> FrameBuilder {
        FrameBuilder { version, body: Vec::new(), count: 0 }
    }

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

    /// Size of the finished frame, at most (it reserves the largest array header).
    pub fn frame_len(&self) -> usize {
        self.version.header_len() + MAX_ARRAY_HEADER + self.body.len()
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = open_frame(self.version, MAX_ARRAY_HEADER + self.body.len());
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, self.count);
        out.extend_from_slice(&self.body);
        seal(self.version, out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::*;

    const GOLDEN_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v1.bin");
    const GOLDEN_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v1.json");
    const GOLDEN_V2_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v2.bin");
    /// The Lake Formation kinds (added after v2's first release: same frame version, new kinds).
    const GOLDEN_LF_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v2-lakeformation.bin");
    const GOLDEN_LF_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/changelog-v2-lakeformation.json");
    /// The golden v2 frame's checksum, as the reference xxHash computes it.
    const GOLDEN_V2_CHECKSUM: u64 = 0xcd48_00a1_9995_260d;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The records pinned by the v1 golden files: every field of the model is set at least once
    /// (so every field name is pinned), with non-ASCII text, a negative integer, integers of every
    /// MessagePack width and a string longer than 255 bytes. Never change them once released: a
    /// format change gets a new version and a new golden file next to this one.
    fn golden_records() -> Vec<ChangeRecord> {
        let origin =
            Origin { account: "123456789012".into(), region: "eu-west-3".into(), catalog_id: "123456789012".into() };
        let db = Database {
            name: "sales".into(),
            description: Some("Ventes journalières — 売上 📈".into()),
            location_uri: Some("s3://data/sales/".into()),
            parameters: params(&[("owner", "team-a"), ("propriétaire", "équipe-b")]),
            create_table_default_permissions: vec![PrincipalPermissions {
                principal: Some("IAM_ALLOWED_PRINCIPALS".into()),
                permissions: vec!["ALL".into()],
            }],
            target_database: Some(DatabaseIdentifier {
                catalog_id: Some("111122223333".into()),
                database_name: Some("shared_sales".into()),
                region: Some("us-east-1".into()),
            }),
            federated_database: Some(FederatedDatabase {
                identifier: Some("arn:aws:redshift:us-east-1:111122223333:datashare:x/y".into()),
                connection_name: Some("redshift-conn".into()),
                connection_type: Some("REDSHIFT".into()),
            }),
            meta: DatabaseMeta { catalog_id: Some("123456789012".into()), create_time: Some(1_760_000_000_000) },
        };
        let column = |n: &str, t: &str| Column {
            name: n.into(),
            type_: Some(t.into()),
            comment: Some(format!("{n} — ✓")),
            parameters: params(&[("iceberg.field.id", "1")]),
        };
        let sd = StorageDescriptor {
            columns: vec![column("id", "bigint"), column("amount", "decimal(10,2)"), column("état", "string")],
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
            sort_columns: vec![
                Order { column: "id".into(), sort_order: 1 },
                Order { column: "amount".into(), sort_order: 0 },
            ],
            parameters: params(&[("classification", "parquet")]),
            skewed_info: Some(SkewedInfo {
                skewed_column_names: vec!["id".into()],
                skewed_column_values: vec!["42".into()],
                skewed_column_value_location_maps: params(&[("42", "s3://data/sales/orders/id=42/")]),
            }),
            stored_as_sub_directories: true,
            schema_reference: Some(SchemaReference {
                schema_id: Some(SchemaId {
                    schema_arn: Some("arn:aws:glue:eu-west-3:123456789012:schema/reg/orders".into()),
                    schema_name: Some("orders".into()),
                    registry_name: Some("reg".into()),
                }),
                schema_version_id: Some("3f0c7a8e-0000-4000-8000-000000000003".into()),
                schema_version_number: Some(3),
            }),
        };
        // Longer than 255 bytes: pins the str16 encoding as well as fixstr and str8.
        let presto_view = format!("/* Presto View: {} */", "eyJvcmlnaW5hbFNxbCI6IlNFTEVDVCAxIn0=".repeat(8));
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
            view_original_text: Some(presto_view),
            view_expanded_text: Some("/* Presto View */".into()),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: params(&[
                ("metadata_location", "s3://data/sales/orders/metadata/00001.metadata.json"),
                ("table_type", "ICEBERG"),
            ]),
            target_table: Some(TableIdentifier {
                catalog_id: Some("111122223333".into()),
                database_name: Some("shared".into()),
                name: Some("orders".into()),
                region: Some("us-east-1".into()),
            }),
            federated_table: Some(FederatedTable {
                identifier: Some("fid".into()),
                database_identifier: Some("fdb".into()),
                connection_name: Some("conn".into()),
                connection_type: Some("REDSHIFT".into()),
            }),
            view_definition: Some(ViewDefinition {
                is_protected: Some(true),
                definer: Some("arn:aws:iam::123456789012:role/definer".into()),
                representations: vec![ViewRepresentation {
                    dialect: Some("ATHENA".into()),
                    dialect_version: Some("3".into()),
                    view_original_text: Some("SELECT 1".into()),
                    view_expanded_text: Some("SELECT 1".into()),
                    validation_connection: Some("athena-conn".into()),
                }],
                sub_objects: vec!["arn:aws:glue:eu-west-3:123456789012:table/sales/base".into()],
            }),
            meta: TableMeta {
                catalog_id: Some("123456789012".into()),
                create_time: Some(1_760_000_000_000),
                update_time: Some(1_760_000_300_000),
                created_by: Some("arn:aws:iam::123456789012:role/crawler".into()),
                version_id: Some("4".into()),
                is_registered_with_lake_formation: true,
                is_multi_dialect_view: Some(false),
                is_materialized_view: Some(false),
            },
        };
        let partition = Partition {
            database_name: "sales".into(),
            table_name: "orders".into(),
            values: vec!["2026-01-01".into(), "île-de-france".into()],
            last_access_time: Some(1_760_000_350_000),
            storage_descriptor: Some(StorageDescriptor {
                location: Some("s3://data/sales/orders/dt=2026-01-01/".into()),
                // What Glue returns for an unbucketed partition: a negative integer on the wire.
                number_of_buckets: -1,
                ..sd
            }),
            parameters: params(&[("recordCount", "1000")]),
            last_analyzed_time: Some(1_760_000_360_000),
            meta: PartitionMeta { catalog_id: Some("123456789012".into()), creation_time: Some(1_760_000_400_000) },
        };
        let snapshot = Cause { kind: CauseKind::Snapshot, event_id: None };
        let reconcile = Cause { kind: CauseKind::Reconcile, event_id: None };
        let event = Cause { kind: CauseKind::Event, event_id: Some("0f3c5d2e-0000-4000-8000-000000000007".into()) };
        let trail =
            Cause { kind: CauseKind::Cloudtrail, event_id: Some("6a1b2c3d-0000-4000-8000-000000000009".into()) };
        let mut partition_upsert =
            ChangeRecord::upsert(CatalogObject::Partition(partition.clone()), &origin, event, 1_760_000_500_000);
        partition_upsert.changed_at = Some(1_760_000_499_000);
        let mut partition_delete = ChangeRecord::delete(
            ObjectKey::of("123456789012", &CatalogObject::Partition(partition)),
            &origin,
            trail,
            1_760_000_600_000,
        );
        partition_delete.changed_at = Some(1_760_000_599_000);
        vec![
            ChangeRecord::upsert(CatalogObject::Database(db), &origin, snapshot, 1_760_000_000_001),
            ChangeRecord::upsert(CatalogObject::Table(table), &origin, reconcile, 1_760_000_000_002),
            partition_upsert,
            partition_delete,
        ]
    }

    /// The records pinned by the Lake Formation golden files: every kind, every resource type
    /// and every field set at least once, and a delete (a revoke).
    fn golden_lf_records() -> Vec<ChangeRecord> {
        use crate::model::lakeformation::*;
        let origin =
            Origin { account: "123456789012".into(), region: "us-east-1".into(), catalog_id: "123456789012".into() };
        let cause = Cause { kind: CauseKind::Cloudtrail, event_id: Some("ct-1".into()) };
        let pair = |k: &str, v: &[&str]| LfTagPair::new(k, v.iter().map(|s| s.to_string()).collect());
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let resources = vec![
            LfResource::Catalog,
            LfResource::Database { database: "sales".into() },
            LfResource::Table { database: "sales".into(), table: "orders".into() },
            LfResource::TableWildcard { database: "sales".into() },
            LfResource::TableWithColumns {
                database: "sales".into(),
                table: "orders".into(),
                columns: ColumnSelection::Names { names: names(&["amount", "id"]) },
            },
            LfResource::TableWithColumns {
                database: "sales".into(),
                table: "orders".into(),
                columns: ColumnSelection::Wildcard { excluded: names(&["ssn"]) },
            },
            LfResource::DataLocation { arn: "arn:aws:s3:::lake/sales".into() },
            LfResource::DataCellsFilter { database: "sales".into(), table: "orders".into(), name: "eu_only".into() },
            LfResource::LfTag { key: "domain".into(), values: names(&["finance", "sales"]) },
            LfResource::LfTagPolicy { resource_type: "TABLE".into(), expression: vec![pair("domain", &["sales"])] },
            LfResource::LfTagExpression { resource_type: Some("DATABASE".into()), name: "sales_data".into() },
        ];
        let mut out: Vec<ChangeRecord> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| {
                let p = Permission::new(
                    "arn:aws:iam::123456789012:role/analyst".into(),
                    resource,
                    names(&["SELECT", "DESCRIBE"]),
                    if i == 0 { names(&["DESCRIBE"]) } else { Vec::new() },
                    (i == 2).then(|| "context.sourceIp = '10.0.0.0/8'".to_string()),
                );
                ChangeRecord::upsert(
                    CatalogObject::LakeFormation { lf: LfObject::Permission(p) },
                    &origin,
                    cause.clone(),
                    1_770_000_000_000 + i as i64,
                )
            })
            .collect();
        let objects = vec![
            LfObject::LfTag(LfTag { key: "domain".into(), values: names(&["finance", "sales"]) }),
            LfObject::ResourceTags(ResourceTags {
                database: "sales".into(),
                table: Some("orders".into()),
                tags: vec![pair("domain", &["sales"])],
                columns: [("ssn".to_string(), vec![pair("pii", &["true"])])].into_iter().collect(),
            }),
            LfObject::LfTagExpression(LfTagExpression {
                name: "sales_data".into(),
                description: Some("sales tables".into()),
                expression: vec![pair("domain", &["sales"])],
            }),
            LfObject::DataCellsFilter(DataCellsFilter {
                database: "sales".into(),
                table: "orders".into(),
                name: "eu_only".into(),
                row_filter: Some("region = 'eu'".into()),
                columns: ColumnSelection::Wildcard { excluded: names(&["ssn"]) },
                version: Some("3".into()),
            }),
            LfObject::DataLakeSettings(DataLakeSettings {
                admins: names(&["arn:aws:iam::123456789012:role/admin"]),
                read_only_admins: names(&["arn:aws:iam::123456789012:role/auditor"]),
                create_database_default_permissions: vec![PrincipalPermissions {
                    principal: Some("IAM_ALLOWED_PRINCIPALS".into()),
                    permissions: names(&["ALL"]),
                }],
                create_table_default_permissions: vec![],
                trusted_resource_owners: names(&["210987654321"]),
                allow_external_data_filtering: true,
                external_data_filtering_allow_list: names(&["210987654321"]),
                authorized_session_tag_value_list: names(&["emr"]),
                allow_full_table_external_data_access: true,
                parameters: params(&[("CROSS_ACCOUNT_VERSION", "4")]),
            }),
            LfObject::DataLocation(DataLocation {
                arn: "arn:aws:s3:::lake/sales".into(),
                role_arn: Some("arn:aws:iam::123456789012:role/lf-reader".into()),
                with_federation: true,
                hybrid_access_enabled: true,
            }),
            LfObject::OptIn(OptIn {
                principal: "arn:aws:iam::123456789012:role/analyst".into(),
                resource: LfResource::Table { database: "sales".into(), table: "orders".into() },
                condition: Some("true".into()),
            }),
        ];
        for (i, lf) in objects.into_iter().enumerate() {
            let state = CatalogObject::LakeFormation { lf };
            out.push(ChangeRecord::upsert(state, &origin, cause.clone(), 1_770_000_001_000 + i as i64));
        }
        let revoked = LfKey::Permission {
            principal: "arn:aws:iam::123456789012:role/former".into(),
            resource: LfResource::Database { database: "sales".into() },
        };
        out.push(ChangeRecord::delete(
            ObjectKey::LakeFormation { catalog: "123456789012".into(), lf: revoked },
            &origin,
            cause,
            1_770_000_002_000,
        ));
        out
    }

    fn golden_lf_json_text() -> String {
        serde_json::to_string_pretty(&golden_lf_records()).expect("json") + "\n"
    }

    fn golden_json_text() -> String {
        serde_json::to_string_pretty(&golden_records()).expect("json") + "\n"
    }

    /// Writes the golden files that do not exist yet, only with `LAKELOG_BLESS=1` (once per
    /// format version). A released version's files are never rewritten: it is a contract.
    #[test]
    fn bless_golden_files() {
        if std::env::var("LAKELOG_BLESS").as_deref() != Ok("1") {
            return;
        }
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).expect("dir");
        let records = golden_records();
        let files = [
            (GOLDEN_BIN, encode_as(&records, FrameVersion::V1).expect("encode v1")),
            (GOLDEN_JSON, golden_json_text().into_bytes()),
            (GOLDEN_V2_BIN, encode_as(&records, FrameVersion::V2).expect("encode v2")),
            (GOLDEN_LF_BIN, encode(&golden_lf_records()).expect("encode lake formation")),
            (GOLDEN_LF_JSON, golden_lf_json_text().into_bytes()),
        ];
        for (path, bytes) in files {
            if !std::path::Path::new(path).exists() {
                std::fs::write(path, bytes).expect("write golden file");
            }
        }
    }

    fn golden_bytes() -> Vec<u8> {
        std::fs::read(GOLDEN_BIN).expect("golden file (bless once with LAKELOG_BLESS=1)")
    }

    fn golden_v2_bytes() -> Vec<u8> {
        std::fs::read(GOLDEN_V2_BIN).expect("golden v2 file (bless once with LAKELOG_BLESS=1)")
    }

    #[test]
    fn golden_v1_decodes() {
        let bytes = golden_bytes();
        // Header, then a MessagePack fixarray of the 4 records.
        assert_eq!(&bytes[..7], b"LKLG\x01\x00\x94");
        let records = decode(&bytes).expect("decodes");
        assert_eq!(records.len(), 4);
        assert_eq!(records, golden_records());
    }

    #[test]
    fn golden_v1_encodes_identically() {
        let bytes = golden_bytes();
        let records = golden_records();
        assert_same_bytes(
            &encode_as(&records, FrameVersion::V1).expect("encode"),
            &bytes,
            "encode: the v1 wire format changed",
        );
        let mut builder = FrameBuilder::new(FrameVersion::V1);
        for r in &records {
            builder.push_encoded(&FrameBuilder::encode_record(r).expect("record"));
        }
        assert_same_bytes(&builder.finish(), &bytes, "FrameBuilder: the v1 wire format changed");
    }

    /// Compares frames, reporting where they first differ rather than dumping kilobytes.
    fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
        if actual != expected {
            let at = actual.iter().zip(expected).position(|(a, e)| a != e).unwrap_or(actual.len().min(expected.len()));
            let window = |b: &[u8]| format!("{:02x?}", &b[at.saturating_sub(8)..(at + 8).min(b.len())]);
            panic!(
                "{what}: {} bytes vs {} expected, first difference at offset {at}: {} vs {}",
                actual.len(),
                expected.len(),
                window(actual),
                window(expected)
            );
        }
    }

    #[test]
    fn golden_json_matches() {
        let text = std::fs::read_to_string(GOLDEN_JSON).expect("golden json");
        let records: Vec<ChangeRecord> = serde_json::from_str(&text).expect("json");
        assert_eq!(records, golden_records());
        assert_eq!(text, golden_json_text(), "the JSON rendering of the golden records changed");
    }

    #[test]
    fn golden_content_hashes_ignore_metadata() {
        for r in golden_records() {
            match &r.state {
                Some(state) => {
                    assert_eq!(r.content_hash, content_hash(&state.writable()), "{}", r.key);
                    assert_ne!(r.content_hash, 0, "{}", r.key);
                }
                None => assert_eq!(r.content_hash, 0, "a delete has no content"),
            }
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(matches!(decode(b""), Err(CodecError::Truncated { len: 0 })));
        assert!(matches!(decode(b"LKL"), Err(CodecError::Truncated { len: 3 })));
        assert!(matches!(decode(b"LKLG\x01"), Err(CodecError::Truncated { len: 5 })));
        assert!(matches!(decode(b"JSON{}"), Err(CodecError::BadMagic { found }) if found == b"JSON"));
        assert!(matches!(decode(b"[{\"key\":1}]"), Err(CodecError::BadMagic { .. })));
        assert!(matches!(decode(b"LKLG\x03\x00\x90"), Err(CodecError::UnsupportedVersion { found: 3 })));
        assert!(matches!(decode(b"LKLG\x00\x00\x90"), Err(CodecError::UnsupportedVersion { found: 0 })));
        assert!(matches!(decode(b"LKLG\x01\x01\x90"), Err(CodecError::UnsupportedFlags { found: 1 })));
        assert!(matches!(decode(b"LKLG\x01\x80\x90"), Err(CodecError::UnsupportedFlags { found: 0x80 })));
        // A header with no body, a reserved MessagePack byte, a map where the array belongs.
        assert!(matches!(decode(b"LKLG\x01\x00"), Err(CodecError::Decode(_))));
        assert!(matches!(decode(b"LKLG\x01\x00\x91\xc1"), Err(CodecError::Decode(_))));
        assert!(matches!(decode(b"LKLG\x01\x00\x80"), Err(CodecError::Decode(_))));
        assert_eq!(decode(b"LKLG\x01\x00\x90").expect("empty frame"), Vec::new());
        // The messages say what to do.
        assert!(CodecError::UnsupportedVersion { found: 2 }.to_string().contains("upgrade lakelog"));
        assert!(CodecError::BadMagic { found: b"JSON".to_vec() }.to_string().contains("another producer"));
    }

    #[test]
    fn every_truncation_of_the_golden_frame_is_an_error() {
        let bytes = golden_bytes();
        for len in 0..bytes.len() {
            match decode(&bytes[..len]) {
                Err(CodecError::Truncated { len: l }) => {
                    assert!(len < 6 && l == len, "cut at {len}")
                }
                Err(CodecError::Decode(_)) => assert!(len >= 6, "cut at {len}"),
                other => panic!("cut at {len}: {other:?}"),
            }
        }
    }

    /// Bytes after the record array are ignored today: two frames concatenated (a buggy
    /// aggregator, a corrupted Kinesis record) decode as the first frame alone, and the second
    /// frame's records are lost without an error. Needs `decode` to check that the body was
    /// consumed entirely (rmp-serde's `Deserializer::position` after deserializing).
    #[test]
    fn trailing_bytes_are_an_error() {
        let mut twice = golden_bytes();
        twice.extend_from_slice(&golden_bytes());
        assert!(decode(&twice).is_err(), "the second frame's records would be lost silently");
        assert!(decode(b"LKLG\x01\x00\x90garbage").is_err());
    }

    /// Frames written today: one bit flipped anywhere (header, checksum, body) is an error, never
    /// records. Without a checksum, a flip inside a string decodes into a different catalog.
    #[test]
    fn every_single_bit_flip_of_a_frame_is_an_error() {
        let frame = encode(&golden_records()).expect("encode");
        let mut flipped = frame.clone();
        for at in 0..frame.len() {
            for bit in 0..8 {
                flipped[at] ^= 1 << bit;
                if let Ok(records) = decode(&flipped) {
                    panic!("bit {bit} of byte {at} flipped decodes into {} records", records.len());
                }
                flipped[at] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn golden_v2_decodes() {
        let bytes = golden_v2_bytes();
        assert_eq!(&bytes[..6], b"LKLG\x02\x00");
        let body_len = u32::from_le_bytes(bytes[6..10].try_into().expect("4 bytes")) as usize;
        assert_eq!(body_len, bytes.len() - 18);
        // Then a MessagePack fixarray of the 4 records.
        assert_eq!(bytes[18], 0x94);
        assert_eq!(decode(&bytes).expect("decodes"), golden_records());
    }

    #[test]
    fn golden_v2_encodes_identically() {
        let bytes = golden_v2_bytes();
        let records = golden_records();
        assert_same_bytes(&encode(&records).expect("encode"), &bytes, "encode: the v2 wire format changed");
        let mut builder = FrameBuilder::default();
        for r in &records {
            builder.push_encoded(&FrameBuilder::encode_record(r).expect("record"));
        }
        assert_same_bytes(&builder.finish(), &bytes, "FrameBuilder: the v2 wire format changed");
    }

    #[test]
    fn golden_lake_formation_frame_decodes_and_encodes_identically() {
        let bytes = std::fs::read(GOLDEN_LF_BIN).expect("golden lake formation file (bless once with LAKELOG_BLESS=1)");
        let records = golden_lf_records();
        assert_eq!(decode(&bytes).expect("decodes"), records);
        assert_same_bytes(&encode(&records).expect("encode"), &bytes, "the Lake Formation wire format changed");
        let text = std::fs::read_to_string(GOLDEN_LF_JSON).expect("golden lake formation json");
        let parsed: Vec<ChangeRecord> = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed, records);
        assert_eq!(text, golden_lf_json_text(), "the JSON rendering of the Lake Formation records changed");
        // Every kind is pinned, and each key is the key of its state.
        let kinds: std::collections::BTreeSet<_> = records.iter().map(|r| r.key.kind()).collect();
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        for r in records.iter().filter(|r| r.state.is_some()) {
            let state = r.state.as_ref().expect("state");
            assert_eq!(r.key, ObjectKey::of("123456789012", state));
        }
    }

    /// Glue records and Lake Formation records in one frame, as a batch of one table's key
    /// carries them: a release reading both kinds reads old frames and new ones alike.
    #[test]
    fn glue_and_lake_formation_records_share_a_frame() {
        let mut records = golden_records();
        records.extend(golden_lf_records());
        assert_eq!(decode(&encode(&records).expect("encode")).expect("decode"), records);
    }

    /// v2 changed the header only: its body is v1's, byte for byte.
    #[test]
    fn golden_v2_body_is_the_v1_body() {
        assert_same_bytes(&golden_v2_bytes()[18..], &golden_bytes()[6..], "v2 body vs v1 body");
    }

    /// The checksum is XXH3-64 of every byte but its own, checked here against the Python
    /// binding of the reference implementation: `xxh3_64_intdigest(frame[:10] + frame[18:])`.
    #[test]
    fn golden_v2_checksum_is_xxh3_of_header_and_body() {
        let bytes = golden_v2_bytes();
        let stored = u64::from_le_bytes(bytes[10..18].try_into().expect("8 bytes"));
        let mut covered = bytes[..10].to_vec();
        covered.extend_from_slice(&bytes[18..]);
        assert_eq!(stored, xxhash_rust::xxh3::xxh3_64(&covered));
        assert_eq!(stored, GOLDEN_V2_CHECKSUM);
    }

    #[test]
    fn every_truncation_of_the_golden_v2_frame_is_an_error() {
        let bytes = golden_v2_bytes();
        for len in 0..bytes.len() {
            match decode(&bytes[..len]) {
                Err(CodecError::Truncated { len: l }) => assert!(len < 18 && l == len, "cut at {len}"),
                Err(CodecError::Incomplete { body, declared }) => {
                    assert!(len >= 18 && body == len - 18 && declared == bytes.len() - 18, "cut at {len}")
                }
                other => panic!("cut at {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn v2_frames_glued_together_are_an_error() {
        let mut twice = golden_v2_bytes();
        twice.extend_from_slice(&golden_v2_bytes());
        assert!(matches!(decode(&twice), Err(CodecError::TrailingBytes { .. })));
        let mut tail = encode(&[]).expect("empty frame");
        tail.push(0xc0);
        assert!(matches!(decode(&tail), Err(CodecError::TrailingBytes { extra: 1 })));
    }

    #[test]
    fn a_damaged_v2_frame_says_so_and_what_to_do() {
        let mut bytes = golden_v2_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        let err = decode(&bytes).expect_err("damaged");
        assert!(matches!(err, CodecError::ChecksumMismatch { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("checksum") && text.contains("lakelog sync"), "{text}");
        // Damaged flags are damage, not a newer writer: the checksum is checked first.
        let mut bytes = golden_v2_bytes();
        bytes[5] = 0x01;
        assert!(matches!(decode(&bytes), Err(CodecError::ChecksumMismatch { .. })));
        // Flags a newer writer really set (the checksum covers them) ask for an upgrade.
        assert!(matches!(decode(&v2_frame(0x01, b"\x90")), Err(CodecError::UnsupportedFlags { found: 1 })));
        assert_eq!(decode(&v2_frame(0, b"\x90")).expect("empty frame"), Vec::new());
        assert_eq!(decode(&v2_frame(0, b"\x90")).expect("same"), decode(&encode(&[]).expect("e")).expect("d"));
    }

    /// A one-record frame is at most the record plus [`MAX_FRAME_OVERHEAD`], which is what the
    /// producer reserves when it checks a record against its frame limit.
    #[test]
    fn frame_overhead_bounds_a_one_record_frame() {
        let record = FrameBuilder::encode_record(&golden_records()[1]).expect("record");
        let mut builder = FrameBuilder::default();
        builder.push_encoded(&record);
        assert!(builder.frame_len() <= record.len() + MAX_FRAME_OVERHEAD);
        assert!(builder.finish().len() <= record.len() + MAX_FRAME_OVERHEAD);
    }

    /// A v2 frame around `body` with a valid checksum, as a (buggy or hostile) writer would make.
    fn v2_frame(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut f = b"LKLG\x02".to_vec();
        f.push(flags);
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let mut covered = f.clone();
        covered.extend_from_slice(body);
        f.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&covered).to_le_bytes());
        f.extend_from_slice(body);
        f
    }

    /// The depth limit still holds behind a valid checksum, on a worker's 2 MiB stack.
    #[test]
    fn deeply_nested_v2_frame_with_a_valid_checksum_is_an_error_on_a_worker_stack() {
        let body = nested_frame(2_000)[6..].to_vec();
        let result = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || decode(&v2_frame(0, &body)).map(|r| r.len()).map_err(|e| e.to_string()))
            .expect("thread")
            .join()
            .expect("no panic");
        assert!(result.as_ref().is_err_and(|e| e.contains("depth limit")), "{result:?}");
    }

    /// A frame whose first record nests `depth` arrays inside its (internally tagged) key.
    fn nested_frame(depth: usize) -> Vec<u8> {
        let mut f = b"LKLG\x01\x00\x91\x81\xa3key\x81\xa1x".to_vec();
        f.extend(std::iter::repeat_n(0x91, depth));
        f.push(0xc0);
        f
    }

    #[test]
    fn moderately_nested_garbage_is_an_error() {
        for depth in [1, 10, 100] {
            assert!(matches!(decode(&nested_frame(depth)), Err(CodecError::Decode(_))), "depth {depth}");
        }
    }

    /// rmp-serde stops at 1,024 levels of nesting: enough stack, and such a frame is an error.
    #[test]
    fn deeply_nested_garbage_is_an_error_given_stack() {
        let result = std::thread::Builder::new()
            .stack_size(64 * 1024 * 1024)
            .spawn(|| decode(&nested_frame(5_000)).map(|r| r.len()).map_err(|e| e.to_string()))
            .expect("thread")
            .join()
            .expect("no panic");
        assert!(result.as_ref().is_err_and(|e| e.contains("depth limit")), "{result:?}");
    }

    /// The same on a 2 MiB stack (a tokio worker's, where the consumer decodes). In debug builds
    /// serde's buffering of the internally tagged `ObjectKey`/`CatalogObject` costs about 3 KB of
    /// stack a level, so a 2 KB frame of nested arrays overflows the stack before rmp-serde's
    /// depth limit (1,024) is reached: the process aborts instead of dead-lettering the frame.
    /// Release builds use far less stack and return the error. Needs `decode` to lower the depth
    /// limit (`Deserializer::set_max_depth`; the model nests fewer than 16 levels).
    #[test]
    fn deeply_nested_garbage_is_an_error_on_a_worker_stack() {
        let result = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| decode(&nested_frame(2_000)).map(|r| r.len()).map_err(|e| e.to_string()))
            .expect("thread")
            .join()
            .expect("no panic");
        assert!(result.is_err());
    }

    // --- Property tests -------------------------------------------------------------------------

    /// Any text: printable Unicode, any `char` at all (controls included), or a long string that
    /// needs MessagePack's str16.
    fn text() -> BoxedStrategy<String> {
        prop_oneof![
            6 => "\\PC{0,12}",
            3 => proptest::collection::vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect::<String>()),
            1 => "[a-z0-9/_.=-]{250,300}",
        ]
        .boxed()
    }

    fn opt_text() -> BoxedStrategy<Option<String>> {
        proptest::option::of(text()).boxed()
    }

    fn opt_time() -> BoxedStrategy<Option<i64>> {
        proptest::option::of(any::<i64>()).boxed()
    }

    fn texts() -> BoxedStrategy<Vec<String>> {
        proptest::collection::vec(text(), 0..3).boxed()
    }

    fn some_params() -> BoxedStrategy<Params> {
        proptest::collection::btree_map(text(), text(), 0..3).boxed()
    }

    fn column() -> BoxedStrategy<Column> {
        (text(), opt_text(), opt_text(), some_params())
            .prop_map(|(name, type_, comment, parameters)| Column { name, type_, comment, parameters })
            .boxed()
    }

    fn columns() -> BoxedStrategy<Vec<Column>> {
        proptest::collection::vec(column(), 0..3).boxed()
    }

    fn storage_descriptor() -> BoxedStrategy<StorageDescriptor> {
        let serde_info =
            (opt_text(), opt_text(), some_params()).prop_map(|(name, serialization_library, parameters)| SerDeInfo {
                name,
                serialization_library,
                parameters,
            });
        let order = (text(), any::<i32>()).prop_map(|(column, sort_order)| Order { column, sort_order });
        let skewed = (texts(), texts(), some_params()).prop_map(|(names, values, maps)| SkewedInfo {
            skewed_column_names: names,
            skewed_column_values: values,
            skewed_column_value_location_maps: maps,
        });
        let schema_id = (opt_text(), opt_text(), opt_text())
            .prop_map(|(schema_arn, schema_name, registry_name)| SchemaId { schema_arn, schema_name, registry_name });
        let schema_reference = (proptest::option::of(schema_id), opt_text(), opt_time()).prop_map(
            |(schema_id, schema_version_id, schema_version_number)| SchemaReference {
                schema_id,
                schema_version_id,
                schema_version_number,
            },
        );
        (
            (columns(), opt_text(), texts(), opt_text(), opt_text(), any::<bool>(), any::<i32>()),
            (
                proptest::option::of(serde_info),
                texts(),
                proptest::collection::vec(order, 0..3),
                some_params(),
                proptest::option::of(skewed),
                any::<bool>(),
                proptest::option::of(schema_reference),
            ),
        )
            .prop_map(
                |(
                    (
                        columns,
                        location,
                        additional_locations,
                        input_format,
                        output_format,
                        compressed,
                        number_of_buckets,
                    ),
                    (
                        serde_info,
                        bucket_columns,
                        sort_columns,
                        parameters,
                        skewed_info,
                        stored_as_sub_directories,
                        schema_reference,
                    ),
                )| StorageDescriptor {
                    columns,
                    location,
                    additional_locations,
                    input_format,
                    output_format,
                    compressed,
                    number_of_buckets,
                    serde_info,
                    bucket_columns,
                    sort_columns,
                    parameters,
                    skewed_info,
                    stored_as_sub_directories,
                    schema_reference,
                },
            )
            .boxed()
    }

    fn database() -> BoxedStrategy<Database> {
        let permissions =
            (opt_text(), texts()).prop_map(|(principal, permissions)| PrincipalPermissions { principal, permissions });
        let target = (opt_text(), opt_text(), opt_text())
            .prop_map(|(catalog_id, database_name, region)| DatabaseIdentifier { catalog_id, database_name, region });
        let federated =
            (opt_text(), opt_text(), opt_text()).prop_map(|(identifier, connection_name, connection_type)| {
                FederatedDatabase { identifier, connection_name, connection_type }
            });
        let meta =
            (opt_text(), opt_time()).prop_map(|(catalog_id, create_time)| DatabaseMeta { catalog_id, create_time });
        (
            text(),
            opt_text(),
            opt_text(),
            some_params(),
            proptest::collection::vec(permissions, 0..2),
            proptest::option::of(target),
            proptest::option::of(federated),
            meta,
        )
            .prop_map(
                |(
                    name,
                    description,
                    location_uri,
                    parameters,
                    create_table_default_permissions,
                    target_database,
                    federated_database,
                    meta,
                )| Database {
                    name,
                    description,
                    location_uri,
                    parameters,
                    create_table_default_permissions,
                    target_database,
                    federated_database,
                    meta,
                },
            )
            .boxed()
    }

    fn table_meta() -> BoxedStrategy<TableMeta> {
        (
            opt_text(),
            opt_time(),
            opt_time(),
            opt_text(),
            opt_text(),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(
                |(
                    catalog_id,
                    create_time,
                    update_time,
                    created_by,
                    version_id,
                    is_registered_with_lake_formation,
                    is_multi_dialect_view,
                    is_materialized_view,
                )| {
                    TableMeta {
                        catalog_id,
                        create_time,
                        update_time,
                        created_by,
                        version_id,
                        is_registered_with_lake_formation,
                        is_multi_dialect_view,
                        is_materialized_view,
                    }
                },
            )
            .boxed()
    }

    fn table() -> BoxedStrategy<Table> {
        let target =
            (opt_text(), opt_text(), opt_text(), opt_text()).prop_map(|(catalog_id, database_name, name, region)| {
                TableIdentifier { catalog_id, database_name, name, region }
            });
        let federated = (opt_text(), opt_text(), opt_text(), opt_text()).prop_map(
            |(identifier, database_identifier, connection_name, connection_type)| FederatedTable {
                identifier,
                database_identifier,
                connection_name,
                connection_type,
            },
        );
        let representation = (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()).prop_map(
            |(dialect, dialect_version, view_original_text, view_expanded_text, validation_connection)| {
                ViewRepresentation {
                    dialect,
                    dialect_version,
                    view_original_text,
                    view_expanded_text,
                    validation_connection,
                }
            },
        );
        let view =
            (proptest::option::of(any::<bool>()), opt_text(), proptest::collection::vec(representation, 0..2), texts())
                .prop_map(|(is_protected, definer, representations, sub_objects)| ViewDefinition {
                    is_protected,
                    definer,
                    representations,
                    sub_objects,
                });
        (
            (
                text(),
                text(),
                opt_text(),
                opt_text(),
                opt_time(),
                opt_time(),
                any::<i32>(),
                proptest::option::of(storage_descriptor()),
            ),
            (
                columns(),
                opt_text(),
                opt_text(),
                opt_text(),
                some_params(),
                proptest::option::of(target),
                proptest::option::of(federated),
                proptest::option::of(view),
                table_meta(),
            ),
        )
            .prop_map(
                |(
                    (
                        database_name,
                        name,
                        description,
                        owner,
                        last_access_time,
                        last_analyzed_time,
                        retention,
                        storage_descriptor,
                    ),
                    (
                        partition_keys,
                        view_original_text,
                        view_expanded_text,
                        table_type,
                        parameters,
                        target_table,
                        federated_table,
                        view_definition,
                        meta,
                    ),
                )| Table {
                    database_name,
                    name,
                    description,
                    owner,
                    last_access_time,
                    last_analyzed_time,
                    retention,
                    storage_descriptor,
                    partition_keys,
                    view_original_text,
                    view_expanded_text,
                    table_type,
                    parameters,
                    target_table,
                    federated_table,
                    view_definition,
                    meta,
                },
            )
            .boxed()
    }

    fn partition() -> BoxedStrategy<Partition> {
        let meta = (opt_text(), opt_time())
            .prop_map(|(catalog_id, creation_time)| PartitionMeta { catalog_id, creation_time });
        (
            text(),
            text(),
            proptest::collection::vec(text(), 0..4),
            opt_time(),
            proptest::option::of(storage_descriptor()),
            some_params(),
            opt_time(),
            meta,
        )
            .prop_map(
                |(
                    database_name,
                    table_name,
                    values,
                    last_access_time,
                    storage_descriptor,
                    parameters,
                    last_analyzed_time,
                    meta,
                )| Partition {
                    database_name,
                    table_name,
                    values,
                    last_access_time,
                    storage_descriptor,
                    parameters,
                    last_analyzed_time,
                    meta,
                },
            )
            .boxed()
    }

    fn object() -> BoxedStrategy<CatalogObject> {
        prop_oneof![
            database().prop_map(CatalogObject::Database),
            table().prop_map(CatalogObject::Table),
            partition().prop_map(CatalogObject::Partition),
        ]
        .boxed()
    }

    fn cause() -> BoxedStrategy<Cause> {
        let kind = prop_oneof![
            Just(CauseKind::Event),
            Just(CauseKind::Cloudtrail),
            Just(CauseKind::Reconcile),
            Just(CauseKind::Snapshot)
        ];
        (kind, opt_text()).prop_map(|(kind, event_id)| Cause { kind, event_id }).boxed()
    }

    fn record() -> BoxedStrategy<ChangeRecord> {
        let origin =
            (text(), text(), text()).prop_map(|(account, region, catalog_id)| Origin { account, region, catalog_id });
        (object(), any::<bool>(), origin, cause(), any::<i64>(), opt_time())
            .prop_map(|(state, delete, origin, cause, captured_at, changed_at)| {
                let mut r = ChangeRecord::upsert(state, &origin, cause.clone(), captured_at);
                if delete {
                    r = ChangeRecord::delete(r.key, &origin, cause, captured_at);
                }
                r.changed_at = changed_at;
                r
            })
            .boxed()
    }

    /// Clears or replaces every read-only field of `obj` with values derived from `seed`.
    fn with_other_meta(obj: &CatalogObject, seed: i64, text: &str) -> CatalogObject {
        let mut out = obj.clone();
        match &mut out {
            CatalogObject::Database(d) => {
                d.meta = DatabaseMeta { catalog_id: Some(text.into()), create_time: Some(seed) }
            }
            CatalogObject::Table(t) => {
                t.meta = TableMeta {
                    catalog_id: Some(text.into()),
                    create_time: Some(seed),
                    update_time: Some(seed.wrapping_add(1)),
                    created_by: Some(text.into()),
                    version_id: Some(seed.to_string()),
                    is_registered_with_lake_formation: !t.meta.is_registered_with_lake_formation,
                    is_multi_dialect_view: Some(seed % 2 == 0),
                    is_materialized_view: Some(seed % 3 == 0),
                }
            }
            CatalogObject::Partition(p) => {
                p.meta = PartitionMeta { catalog_id: Some(text.into()), creation_time: Some(seed) }
            }
            CatalogObject::LakeFormation { .. } => {}
        }
        out
    }

    /// Changes one writable field of `obj` (which one depends on `which`), so it always differs.
    fn with_writable_change(obj: &CatalogObject, which: u8) -> CatalogObject {
        fn bump(s: &mut Option<String>) {
            *s = Some(s.take().map_or_else(String::new, |v| v + "x"));
        }
        let mut out = obj.clone();
        match (&mut out, which % 4) {
            (CatalogObject::Database(d), 0) => d.name.push('x'),
            (CatalogObject::Database(d), 1) => bump(&mut d.description),
            (CatalogObject::Database(d), 2) => bump(&mut d.location_uri),
            (CatalogObject::Database(d), _) => {
                d.parameters.insert("lakelog.test-key-not-generated".into(), "x".into());
            }
            (CatalogObject::Table(t), 0) => t.name.push('x'),
            (CatalogObject::Table(t), 1) => t.retention = t.retention.wrapping_add(1),
            (CatalogObject::Table(t), 2) => {
                bump(&mut t.storage_descriptor.get_or_insert_with(Default::default).location)
            }
            (CatalogObject::Table(t), _) => t.partition_keys.push(Column { name: "k".into(), ..Default::default() }),
            (CatalogObject::Partition(p), 0) => p.values.push("x".into()),
            (CatalogObject::Partition(p), 1) => {
                p.last_access_time = Some(p.last_access_time.map_or(0, |t| t.wrapping_add(1)))
            }
            (CatalogObject::Partition(p), 2) => {
                let sd = p.storage_descriptor.get_or_insert_with(Default::default);
                sd.compressed = !sd.compressed;
            }
            (CatalogObject::Partition(p), _) => {
                p.parameters.insert("lakelog.test-key-not-generated".into(), "x".into());
            }
            (CatalogObject::LakeFormation { .. }, _) => unreachable!("object() generates Glue objects only"),
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn frames_round_trip(records in proptest::collection::vec(record(), 0..5)) {
            let bytes = encode(&records).expect("encode");
            prop_assert_eq!(&decode(&bytes).expect("decode"), &records);
            let mut builder = FrameBuilder::default();
            for r in &records {
                let one = FrameBuilder::encode_record(r).expect("record");
                prop_assert_eq!(encoded_len(r).expect("len"), one.len());
                builder.push_encoded(&one);
            }
            prop_assert_eq!(builder.count() as usize, records.len());
            // frame_len is an upper bound (it reserves the largest array header).
            let bound = builder.frame_len();
            let built = builder.finish();
            prop_assert!(built.len() <= bound && bound <= built.len() + 4);
            prop_assert_eq!(built, bytes);
        }

        #[test]
        fn json_round_trips(record in record()) {
            let text = serde_json::to_string(&record).expect("json");
            prop_assert_eq!(serde_json::from_str::<ChangeRecord>(&text).expect("parse"), record);
        }

        #[test]
        fn content_hash_ignores_metadata_and_sees_content(obj in object(), seed in any::<i64>(), meta_text in text(), which in any::<u8>()) {
            let hash = content_hash(&obj);
            prop_assert_eq!(hash, content_hash(&obj.writable()));
            prop_assert_eq!(hash, content_hash(&with_other_meta(&obj, seed, &meta_text)));
            let origin = Origin::default();
            let upsert = ChangeRecord::upsert(with_other_meta(&obj, seed, &meta_text), &origin, Cause { kind: CauseKind::Snapshot, event_id: None }, 0);
            prop_assert_eq!(upsert.content_hash, hash);
            prop_assert_ne!(hash, content_hash(&with_writable_change(&obj, which)));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut framed = b"LKLG\x01\x00".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
            let _ = decode(&bytes);
            let _ = decode(&v2_frame(0, &bytes));
        }

        #[test]
        fn a_single_bit_flip_in_any_frame_is_an_error(records in proptest::collection::vec(record(), 0..4), at in any::<prop::sample::Index>(), bit in 0..8u8) {
            let mut bytes = encode(&records).expect("encode");
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(decode(&bytes).is_err(), "bit {} of byte {} of {}", bit, i, bytes.len());
        }

        #[test]
        fn corrupted_golden_v2_frame_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let mut bytes = golden_v2_bytes();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = decode(&bytes);
        }

        #[test]
        fn corrupted_golden_frame_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let mut bytes = golden_bytes();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = decode(&bytes);
        }
    }
}
