//! A deterministic generator of realistic, crawler-like Glue catalogs.
//!
//! [`generate`] turns a [`CatalogSpec`] into a [`GeneratedCatalog`]: databases, tables and
//! partitions in lakelog's model types, in the order they must be created (databases, then each
//! database's tables with views after the tables they read, then partitions table by table). The
//! demo, the end-to-end tests and the benchmarks use it to populate a source catalog.
//!
//! There is no randomness: all variety (formats, schemas, statistics, partition values, ids) is
//! derived from the database, table and partition indexes, so two calls with the same spec return
//! equal catalogs.
//!
//! # What a catalog contains
//!
//! - Databases `{prefix}_{domain}` (domains cycle through sales, web, iot, finance, hr, marketing,
//!   logistics, support; after the eighth a numeric suffix is added: `{prefix}_sales_2`), each with
//!   a description, `location_uri` `s3://{bucket}/{db}/` and a few parameters.
//! - `tables_per_database` *regular* data tables per database, as an AWS Glue crawler would write
//!   them, located at `s3://{bucket}/{db}/{table}/`. Their format cycles through Parquet, CSV,
//!   JSON, ORC and Avro. One regular table in four (the 4th, 8th, ... of each database) is
//!   unpartitioned; the others are partitioned by `year`/`month`/`day`, `dt`/`region` or
//!   `dt`/`hour` and get `partitions_per_table` partitions each, with distinct values starting at
//!   2026-01-01.
//! - *Special* tables, on top of the regular ones: an Iceberg table (`ice_*`), a bucketed, sorted
//!   and skewed ORC table (`bucketed_*`), an Athena (Presto) view (`v_*`) and a resource link to a
//!   table of another account (`rl_shared_*`). The first database gets all four; database `i > 0`
//!   gets the special kinds `k` (in that order, 0 to 3) with `(i + k)` even, so any catalog of one
//!   database or more has at least one of each. Special tables have no partitions.
//! - Non-ASCII text: the first database's Iceberg table has the description
//!   `Ventes journalières — 売上 📈` and a column comment in the same spirit.
//!
//! All names are lowercase, as Glue stores them (the spec's prefix is lowercased).

use serde_json::json;

use crate::model::catalog::{
    Column, Database, Order, Params, Partition, SerDeInfo, SkewedInfo, StorageDescriptor, Table, TableIdentifier,
};

/// Shape of the catalog to generate.
#[derive(Debug, Clone)]
pub struct CatalogSpec {
    /// Prefix of every database name (tests use a unique one), e.g. "demo". Lowercased.
    pub prefix: String,
    /// Number of databases (at least 1 for a useful catalog; 0 generates nothing).
    pub databases: usize,
    /// Regular data tables per database. Special tables (Iceberg, bucketed, view, resource link)
    /// come on top of these; one regular table in four is unpartitioned.
    pub tables_per_database: usize,
    /// Partitions of each partitioned regular table.
    pub partitions_per_table: usize,
    /// S3 bucket that data lives in, e.g. "lakelog-demo-data".
    pub bucket: String,
}

impl CatalogSpec {
    /// Number of partitioned regular tables in each database (three in four, rounded up).
    pub fn partitioned_tables_per_database(&self) -> usize {
        (0..self.tables_per_database).filter(|&j| is_partitioned(j)).count()
    }

    /// Exact number of partitions that [`generate`] returns for this spec.
    pub fn total_partitions(&self) -> usize {
        self.databases.saturating_mul(self.partitioned_tables_per_database()).saturating_mul(self.partitions_per_table)
    }

    /// Exact number of tables (regular and special) that [`generate`] returns for this spec.
    pub fn total_tables(&self) -> usize {
        let special: usize = (0..self.databases).map(|i| specials_for(i).count()).sum();
        self.databases.saturating_mul(self.tables_per_database).saturating_add(special)
    }
}

/// A generated catalog: databases, tables and partitions, in the order they must be created.
#[derive(Debug, Clone, Default)]
pub struct GeneratedCatalog {
    /// Databases, first to create.
    pub databases: Vec<Database>,
    /// Tables, database by database; a view comes after the tables it reads.
    pub tables: Vec<Table>,
    /// Partitions, table by table, in the order of [`GeneratedCatalog::tables`].
    pub partitions: Vec<Partition>,
}

impl GeneratedCatalog {
    /// The table `name` of database `db`, if it was generated.
    pub fn table_by_name(&self, db: &str, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.database_name == db && t.name == name)
    }
}

