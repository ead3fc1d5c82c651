//! End-to-end tests: lakelog against local AWS emulators over HTTP (endpoint overrides), the same
//! code path as production. Each test starts its own emulator pair, so tests run in parallel.

mod archive;
mod capture;
mod compaction;
mod dependency;
mod diffmem;
mod emulator;
mod endpoints;
mod errors;
mod faults;
mod infra;
mod keys;
mod lakeformation;
mod lease;
mod leaseops;
mod ops;
mod reshard;
mod restart;
mod rewrite;
mod run;
mod shutdown;
mod state;
mod sync;
mod xacct;

use std::collections::BTreeMap;
use std::sync::Arc;

use emulator::Emulator;
use lakelog::aws::client::Endpoint;
use lakelog::aws::glue::GlueCatalog;
use lakelog::backend::catalog::Catalog;
use lakelog::catalog::reader::CatalogReader;
use lakelog::config::PipelineConfig;
use lakelog::model::{Database, Partition, Table};
use lakelog::simulate::catalog::{generate, CatalogSpec, GeneratedCatalog};

/// moto's default account.
pub const ACCOUNT: &str = "123456789012";
pub const SOURCE_REGION: &str = "us-east-1";
pub const TARGET_REGION: &str = "us-west-2";

/// A test's names: its database prefix, data bucket, stream and state bucket derive from `name`.
pub struct Names {
    pub prefix: String,
    pub data_bucket: String,
}

impl Names {
    pub fn new(name: &str) -> Names {
        Names { prefix: name.replace('-', "_"), data_bucket: format!("lakelog-{name}-data") }
    }
}

/// Pipeline YAML for a test; `stream_extra` and `apply_extra` are appended inside those sections.
pub fn config_yaml(emu: &Emulator, name: &str, stream_extra: &str, apply_extra: &str) -> String {
    let n = Names::new(name);
    // Tables wait for their database on another shard; under a loaded CI machine that can take
    // seconds, so tests wait as long as production does unless they say otherwise.
    let apply_extra = if apply_extra.contains("dependency_wait_seconds") {
        apply_extra.to_string()
    } else {
        format!("  dependency_wait_seconds: 30\n{apply_extra}")
    };
    format!(
        r#"
source:
  region: {SOURCE_REGION}
  endpoint: {moto}
  include: ["{prefix}_*"]
  partition_segments: 1
stream:
  name: lakelog-{name}
  endpoint: {kin}
  shards: 2
  create_if_missing: true
{stream_extra}
state:
  bucket: lakelog-{name}-state
  endpoint: {moto}
  create_bucket_if_missing: true
targets:
  - name: dr
    region: {TARGET_REGION}
    endpoint: {moto}
    location_rewrite:
      - from: s3://{bucket}
        to: s3://{bucket}-dr
apply:
{apply_extra}
metrics:
  listen: 127.0.0.1:0
"#,
        moto = emu.moto_url,
        kin = emu.kinesis_url,
        prefix = n.prefix,
        bucket = n.data_bucket,
    )
}

pub fn config(emu: &Emulator, name: &str, stream_extra: &str, apply_extra: &str) -> PipelineConfig {
    PipelineConfig::from_yaml(&config_yaml(emu, name, stream_extra, apply_extra), name).expect("test config is valid")
}

pub async fn glue(emu: &Emulator, region: &str) -> aws_sdk_glue::Client {
    let mut ep = Endpoint::new(region, Some(&emu.moto_url));
    ep.max_attempts = 1;
    ep.glue(None).await
}

/// The catalog of `region` (account [`ACCOUNT`]) behind the default retry policy.
pub async fn catalog(emu: &Emulator, region: &str) -> Arc<dyn Catalog> {
    GlueCatalog::retrying(glue(emu, region).await, ACCOUNT)
}