/// Generates the catalog described by `spec`. Deterministic: equal specs give equal catalogs.
pub fn generate(spec: &CatalogSpec) -> GeneratedCatalog {
    let prefix = spec.prefix.to_lowercase();
    let mut out = GeneratedCatalog {
        databases: Vec::with_capacity(spec.databases),
        tables: Vec::with_capacity(spec.total_tables()),
        partitions: Vec::with_capacity(spec.total_partitions()),
    };
    for i in 0..spec.databases {
        let ctx = DbCtx::new(spec, &prefix, i);
        out.databases.push(ctx.database());
        for j in 0..spec.tables_per_database {
            let (table, scheme) = ctx.regular_table(j);
            if let Some(scheme) = scheme {
                ctx.partitions(&table, j, scheme, &mut out.partitions);
            }
            out.tables.push(table);
        }
        for special in specials_for(i) {
            out.tables.push(match special {
                Special::Iceberg => ctx.iceberg_table(),
                Special::Skewed => ctx.skewed_table(),
                Special::View => ctx.view(),
                Special::ResourceLink => ctx.resource_link(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Fixed vocabulary.

/// A business domain: database name part, description and table nouns.
struct Domain {
    name: &'static str,
    description: &'static str,
    nouns: [&'static str; 8],
}

const DOMAINS: [Domain; 8] = [
    Domain {
        name: "sales",
        description: "Sales: orders, customers and invoicing",
        nouns: ["orders", "order_items", "customers", "returns", "invoices", "refunds", "quotes", "discounts"],
    },
    Domain {
        name: "web",
        description: "Web analytics: page views, clicks and sessions",
        nouns: ["page_views", "clicks", "sessions", "sign_ups", "searches", "referrers", "client_errors", "carts"],
    },
    Domain {
        name: "iot",
        description: "IoT telemetry from field devices",
        nouns: [
            "sensor_readings",
            "device_events",
            "heartbeats",
            "alerts",
            "firmware_updates",
            "telemetry",
            "gateways",
            "battery_levels",
        ],
    },
    Domain {
        name: "finance",
        description: "Finance: payments, ledger and FX",
        nouns: [
            "transactions",
            "payments",
            "ledger_entries",
            "fx_rates",
            "budgets",
            "expenses",
            "payouts",
            "chargebacks",
        ],
    },
    Domain {
        name: "hr",
        description: "Human resources (restricted)",
        nouns: ["employees", "absences", "payroll", "recruitments", "trainings", "reviews", "departments", "contracts"],
    },
    Domain {
        name: "marketing",
        description: "Marketing campaigns and attribution",
        nouns: ["campaigns", "impressions", "conversions", "leads", "emails", "audiences", "coupons", "attributions"],
    },
    Domain {
        name: "logistics",
        description: "Logistics: shipments, warehouses and carriers",
        nouns: ["shipments", "deliveries", "warehouses", "inventory", "carriers", "routes", "parcels", "pickups"],
    },
    Domain {
        name: "support",
        description: "Customer support tickets and conversations",
        nouns: ["tickets", "chats", "calls", "satisfaction_surveys", "escalations", "agents", "sla_breaches", "macros"],
    },
];

/// Data columns regular tables pick from (besides their leading `id bigint`). None of these is a
/// partition key name. `(name, type, comment)`.
const COLUMN_POOL: [(&str, &str, Option<&str>); 18] = [
    ("event_time", "timestamp", Some("when the event happened (UTC)")),
    ("customer_id", "string", None),
    ("amount", "decimal(10,2)", Some("amount in the account currency")),
    ("score", "double", None),
    ("tags", "array<string>", None),
    ("attributes", "struct<source:string,version:int,sampled:boolean>", Some("producer metadata")),
    ("quantity", "int", None),
    ("is_active", "boolean", None),
    ("country_code", "string", Some("ISO 3166-1 alpha-2")),
    ("properties", "map<string,string>", None),
    ("created_at", "timestamp", None),
    ("device", "struct<os:string,model:string,app_version:string>", None),
    ("latitude", "double", None),
    ("longitude", "double", None),
    ("status", "string", Some("one of: new, active, closed")),
    ("updated_at", "timestamp", None),
    ("line_items", "array<struct<sku:string,qty:int,price:decimal(10,2)>>", None),
    ("session_id", "string", None),
];

/// Values of the `region` partition key.
const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-northeast-1", "sa-east-1"];

/// Account that resource links point to.
const SHARED_ACCOUNT: &str = "111122223333";

const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
const ORC_INPUT: &str = "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat";
const ORC_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat";
const ORC_SERDE: &str = "org.apache.hadoop.hive.ql.io.orc.OrcSerde";

// ---------------------------------------------------------------------------------------------
// Table kinds.

/// The storage format of a regular table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv,
    Json,
    Orc,
    Avro,
}

impl Format {
    const ALL: [Format; 5] = [Format::Parquet, Format::Csv, Format::Json, Format::Orc, Format::Avro];

    fn classification(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Orc => "orc",
            Format::Avro => "avro",
        }
    }

    fn compression_type(self) -> &'static str {
        match self {
            Format::Parquet => "snappy",
            Format::Csv => "none",
            Format::Json => "gzip",
            Format::Orc => "zlib",
            Format::Avro => "none",
        }
    }

    /// How much smaller than the raw records the files are, for `sizeKey`.
    fn compression_ratio(self) -> u64 {
        match self {
            Format::Parquet => 4,
            Format::Csv => 1,
            Format::Json => 3,
            Format::Orc => 5,
            Format::Avro => 2,
        }
    }

    fn input_format(self) -> &'static str {
        match self {
            Format::Parquet => "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            Format::Csv | Format::Json => TEXT_INPUT,
            Format::Orc => ORC_INPUT,
            Format::Avro => "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
        }
    }

    fn output_format(self) -> &'static str {
        match self {
            Format::Parquet => "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            Format::Csv | Format::Json => TEXT_OUTPUT,
            Format::Orc => ORC_OUTPUT,
            Format::Avro => "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat",
        }
    }

    /// Text formats and Avro get flat, primitive-typed schemas; columnar formats get nested types.
    fn allows_complex_types(self) -> bool {
        matches!(self, Format::Parquet | Format::Json | Format::Orc)
    }

    fn serde_info(self, table: &str, columns: &[Column]) -> SerDeInfo {
        let mut parameters = Params::new();
        let library = match self {
            Format::Parquet => {
                parameters.insert("serialization.format".into(), "1".into());
                PARQUET_SERDE
            }
            Format::Csv => {
                parameters.insert("separatorChar".into(), ",".into());
                parameters.insert("quoteChar".into(), "\"".into());
                parameters.insert("escapeChar".into(), "\\".into());
                "org.apache.hadoop.hive.serde2.OpenCSVSerde"
            }
            Format::Json => {
                let mut names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                names.sort_unstable();
                parameters.insert("paths".into(), names.join(","));
                "org.openx.data.jsonserde.JsonSerDe"
            }
            Format::Orc => {
                parameters.insert("serialization.format".into(), "1".into());
                ORC_SERDE
            }
            Format::Avro => {
                parameters.insert("avro.schema.literal".into(), avro_schema(table, columns));
                parameters.insert("serialization.format".into(), "1".into());
                "org.apache.hadoop.hive.serde2.avro.AvroSerDe"
            }
        };
        SerDeInfo { name: None, serialization_library: Some(library.into()), parameters }
    }
}

/// The partition keys of a partitioned regular table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `year`, `month`, `day`: one partition per day.
    YearMonthDay,
    /// `dt`, `region`: one partition per day and region.
    DtRegion,
    /// `dt`, `hour`: one partition per hour.
    DtHour,
}

impl Scheme {
    const ALL: [Scheme; 3] = [Scheme::YearMonthDay, Scheme::DtRegion, Scheme::DtHour];

    fn keys(self) -> Vec<Column> {
        match self {
            Scheme::YearMonthDay => {
                vec![column("year", "string", None), column("month", "string", None), column("day", "string", None)]
            }
            Scheme::DtRegion => vec![
                column("dt", "string", Some("ingestion date (UTC)")),
                column("region", "string", Some("AWS Region the data comes from")),
            ],
            Scheme::DtHour => {
                vec![column("dt", "string", Some("ingestion date (UTC)")), column("hour", "string", None)]
            }
        }
    }

    /// Partitions per day.
    fn per_day(self) -> usize {
        match self {
            Scheme::YearMonthDay => 1,
            Scheme::DtRegion => REGIONS.len(),
            Scheme::DtHour => 24,
        }
    }

    /// The values of `count` partitions: distinct, consecutive, starting on 2026-01-01.
    fn values(self, count: usize) -> Vec<Vec<String>> {
        let per_day = self.per_day();
        let mut day = Day::START;
        let mut out = Vec::with_capacity(count);
        for p in 0..count {
            if p > 0 && p % per_day == 0 {
                day = day.next();
            }
            let slot = p % per_day;
            out.push(match self {
                Scheme::YearMonthDay => {
                    vec![format!("{:04}", day.year), format!("{:02}", day.month), format!("{:02}", day.day)]
                }
                Scheme::DtRegion => vec![day.iso(), REGIONS[slot].to_string()],
                Scheme::DtHour => vec![day.iso(), format!("{slot:02}")],
            });
        }
        out
    }
}

/// Tables that every catalog has at least one of, beyond the regular data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Iceberg,
    Skewed,
    View,
    ResourceLink,
}

/// In creation order: the view reads the tables before it.
const SPECIALS: [Special; 4] = [Special::Iceberg, Special::Skewed, Special::View, Special::ResourceLink];

/// The special tables of database `db_index`: all of them for the first database, the kinds `k`
/// with `db_index + k` even for the others.
fn specials_for(db_index: usize) -> impl Iterator<Item = Special> {
    SPECIALS.into_iter().enumerate().filter(move |(k, _)| db_index == 0 || (db_index + k) % 2 == 0).map(|(_, s)| s)
}

/// Whether regular table `j` of a database is partitioned (all but one in four).
fn is_partitioned(j: usize) -> bool {
    j % 4 != 3
}

// ---------------------------------------------------------------------------------------------
// Generation.

/// One database being generated.
struct DbCtx<'a> {
    spec: &'a CatalogSpec,
    index: usize,
    domain: &'static Domain,
    name: String,
    location: String,
}

impl<'a> DbCtx<'a> {
    fn new(spec: &'a CatalogSpec, prefix: &str, index: usize) -> Self {
        let domain = &DOMAINS[index % DOMAINS.len()];
        let round = index / DOMAINS.len();
        let name = if round == 0 {
            format!("{prefix}_{}", domain.name)
        } else {
            format!("{prefix}_{}_{}", domain.name, round + 1)
        };
        let location = format!("s3://{}/{name}/", spec.bucket);
        DbCtx { spec, index, domain, name, location }
    }

    fn table_location(&self, table: &str) -> String {
        format!("{}{table}/", self.location)
    }

    fn database(&self) -> Database {
        let classification = ["internal", "confidential", "public"][self.index % 3];
        let mut parameters = Params::new();
        parameters.insert("data_classification".into(), classification.into());
        parameters.insert("owner_team".into(), format!("{}-data", self.domain.name));
        if self.index % 2 == 0 {
            parameters.insert("created_by".into(), "lakelog-simulate".into());
        }
        Database {
            name: self.name.clone(),
            description: Some(self.domain.description.into()),
            location_uri: Some(self.location.clone()),
            parameters,
            ..Database::default()
        }
    }

    /// Name of regular table `j`: the domain's nouns, then `noun_2`, `noun_3`, ...
    fn regular_table_name(&self, j: usize) -> String {
        let noun = self.domain.nouns[j % self.domain.nouns.len()];
        let round = j / self.domain.nouns.len();
        if round == 0 {
            noun.to_string()
        } else {
            format!("{noun}_{}", round + 1)
        }
    }

    /// Regular table `j`, and its partition scheme if it is partitioned.
    fn regular_table(&self, j: usize) -> (Table, Option<Scheme>) {
        let global = self.index.saturating_mul(self.spec.tables_per_database).saturating_add(j);
        let format = Format::ALL[global % Format::ALL.len()];
        let scheme = is_partitioned(j).then(|| Scheme::ALL[j % Scheme::ALL.len()]);
        let name = self.regular_table_name(j);
        let h = hash(&[self.index as u64, j as u64]);

        let columns = data_columns(format, h);
        let stats = Stats::new(h, format, if scheme.is_some() { 50 } else { 1 });
        let parameters = crawler_params(&self.name, format, &stats, true);
        let sd = StorageDescriptor {
            location: Some(self.table_location(&name)),
            input_format: Some(format.input_format().into()),
            output_format: Some(format.output_format().into()),
            serde_info: Some(format.serde_info(&name, &columns)),
            columns,
            compressed: false,
            number_of_buckets: -1,
            parameters: parameters.clone(),
            ..StorageDescriptor::default()
        };
        let description = (j % 3 == 0).then(|| {
            format!(
                "{} of the {} domain, crawled from S3 ({})",
                name.replace('_', " "),
                self.domain.name,
                format.classification()
            )
        });
        let table = Table {
            database_name: self.name.clone(),
            name,
            description,
            owner: Some("owner".into()),
            retention: 0,
            storage_descriptor: Some(sd),
            partition_keys: scheme.map(Scheme::keys).unwrap_or_default(),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters,
            ..Table::default()
        };
        (table, scheme)
    }