/// Generates and writes a source catalog.
pub async fn seed(emu: &Emulator, name: &str, databases: usize, tables: usize, partitions: usize) -> GeneratedCatalog {
    let n = Names::new(name);
    let spec = CatalogSpec {
        prefix: n.prefix,
        databases,
        tables_per_database: tables,
        partitions_per_table: partitions,
        bucket: n.data_bucket,
    };
    let catalog = generate(&spec);
    lakelog::simulate::seed::write_catalog(&*crate::catalog(emu, SOURCE_REGION).await, &catalog)
        .await
        .expect("seeding the source catalog");
    catalog
}

/// Everything in one catalog under a prefix, keyed by name.
#[derive(Debug, Default, PartialEq)]
pub struct CatalogDump {
    pub databases: BTreeMap<String, Database>,
    pub tables: BTreeMap<(String, String), Table>,
    pub partitions: BTreeMap<(String, String, Vec<String>), Partition>,
}

impl CatalogDump {
    /// Reads every object under `prefix`, keeping only writable fields.
    pub async fn read(emu: &Emulator, region: &str, prefix: &str) -> CatalogDump {
        Self::try_read(emu, region, prefix).await.expect("reading the catalog")
    }

    /// Like [`CatalogDump::read`], but a read that races with a change (a table dropped between
    /// listing it and reading its partitions) is an error to retry, not a failure.
    pub async fn try_read(
        emu: &Emulator,
        region: &str,
        prefix: &str,
    ) -> Result<CatalogDump, lakelog::capture::CaptureError> {
        Self::of(crate::catalog(emu, region).await, prefix).await
    }

    /// Every object under `prefix` in `catalog` (any account), keeping only writable fields.
    pub async fn of(catalog: Arc<dyn Catalog>, prefix: &str) -> Result<CatalogDump, lakelog::capture::CaptureError> {
        let reader = CatalogReader::new(catalog, 1);
        let mut dump = CatalogDump::default();
        for db in reader.databases().await? {
            if !db.name.starts_with(prefix) {
                continue;
            }
            for t in reader.tables(&db.name).await? {
                for p in reader.all_partitions(&db.name, &t.name).await? {
                    dump.partitions.insert((db.name.clone(), t.name.clone(), p.values.clone()), p.writable());
                }
                dump.tables.insert((db.name.clone(), t.name.clone()), t.writable());
            }
            dump.databases.insert(db.name.clone(), db.writable());
        }
        Ok(dump)
    }

    /// The dump with S3 locations rewritten `from` → `to`, done independently of lakelog's own
    /// transform: through the JSON text of every object.
    pub fn rewritten(&self, from: &str, to: &str) -> CatalogDump {
        fn rw<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T, from: &str, to: &str) -> T {
            let json = serde_json::to_string(v).expect("json");
            serde_json::from_str(
                &json
                    .replace(&format!("\"{from}/"), &format!("\"{to}/"))
                    .replace(&format!("\"{from}\""), &format!("\"{to}\"")),
            )
            .expect("json back")
        }
        CatalogDump {
            databases: self.databases.iter().map(|(k, v)| (k.clone(), rw(v, from, to))).collect(),
            tables: self.tables.iter().map(|(k, v)| (k.clone(), rw(v, from, to))).collect(),
            partitions: self.partitions.iter().map(|(k, v)| (k.clone(), rw(v, from, to))).collect(),
        }
    }

    /// Asserts field-by-field equality, naming the first differing object.
    pub fn assert_same(&self, other: &CatalogDump) {
        assert_eq!(self.databases.len(), other.databases.len(), "database count");
        assert_eq!(self.tables.len(), other.tables.len(), "table count");
        assert_eq!(self.partitions.len(), other.partitions.len(), "partition count");
        for (k, v) in &self.databases {
            assert_eq!(Some(v), other.databases.get(k), "database {k}");
        }
        for (k, v) in &self.tables {
            assert_eq!(Some(v), other.tables.get(k), "table {k:?}");
        }
        for (k, v) in &self.partitions {
            assert_eq!(Some(v), other.partitions.get(k), "partition {k:?}");
        }
    }
}