    /// The partitions of regular table `j`, appended to `out`.
    fn partitions(&self, table: &Table, j: usize, scheme: Scheme, out: &mut Vec<Partition>) {
        let Some(sd) = table.storage_descriptor.as_ref() else {
            return;
        };
        let base = sd.location.clone().unwrap_or_default();
        let format = format_of(sd);
        let keys: Vec<&str> = table.partition_keys.iter().map(|k| k.name.as_str()).collect();
        for (p, values) in scheme.values(self.spec.partitions_per_table).into_iter().enumerate() {
            let mut location = base.clone();
            for (k, v) in keys.iter().zip(&values) {
                location.push_str(k);
                location.push('=');
                location.push_str(v);
                location.push('/');
            }
            let stats = Stats::new(hash(&[self.index as u64, j as u64, p as u64]), format, 1);
            let parameters = crawler_params(&self.name, format, &stats, false);
            out.push(Partition {
                database_name: table.database_name.clone(),
                table_name: table.name.clone(),
                values,
                storage_descriptor: Some(StorageDescriptor {
                    location: Some(location),
                    parameters: parameters.clone(),
                    ..sd.clone()
                }),
                parameters,
                ..Partition::default()
            });
        }
    }

    /// An Iceberg table registered by Athena: `table_type=ICEBERG` and metadata locations.
    fn iceberg_table(&self) -> Table {
        let name = format!("ice_{}", self.domain.nouns[0]);
        let location = self.table_location(&name);
        let h = hash(&[self.index as u64, 1_000_001]);
        let first = self.index == 0;
        let mut columns = vec![
            column("id", "bigint", None),
            column("event_time", "timestamp", None),
            column("customer_id", "string", None),
            if first {
                column("montant_ttc", "decimal(12,2)", Some("Montant TTC en euros — 金額 💶"))
            } else {
                column("amount", "decimal(12,2)", Some("amount including tax"))
            },
            column("items", "array<struct<sku:string,qty:int>>", None),
        ];
        for (n, c) in columns.iter_mut().enumerate() {
            c.parameters.insert("iceberg.field.current".into(), "true".into());
            c.parameters.insert("iceberg.field.id".into(), (n + 1).to_string());
            c.parameters.insert("iceberg.field.optional".into(), (n > 0).to_string());
        }
        let mut parameters = Params::new();
        parameters.insert("table_type".into(), "ICEBERG".into());
        parameters.insert("metadata_location".into(), format!("{location}metadata/00001-{}.metadata.json", uuid(h)));
        parameters.insert(
            "previous_metadata_location".into(),
            format!("{location}metadata/00000-{}.metadata.json", uuid(mix(h))),
        );
        parameters.insert("write.parquet.compression-codec".into(), "zstd".into());
        let description = if first {
            "Ventes journalières — 売上 📈".to_string()
        } else {
            format!("Iceberg copy of {} ({})", self.domain.nouns[0], self.domain.name)
        };
        Table {
            database_name: self.name.clone(),
            name,
            description: Some(description),
            owner: Some("owner".into()),
            retention: 0,
            storage_descriptor: Some(StorageDescriptor {
                columns,
                location: Some(location),
                input_format: Some("org.apache.hadoop.mapred.FileInputFormat".into()),
                output_format: Some("org.apache.hadoop.mapred.FileOutputFormat".into()),
                serde_info: Some(SerDeInfo {
                    serialization_library: Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into()),
                    ..SerDeInfo::default()
                }),
                ..StorageDescriptor::default()
            }),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters,
            ..Table::default()
        }
    }

    /// A Hive-style ORC table with buckets, sort columns and skewed values.
    fn skewed_table(&self) -> Table {
        let name = "bucketed_events".to_string();
        let location = self.table_location(&name);
        let skewed_values = ["fr", "us", "jp"];
        let skewed_info = SkewedInfo {
            skewed_column_names: vec!["country_code".into()],
            skewed_column_values: skewed_values.iter().map(|v| v.to_string()).collect(),
            skewed_column_value_location_maps: skewed_values
                .iter()
                .map(|v| (v.to_string(), format!("{location}country_code={v}/")))
                .collect(),
        };
        let mut parameters = Params::new();
        parameters.insert("EXTERNAL".into(), "TRUE".into());
        parameters.insert("classification".into(), "orc".into());
        parameters.insert("orc.compress".into(), "ZLIB".into());
        let mut serde_parameters = Params::new();
        serde_parameters.insert("serialization.format".into(), "1".into());
        Table {
            database_name: self.name.clone(),
            name,
            description: Some("Events bucketed by user, skewed on country".into()),
            owner: Some("owner".into()),
            retention: 0,
            storage_descriptor: Some(StorageDescriptor {
                columns: vec![
                    column("user_id", "string", Some("bucketing key")),
                    column("event_time", "timestamp", None),
                    column("event_type", "string", None),
                    column("country_code", "string", Some("skewed: fr, us, jp")),
                    column("payload", "map<string,string>", None),
                ],
                location: Some(location),
                input_format: Some(ORC_INPUT.into()),
                output_format: Some(ORC_OUTPUT.into()),
                compressed: true,
                number_of_buckets: 16,
                serde_info: Some(SerDeInfo {
                    name: Some(format!("{}_serde", self.domain.name)),
                    serialization_library: Some(ORC_SERDE.into()),
                    parameters: serde_parameters,
                }),
                bucket_columns: vec!["user_id".into()],
                sort_columns: vec![
                    Order { column: "user_id".into(), sort_order: 1 },
                    Order { column: "event_time".into(), sort_order: 0 },
                ],
                skewed_info: Some(skewed_info),
                stored_as_sub_directories: true,
                ..StorageDescriptor::default()
            }),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters,
            ..Table::default()
        }
    }

    /// An Athena (Presto) view over the database's first regular table.
    fn view(&self) -> Table {
        let name = format!("v_daily_{}", self.domain.nouns[0]);
        let base = self.regular_table_name(0);
        let sql = format!(
            "SELECT CAST(event_time AS date) AS day, count(*) AS events, \
             sum(amount) AS revenue, avg(score) AS avg_score \
             FROM \"{}\".\"{base}\" GROUP BY 1",
            self.name
        );
        // (name, Hive type in the storage descriptor, Presto type in the view text)
        let cols = [
            ("day", "date", "date"),
            ("events", "bigint", "bigint"),
            ("revenue", "decimal(38,2)", "decimal(38,2)"),
            ("avg_score", "double", "double"),
        ];
        let presto = json!({
            "originalSql": sql,
            "catalog": "awsdatacatalog",
            "schema": self.name,
            "columns": cols
                .iter()
                .map(|(n, _, t)| json!({ "name": n, "type": t }))
                .collect::<Vec<_>>(),
            "owner": format!("arn:aws:iam::{SHARED_ACCOUNT}:user/analyst"),
            "runAsInvoker": false,
            "properties": {},
        });
        let mut parameters = Params::new();
        parameters.insert("presto_view".into(), "true".into());
        parameters.insert("comment".into(), "Presto View".into());
        Table {
            database_name: self.name.clone(),
            name,
            owner: Some("owner".into()),
            retention: 0,
            storage_descriptor: Some(StorageDescriptor {
                columns: cols.iter().map(|(n, t, _)| column(n, t, None)).collect(),
                ..StorageDescriptor::default()
            }),
            view_original_text: Some(format!("/* Presto View: {} */", base64(presto.to_string().as_bytes()))),
            view_expanded_text: Some("/* Presto View */".into()),
            table_type: Some("VIRTUAL_VIEW".into()),
            parameters,
            ..Table::default()
        }
    }

    /// A resource link to a table shared by another account; no storage of its own.
    fn resource_link(&self) -> Table {
        let target = self.domain.nouns[2];
        Table {
            database_name: self.name.clone(),
            name: format!("rl_shared_{target}"),
            target_table: Some(TableIdentifier {
                catalog_id: Some(SHARED_ACCOUNT.into()),
                database_name: Some(format!("shared_{}", self.domain.name)),
                name: Some(target.into()),
                region: Some("us-east-1".into()),
            }),
            ..Table::default()
        }
    }
}

/// The format of a generated regular table, recovered from its storage descriptor.
fn format_of(sd: &StorageDescriptor) -> Format {
    let classification = sd.parameters.get("classification").map(String::as_str).unwrap_or("parquet");
    Format::ALL.into_iter().find(|f| f.classification() == classification).unwrap_or(Format::Parquet)
}

fn column(name: &str, type_: &str, comment: Option<&str>) -> Column {
    Column { name: name.into(), type_: Some(type_.into()), comment: comment.map(Into::into), parameters: Params::new() }
}

/// `id bigint` followed by 5 to 10 distinct pool columns chosen from `h`.
fn data_columns(format: Format, h: u64) -> Vec<Column> {
    let pool: Vec<&(&str, &str, Option<&str>)> =
        COLUMN_POOL.iter().filter(|(_, t, _)| format.allows_complex_types() || !t.contains('<')).collect();
    let extra = 5 + (h % 6) as usize;
    let start = ((h >> 8) % pool.len() as u64) as usize;
    let mut columns = Vec::with_capacity(extra + 1);
    columns.push(column("id", "bigint", Some("surrogate key")));
    for k in 0..extra.min(pool.len()) {
        let (name, type_, comment) = pool[(start + k) % pool.len()];
        columns.push(column(name, type_, *comment));
    }
    columns
}

/// An Avro schema (JSON) for flat, primitive-typed columns.
fn avro_schema(table: &str, columns: &[Column]) -> String {
    let fields: Vec<serde_json::Value> = columns
        .iter()
        .map(|c| {
            let hive = c.type_.as_deref().unwrap_or("string");
            let avro = match hive {
                "bigint" => json!("long"),
                "int" => json!("int"),
                "double" => json!("double"),
                "boolean" => json!("boolean"),
                "timestamp" => json!({ "type": "long", "logicalType": "timestamp-millis" }),
                other => match decimal_precision_scale(other) {
                    Some((precision, scale)) => json!({
                        "type": "bytes",
                        "logicalType": "decimal",
                        "precision": precision,
                        "scale": scale,
                    }),
                    None => json!("string"),
                },
            };
            json!({ "name": c.name, "type": ["null", avro], "default": null })
        })
        .collect();
    json!({ "type": "record", "name": table, "namespace": "lakelog.simulate", "fields": fields }).to_string()
}

/// `(precision, scale)` of `decimal(p,s)`.
fn decimal_precision_scale(hive: &str) -> Option<(u32, u32)> {
    let inner = hive.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// Crawler-like statistics of a table or partition.
struct Stats {
    records: u64,
    average_record_size: u64,
    objects: u64,
    size: u64,
}

impl Stats {
    /// `scale` multiplies the record and object counts (a partitioned table sums its partitions).
    fn new(h: u64, format: Format, scale: u64) -> Self {
        let records = (500 + h % 200_000) * scale;
        let average_record_size = 40 + (h >> 20) % 900;
        let objects = (1 + (h >> 40) % 24) * scale;
        let size = records * average_record_size / format.compression_ratio();
        Stats { records, average_record_size, objects, size }
    }
}

/// The parameters a Glue crawler writes on a table (`table = true`) or a partition.
fn crawler_params(db: &str, format: Format, stats: &Stats, table: bool) -> Params {
    let mut p = Params::new();
    if table {
        p.insert("CrawlerSchemaDeserializerVersion".into(), "1.0".into());
        p.insert("CrawlerSchemaSerializerVersion".into(), "1.0".into());
        p.insert("UPDATED_BY_CRAWLER".into(), format!("{db}_crawler"));
    }
    p.insert("averageRecordSize".into(), stats.average_record_size.to_string());
    p.insert("classification".into(), format.classification().into());
    p.insert("compressionType".into(), format.compression_type().into());
    p.insert("objectCount".into(), stats.objects.to_string());
    p.insert("recordCount".into(), stats.records.to_string());
    p.insert("sizeKey".into(), stats.size.to_string());
    p.insert("typeOfData".into(), "file".into());
    if format == Format::Csv {
        p.insert("areColumnsQuoted".into(), "false".into());
        p.insert("columnsOrdered".into(), "true".into());
        p.insert("delimiter".into(), ",".into());
        p.insert("skip.header.line.count".into(), "1".into());
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Deterministic helpers: calendar days, hashing, ids, base64.

/// A calendar day (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Day {
    year: u32,
    month: u32,
    day: u32,
}

impl Day {
    const START: Day = Day { year: 2026, month: 1, day: 1 };

    fn days_in_month(year: u32, month: u32) -> u32 {
        match month {
            2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    fn next(self) -> Day {
        if self.day < Self::days_in_month(self.year, self.month) {
            Day { day: self.day + 1, ..self }
        } else if self.month < 12 {
            Day { month: self.month + 1, day: 1, ..self }
        } else {
            Day { year: self.year + 1, month: 1, day: 1 }
        }
    }

    fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A 64-bit mixing function (xor-shifts and odd multipliers); not cryptographic.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 31;
    x = x.wrapping_mul(0x8b3d_52e1_c04f_a6d7);
    x ^= x >> 29;
    x = x.wrapping_mul(0x61c8_8647_2e9d_0b35);
    x ^ (x >> 32)
}

/// A hash of a few indexes.
fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6c61_6b65_6c6f_6721, |acc, &p| mix(acc.rotate_left(7) ^ p))
}

/// A version-4-shaped UUID derived from `h`.
fn uuid(h: u64) -> String {
    let a = mix(h ^ 0x5555);
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Standard base64 (RFC 4648, with padding).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut n: u32 = 0;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use super::*;

    fn spec(databases: usize, tables: usize, partitions: usize) -> CatalogSpec {
        CatalogSpec {
            prefix: "UnitTest".into(),
            databases,
            tables_per_database: tables,
            partitions_per_table: partitions,
            bucket: "lakelog-test-data".into(),
        }
    }

    fn sd(t: &Table) -> &StorageDescriptor {
        t.storage_descriptor.as_ref().expect("storage descriptor")
    }

    fn serde_lib(t: &Table) -> &str {
        t.storage_descriptor
            .as_ref()
            .and_then(|sd| sd.serde_info.as_ref())
            .and_then(|s| s.serialization_library.as_deref())
            .unwrap_or("")
    }

    #[test]
    fn counts_match_the_spec() {
        for (d, t, p) in [(3, 10, 400), (1, 0, 0), (1, 1, 5), (2, 3, 1), (9, 4, 2), (17, 9, 3)] {
            let s = spec(d, t, p);
            let c = generate(&s);
            assert_eq!(c.databases.len(), d);
            assert_eq!(c.tables.len(), s.total_tables(), "{s:?}");
            assert_eq!(c.partitions.len(), s.total_partitions(), "{s:?}");
        }
        let s = spec(3, 10, 400);
        assert_eq!(s.partitioned_tables_per_database(), 8);
        assert_eq!(s.total_partitions(), 3 * 8 * 400);
        assert_eq!(s.total_tables(), 3 * 10 + 4 + 2 + 2);
    }

    #[test]
    fn partitions_per_partitioned_table_and_unpartitioned_tables_have_none() {
        let s = spec(2, 9, 30);
        let c = generate(&s);
        let mut per_table: HashMap<(&str, &str), usize> = HashMap::new();
        for p in &c.partitions {
            *per_table.entry((p.database_name.as_str(), p.table_name.as_str())).or_default() += 1;
        }
        for t in &c.tables {
            let n = per_table.get(&(t.database_name.as_str(), t.name.as_str())).copied().unwrap_or(0);
            if t.partition_keys.is_empty() {
                assert_eq!(n, 0, "{}", t.name);
            } else {
                assert_eq!(n, 30, "{}", t.name);
            }
        }
        let unpartitioned = c
            .tables
            .iter()
            .filter(|t| t.table_type.as_deref() == Some("EXTERNAL_TABLE"))
            .filter(|t| t.parameters.contains_key("UPDATED_BY_CRAWLER"))
            .filter(|t| t.partition_keys.is_empty())
            .count();
        assert_eq!(unpartitioned, 2 * 2);
    }

    #[test]
    fn partition_values_are_distinct_per_table_and_match_keys() {
        let c = generate(&spec(3, 10, 400));
        let keys: HashMap<(&str, &str), usize> =
            c.tables.iter().map(|t| ((t.database_name.as_str(), t.name.as_str()), t.partition_keys.len())).collect();
        let mut seen: HashSet<(&str, &str, &Vec<String>)> = HashSet::new();
        for p in &c.partitions {
            let n = keys
                .get(&(p.database_name.as_str(), p.table_name.as_str()))
                .copied()
                .expect("partition of a generated table");
            assert!(n > 0);
            assert_eq!(p.values.len(), n);
            assert!(seen.insert((&p.database_name, &p.table_name, &p.values)), "duplicate partition {p:?}");
        }
        // Realistic values: the first dt/hour partition and a year/month/day one.
        assert!(c.partitions.iter().any(|p| p.values == ["2026", "01", "01"]));
        assert!(c.partitions.iter().any(|p| p.values == ["2026", "02", "04"]));
        assert!(c.partitions.iter().any(|p| p.values == ["2026-01-01", "23"]));
        assert!(c.partitions.iter().any(|p| p.values == ["2026-01-02", "eu-west-1"]));
    }

    #[test]
    fn calendar_is_right_across_years() {
        let values = Scheme::YearMonthDay.values(800);
        let set: BTreeSet<&Vec<String>> = values.iter().collect();
        assert_eq!(set.len(), 800);
        assert_eq!(values[58], ["2026", "02", "28"]);
        assert_eq!(values[59], ["2026", "03", "01"]);
        assert_eq!(values[364], ["2026", "12", "31"]);
        assert_eq!(values[365], ["2027", "01", "01"]);
        // 2028 is a leap year.
        assert_eq!(values[365 + 365 + 59], ["2028", "02", "29"]);
    }

    #[test]
    fn every_kind_of_table_is_present() {
        let c = generate(&spec(3, 10, 2));
        let tables = &c.tables;
        let has = |f: &dyn Fn(&Table) -> bool| tables.iter().any(f);

        assert!(has(&|t| serde_lib(t).ends_with("ParquetHiveSerDe")
            && t.parameters.get("classification").map(String::as_str) == Some("parquet")
            && sd(t).input_format.as_deref() == Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")));
        assert!(has(&|t| serde_lib(t).ends_with("OpenCSVSerde")
            && t.parameters.get("skip.header.line.count").map(String::as_str) == Some("1")
            && sd(t).serde_info.as_ref().and_then(|s| s.parameters.get("quoteChar")) == Some(&"\"".to_string())));
        assert!(has(&|t| serde_lib(t) == "org.openx.data.jsonserde.JsonSerDe"
            && t.parameters.get("classification").map(String::as_str) == Some("json")));
        assert!(has(&|t| serde_lib(t).ends_with("OrcSerde")));
        assert!(has(&|t| serde_lib(t).ends_with("AvroSerDe")));
        // Views.
        assert!(has(&|t| t.table_type.as_deref() == Some("VIRTUAL_VIEW")
            && t.parameters.get("presto_view").map(String::as_str) == Some("true")
            && t.view_original_text
                .as_deref()
                .is_some_and(|v| v.starts_with("/* Presto View: ") && v.ends_with(" */"))
            && t.view_expanded_text.as_deref() == Some("/* Presto View */")
            && !sd(t).columns.is_empty()
            && sd(t).location.is_none()));
        // Iceberg.
        assert!(has(&|t| t.table_type.as_deref() == Some("EXTERNAL_TABLE")
            && t.parameters.get("table_type").map(String::as_str) == Some("ICEBERG")
            && t.parameters.contains_key("metadata_location")
            && t.parameters.contains_key("previous_metadata_location")
            && sd(t).location.is_some()));
        // Resource link.
        assert!(has(&|t| t.is_resource_link()
            && t.storage_descriptor.is_none()
            && t.target_table.as_ref().is_some_and(|id| id.catalog_id.as_deref() == Some("111122223333")
                && id.region.as_deref() == Some("us-east-1")
                && id.database_name.is_some()
                && id.name.is_some())));
        // Skewed, sorted, bucketed.
        assert!(has(&|t| t.storage_descriptor.as_ref().is_some_and(|sd| {
            sd.skewed_info.as_ref().is_some_and(|s| {
                !s.skewed_column_names.is_empty()
                    && !s.skewed_column_values.is_empty()
                    && !s.skewed_column_value_location_maps.is_empty()
            }) && sd.stored_as_sub_directories
                && sd.compressed
        })));
        assert!(has(&|t| t.storage_descriptor.as_ref().is_some_and(|sd| {
            sd.sort_columns.iter().any(|o| o.sort_order == 1) && sd.sort_columns.iter().any(|o| o.sort_order == 0)
        })));
        assert!(has(&|t| t
            .storage_descriptor
            .as_ref()
            .is_some_and(|sd| { !sd.bucket_columns.is_empty() && sd.number_of_buckets > 0 })));
        // Unicode.
        assert!(has(&|t| t.description.as_deref() == Some("Ventes journalières — 売上 📈")));
        assert!(has(&|t| t
            .storage_descriptor
            .as_ref()
            .is_some_and(|sd| sd.columns.iter().any(|c| c.comment.as_deref().is_some_and(|s| !s.is_ascii())))));
        // Realistic column types.
        for ty in ["bigint", "string", "double", "timestamp", "array<string>", "decimal(10,2)"] {
            assert!(
                has(&|t| t
                    .storage_descriptor
                    .as_ref()
                    .is_some_and(|sd| sd.columns.iter().any(|c| c.type_.as_deref() == Some(ty)))),
                "{ty}"
            );
        }
        assert!(has(&|t| t.storage_descriptor.as_ref().is_some_and(|sd| sd
            .columns
            .iter()
            .any(|c| c.type_.as_deref().is_some_and(|ty| ty.starts_with("struct<"))))));
    }

    #[test]
    fn first_database_has_every_special_table_and_small_catalogs_too() {
        for s in [spec(1, 0, 0), spec(1, 1, 1), spec(3, 10, 2)] {
            let c = generate(&s);
            let db = &c.databases[0].name;
            let in_db: Vec<&Table> = c.tables.iter().filter(|t| &t.database_name == db).collect();
            assert!(in_db.iter().any(|t| t.table_type.as_deref() == Some("VIRTUAL_VIEW")));
            assert!(in_db.iter().any(|t| t.parameters.get("table_type").map(String::as_str) == Some("ICEBERG")));
            assert!(in_db.iter().any(|t| t.is_resource_link()));
            assert!(in_db.iter().any(|t| t.storage_descriptor.as_ref().is_some_and(|sd| sd.skewed_info.is_some())));
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let s = spec(3, 10, 50);
        let a = generate(&s);
        let b = generate(&s);
        assert_eq!(a.databases, b.databases);
        assert_eq!(a.tables, b.tables);
        assert_eq!(a.partitions, b.partitions);
    }

    #[test]
    fn partition_storage_follows_the_table() {
        let c = generate(&spec(3, 10, 40));
        for p in &c.partitions {
            let t = c.table_by_name(&p.database_name, &p.table_name).expect("table of partition");
            let table_sd = sd(t);
            let part_sd = p.storage_descriptor.as_ref().expect("partition sd");
            let table_loc = table_sd.location.as_deref().expect("table location");
            let part_loc = part_sd.location.as_deref().expect("partition location");
            assert!(part_loc.starts_with(table_loc), "{part_loc} / {table_loc}");
            let suffix: String =
                t.partition_keys.iter().zip(&p.values).map(|(k, v)| format!("{}={v}/", k.name)).collect();
            assert_eq!(part_loc, format!("{table_loc}{suffix}"));
            assert_eq!(part_sd.columns, table_sd.columns);
            assert_eq!(part_sd.serde_info, table_sd.serde_info);
            assert_eq!(part_sd.input_format, table_sd.input_format);
            for key in ["objectCount", "recordCount", "sizeKey", "classification"] {
                assert!(p.parameters.contains_key(key), "{key}");
            }
        }
    }

    #[test]
    fn every_s3_location_uses_the_bucket() {
        let s = spec(3, 10, 20);
        let c = generate(&s);
        let prefix = format!("s3://{}/", s.bucket);
        let mut locations: Vec<&str> = Vec::new();
        for d in &c.databases {
            locations.push(d.location_uri.as_deref().expect("db location"));
        }
        let sds = c
            .tables
            .iter()
            .filter_map(|t| t.storage_descriptor.as_ref())
            .chain(c.partitions.iter().filter_map(|p| p.storage_descriptor.as_ref()));
        for sd in sds {
            locations.extend(sd.location.as_deref());
            locations.extend(sd.additional_locations.iter().map(String::as_str));
            if let Some(skew) = &sd.skewed_info {
                locations.extend(skew.skewed_column_value_location_maps.values().map(String::as_str));
            }
        }
        for t in &c.tables {
            for (k, v) in &t.parameters {
                if v.starts_with("s3://") || k.ends_with("location") {
                    locations.push(v);
                }
            }
        }
        assert!(locations.len() > c.partitions.len() + c.databases.len());
        for l in locations {
            assert!(l.starts_with(&prefix), "{l}");
            assert!(l.ends_with('/') || l.ends_with(".metadata.json"), "{l}");
        }
        let iceberg = c.tables.iter().find(|t| t.parameters.contains_key("metadata_location")).expect("iceberg table");
        let loc = sd(iceberg).location.as_deref().expect("iceberg location");
        assert!(iceberg.parameters["metadata_location"].starts_with(&format!("{loc}metadata/00001-")));
        assert!(iceberg.parameters["previous_metadata_location"].starts_with(&format!("{loc}metadata/00000-")));
    }

    #[test]
    fn names_are_lowercase_unique_and_well_placed() {
        let s = spec(10, 20, 1);
        let c = generate(&s);
        let dbs: HashSet<&str> = c.databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(dbs.len(), 10);
        assert!(dbs.contains("unittest_sales"));
        assert!(dbs.contains("unittest_sales_2"));
        for d in &c.databases {
            assert_eq!(d.name, d.name.to_lowercase());
            assert!(d.description.is_some());
            assert!(!d.parameters.is_empty());
            assert_eq!(d.location_uri.as_deref(), Some(format!("s3://lakelog-test-data/{}/", d.name).as_str()));
        }
        let mut names = HashSet::new();
        for t in &c.tables {
            assert!(dbs.contains(t.database_name.as_str()));
            assert_eq!(t.name, t.name.to_lowercase());
            assert!(names.insert((&t.database_name, &t.name)), "{}", t.name);
            if let Some(sd) = &t.storage_descriptor {
                if let Some(loc) = &sd.location {
                    assert_eq!(loc, &format!("s3://lakelog-test-data/{}/{}/", t.database_name, t.name));
                }
                let cols: HashSet<&str> = sd.columns.iter().chain(&t.partition_keys).map(|c| c.name.as_str()).collect();
                assert_eq!(cols.len(), sd.columns.len() + t.partition_keys.len());
                for col in &cols {
                    assert_eq!(*col, col.to_lowercase());
                }
            }
        }
        assert!(c.table_by_name("unittest_sales", "orders").is_some());
        assert!(c.table_by_name("unittest_sales", "orders_2").is_some());
        assert!(c.table_by_name("unittest_web", "orders").is_none());
    }

    #[test]
    fn regular_tables_look_crawled() {
        let c = generate(&spec(2, 10, 1));
        let regular: Vec<&Table> =
            c.tables.iter().filter(|t| t.parameters.contains_key("UPDATED_BY_CRAWLER")).collect();
        assert_eq!(regular.len(), 20);
        for t in regular {
            assert_eq!(t.table_type.as_deref(), Some("EXTERNAL_TABLE"));
            assert_eq!(t.owner.as_deref(), Some("owner"));
            assert_eq!(t.retention, 0);
            for key in [
                "CrawlerSchemaDeserializerVersion",
                "CrawlerSchemaSerializerVersion",
                "averageRecordSize",
                "objectCount",
                "recordCount",
                "sizeKey",
                "classification",
                "compressionType",
            ] {
                assert!(t.parameters.contains_key(key), "{key}");
            }
            assert_eq!(t.parameters["typeOfData"], "file");
            let sd = sd(t);
            assert!(sd.columns.len() >= 6);
            let serde = sd.serde_info.as_ref().expect("serde");
            match t.parameters["classification"].as_str() {
                "json" => {
                    let mut names: Vec<&str> = sd.columns.iter().map(|c| c.name.as_str()).collect();
                    names.sort_unstable();
                    assert_eq!(serde.parameters["paths"], names.join(","));
                }
                "avro" => {
                    let v: serde_json::Value =
                        serde_json::from_str(&serde.parameters["avro.schema.literal"]).expect("avro schema is JSON");
                    assert_eq!(v["fields"].as_array().map(Vec::len), Some(sd.columns.len()));
                }
                "csv" => {
                    assert_eq!(serde.parameters["separatorChar"], ",");
                    assert_eq!(serde.parameters["escapeChar"], "\\");
                    assert!(sd.columns.iter().all(|c| !c.type_.as_deref().unwrap_or("").contains('<')));
                }
                "parquet" => assert_eq!(serde.parameters["serialization.format"], "1"),
                _ => {}
            }
        }
    }

    #[test]
    fn base64_and_uuid() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
        let u = uuid(42);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid(1), uuid(2));
    }
}
