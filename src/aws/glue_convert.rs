//! Conversions between `aws_sdk_glue` types and lakelog's model ([`crate::model`]).
//!
//! This module is the only place Glue SDK types meet lakelog's model. It owns, for every Glue
//! shape the model mirrors, exactly one conversion in each direction:
//! - reading (`*_from_sdk`): an SDK read type (`Database`, `Table`, `Partition`, ...) becomes a
//!   model object. Absent lists and maps become empty ones, times become epoch milliseconds, enum
//!   values become their wire strings, and read-only fields (catalog id, create/update times,
//!   version id, ...) go into the object's `meta` struct;
//! - writing (`*_input`): a model object becomes the SDK write input (`DatabaseInput`,
//!   `TableInput`, `PartitionInput`, ...). Empty lists and maps are sent as absent.
//!
//! What it must never do:
//! - send a read-only field (anything in a `meta` struct) back to Glue;
//! - send an empty list or map (Glue treats "absent" and "empty" differently on update);
//! - change a value: no location rewriting, no defaults, no filtering (that is the applier's
//!   job); a round trip model → input → read type → model is the identity on `writable()`;
//! - call AWS, log, or panic: failures are returned as [`ConvertError`].

use std::collections::HashMap;

use aws_sdk_glue::primitives::DateTime;
use aws_sdk_glue::types as sdk;
use aws_smithy_types::error::operation::BuildError;

use crate::model;

/// A model object that cannot be turned into a Glue SDK input.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The SDK builder refused the value (for example a required field is missing).
    #[error("cannot build Glue {what} for {name}: {message}")]
    Build {
        /// The SDK shape being built (`TableInput`, `Column`, ...).
        what: &'static str,
        /// The name of the object being converted.
        name: String,
        /// The SDK's build error message.
        message: String,
    },
}

impl ConvertError {
    fn build(what: &'static str, name: impl Into<String>, err: BuildError) -> Self {
        ConvertError::Build { what, name: name.into(), message: err.to_string() }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// An SDK string map (absent = empty) as model parameters.
fn params_from_sdk(m: Option<&HashMap<String, String>>) -> model::Params {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

/// Model parameters as an SDK string map; empty is sent as absent.
fn params_input(m: &model::Params) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// A model list as an SDK list; empty is sent as absent.
fn list_input<T, U>(v: &[T], f: impl Fn(&T) -> U) -> Option<Vec<U>> {
    (!v.is_empty()).then(|| v.iter().map(f).collect())
}

/// Like [`list_input`] for elements whose conversion can fail.
fn try_list_input<T, U>(v: &[T], f: impl Fn(&T) -> Result<U, ConvertError>) -> Result<Option<Vec<U>>, ConvertError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.iter().map(f).collect::<Result<Vec<_>, _>>().map(Some)
}

/// A list of strings; empty is sent as absent.
fn strings_input(v: &[String]) -> Option<Vec<String>> {
    list_input(v, String::clone)
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// An SDK time as epoch milliseconds (a time out of `i64` range is dropped).
fn millis_from_sdk(t: Option<&DateTime>) -> Option<i64> {
    t.and_then(|t| t.to_millis().ok())
}

fn time_input(millis: Option<i64>) -> Option<DateTime> {
    millis.map(DateTime::from_millis)
}

// ---------------------------------------------------------------------------------------------
// SDK read types -> model
// ---------------------------------------------------------------------------------------------

/// A Glue database as returned by `GetDatabase(s)`.
pub fn database_from_sdk(d: &sdk::Database) -> model::Database {
    model::Database {
        name: d.name().to_owned(),
        description: owned(d.description()),
        location_uri: owned(d.location_uri()),
        parameters: params_from_sdk(d.parameters()),
        create_table_default_permissions: d
            .create_table_default_permissions()
            .iter()
            .map(principal_permissions_from_sdk)
            .collect(),
        target_database: d.target_database().map(database_identifier_from_sdk),
        federated_database: d.federated_database().map(federated_database_from_sdk),
        meta: model::DatabaseMeta { catalog_id: owned(d.catalog_id()), create_time: millis_from_sdk(d.create_time()) },
    }
}

/// A Glue table as returned by `GetTable(s)`. The table's own `database_name` wins; the argument
/// (the database that was queried) is used when Glue leaves it out.
pub fn table_from_sdk(t: &sdk::Table, database_name: &str) -> model::Table {
    model::Table {
        database_name: t.database_name().unwrap_or(database_name).to_owned(),
        name: t.name().to_owned(),
        description: owned(t.description()),
        owner: owned(t.owner()),
        last_access_time: millis_from_sdk(t.last_access_time()),
        last_analyzed_time: millis_from_sdk(t.last_analyzed_time()),
        retention: t.retention(),
        storage_descriptor: t.storage_descriptor().map(sd_from_sdk),
        partition_keys: t.partition_keys().iter().map(column_from_sdk).collect(),
        view_original_text: owned(t.view_original_text()),
        view_expanded_text: owned(t.view_expanded_text()),
        table_type: owned(t.table_type()),
        parameters: params_from_sdk(t.parameters()),
        target_table: t.target_table().map(table_identifier_from_sdk),
        federated_table: t.federated_table().map(federated_table_from_sdk),
        view_definition: t.view_definition().map(view_definition_from_sdk),
        meta: model::TableMeta {
            catalog_id: owned(t.catalog_id()),
            create_time: millis_from_sdk(t.create_time()),
            update_time: millis_from_sdk(t.update_time()),
            created_by: owned(t.created_by()),
            version_id: owned(t.version_id()),
            is_registered_with_lake_formation: t.is_registered_with_lake_formation(),
            is_multi_dialect_view: t.is_multi_dialect_view(),
            is_materialized_view: t.is_materialized_view(),
        },
    }
}

/// A Glue partition as returned by `GetPartition(s)`. The partition's own database and table
/// names win; the arguments (what was queried) are used when Glue leaves them out.
pub fn partition_from_sdk(p: &sdk::Partition, database_name: &str, table_name: &str) -> model::Partition {
    model::Partition {
        database_name: p.database_name().unwrap_or(database_name).to_owned(),
        table_name: p.table_name().unwrap_or(table_name).to_owned(),
        values: p.values().to_vec(),
        last_access_time: millis_from_sdk(p.last_access_time()),
        storage_descriptor: p.storage_descriptor().map(sd_from_sdk),
        parameters: params_from_sdk(p.parameters()),
        last_analyzed_time: millis_from_sdk(p.last_analyzed_time()),
        meta: model::PartitionMeta {
            catalog_id: owned(p.catalog_id()),
            creation_time: millis_from_sdk(p.creation_time()),
        },
    }
}

fn principal_permissions_from_sdk(p: &sdk::PrincipalPermissions) -> model::PrincipalPermissions {
    model::PrincipalPermissions {
        principal: owned(p.principal().and_then(|p| p.data_lake_principal_identifier())),
        permissions: p.permissions().iter().map(|perm| perm.as_str().to_owned()).collect(),
    }
}

fn database_identifier_from_sdk(d: &sdk::DatabaseIdentifier) -> model::DatabaseIdentifier {
    model::DatabaseIdentifier {
        catalog_id: owned(d.catalog_id()),
        database_name: owned(d.database_name()),
        region: owned(d.region()),
    }
}

fn federated_database_from_sdk(f: &sdk::FederatedDatabase) -> model::FederatedDatabase {
    model::FederatedDatabase {
        identifier: owned(f.identifier()),
        connection_name: owned(f.connection_name()),
        connection_type: owned(f.connection_type()),
    }
}

fn table_identifier_from_sdk(t: &sdk::TableIdentifier) -> model::TableIdentifier {
    model::TableIdentifier {
        catalog_id: owned(t.catalog_id()),
        database_name: owned(t.database_name()),
        name: owned(t.name()),
        region: owned(t.region()),
    }
}

fn federated_table_from_sdk(f: &sdk::FederatedTable) -> model::FederatedTable {
    model::FederatedTable {
        identifier: owned(f.identifier()),
        database_identifier: owned(f.database_identifier()),
        connection_name: owned(f.connection_name()),
        connection_type: owned(f.connection_type()),
    }
}

fn view_definition_from_sdk(v: &sdk::ViewDefinition) -> model::ViewDefinition {
    model::ViewDefinition {
        is_protected: v.is_protected(),
        definer: owned(v.definer()),
        representations: v.representations().iter().map(view_representation_from_sdk).collect(),
        sub_objects: v.sub_objects().to_vec(),
    }
}

fn view_representation_from_sdk(r: &sdk::ViewRepresentation) -> model::ViewRepresentation {
    model::ViewRepresentation {
        dialect: r.dialect().map(|d| d.as_str().to_owned()),
        dialect_version: owned(r.dialect_version()),
        view_original_text: owned(r.view_original_text()),
        view_expanded_text: owned(r.view_expanded_text()),
        validation_connection: owned(r.validation_connection()),
    }
}

fn sd_from_sdk(sd: &sdk::StorageDescriptor) -> model::StorageDescriptor {
    model::StorageDescriptor {
        columns: sd.columns().iter().map(column_from_sdk).collect(),
        location: owned(sd.location()),
        additional_locations: sd.additional_locations().to_vec(),
        input_format: owned(sd.input_format()),
        output_format: owned(sd.output_format()),
        compressed: sd.compressed(),
        number_of_buckets: sd.number_of_buckets(),
        serde_info: sd.serde_info().map(serde_info_from_sdk),
        bucket_columns: sd.bucket_columns().to_vec(),
        sort_columns: sd.sort_columns().iter().map(order_from_sdk).collect(),
        parameters: params_from_sdk(sd.parameters()),
        skewed_info: sd.skewed_info().map(skewed_info_from_sdk),
        stored_as_sub_directories: sd.stored_as_sub_directories(),
        schema_reference: sd.schema_reference().map(schema_reference_from_sdk),
    }
}

fn column_from_sdk(c: &sdk::Column) -> model::Column {
    model::Column {
        name: c.name().to_owned(),
        type_: owned(c.r#type()),
        comment: owned(c.comment()),
        parameters: params_from_sdk(c.parameters()),
    }
}

fn serde_info_from_sdk(s: &sdk::SerDeInfo) -> model::SerDeInfo {
    model::SerDeInfo {
        name: owned(s.name()),
        serialization_library: owned(s.serialization_library()),
        parameters: params_from_sdk(s.parameters()),
    }
}

fn order_from_sdk(o: &sdk::Order) -> model::Order {
    model::Order { column: o.column().to_owned(), sort_order: o.sort_order() }
}

fn skewed_info_from_sdk(s: &sdk::SkewedInfo) -> model::SkewedInfo {
    model::SkewedInfo {
        skewed_column_names: s.skewed_column_names().to_vec(),
        skewed_column_values: s.skewed_column_values().to_vec(),
        skewed_column_value_location_maps: params_from_sdk(s.skewed_column_value_location_maps()),
    }
}

fn schema_reference_from_sdk(r: &sdk::SchemaReference) -> model::SchemaReference {
    model::SchemaReference {
        schema_id: r.schema_id().map(schema_id_from_sdk),
        schema_version_id: owned(r.schema_version_id()),
        schema_version_number: r.schema_version_number(),
    }
}

fn schema_id_from_sdk(s: &sdk::SchemaId) -> model::SchemaId {
    model::SchemaId {
        schema_arn: owned(s.schema_arn()),
        schema_name: owned(s.schema_name()),
        registry_name: owned(s.registry_name()),
    }
}

// ---------------------------------------------------------------------------------------------
// Model -> SDK write inputs
// ---------------------------------------------------------------------------------------------

/// The `DatabaseInput` for `CreateDatabase`/`UpdateDatabase` (read-only metadata is not sent).
pub fn database_input(d: &model::Database) -> Result<sdk::DatabaseInput, ConvertError> {
    sdk::DatabaseInput::builder()
        .name(&d.name)
        .set_description(d.description.clone())
        .set_location_uri(d.location_uri.clone())
        .set_parameters(params_input(&d.parameters))
        .set_create_table_default_permissions(list_input(
            &d.create_table_default_permissions,
            principal_permissions_input,
        ))
        .set_target_database(d.target_database.as_ref().map(database_identifier_input))
        .set_federated_database(d.federated_database.as_ref().map(federated_database_input))
        .build()
        .map_err(|e| ConvertError::build("DatabaseInput", &d.name, e))
}

/// The `TableInput` for `CreateTable`/`UpdateTable` (read-only metadata is not sent; the
/// database name travels as a separate request parameter).
pub fn table_input(t: &model::Table) -> Result<sdk::TableInput, ConvertError> {
    sdk::TableInput::builder()
        .name(&t.name)
        .set_description(t.description.clone())
        .set_owner(t.owner.clone())
        .set_last_access_time(time_input(t.last_access_time))
        .set_last_analyzed_time(time_input(t.last_analyzed_time))
        .retention(t.retention)
        .set_storage_descriptor(t.storage_descriptor.as_ref().map(sd_input).transpose()?)
        .set_partition_keys(try_list_input(&t.partition_keys, column_input)?)
        .set_view_original_text(t.view_original_text.clone())
        .set_view_expanded_text(t.view_expanded_text.clone())
        .set_table_type(t.table_type.clone())
        .set_parameters(params_input(&t.parameters))
        .set_target_table(t.target_table.as_ref().map(table_identifier_input))
        .set_federated_table(t.federated_table.as_ref().map(federated_table_input))
        .set_view_definition(t.view_definition.as_ref().map(view_definition_input))
        .build()
        .map_err(|e| ConvertError::build("TableInput", format!("{}.{}", t.database_name, t.name), e))
}

/// The `PartitionInput` for `CreatePartition`/`UpdatePartition`/`BatchCreatePartition` (read-only
/// metadata is not sent; database and table names travel as separate request parameters).
pub fn partition_input(p: &model::Partition) -> Result<sdk::PartitionInput, ConvertError> {
    Ok(sdk::PartitionInput::builder()
        .set_values(strings_input(&p.values))
        .set_last_access_time(time_input(p.last_access_time))
        .set_storage_descriptor(p.storage_descriptor.as_ref().map(sd_input).transpose()?)
        .set_parameters(params_input(&p.parameters))
        .set_last_analyzed_time(time_input(p.last_analyzed_time))
        .build())
}

fn principal_permissions_input(p: &model::PrincipalPermissions) -> sdk::PrincipalPermissions {
    sdk::PrincipalPermissions::builder()
        .set_principal(
            p.principal.as_ref().map(|id| sdk::DataLakePrincipal::builder().data_lake_principal_identifier(id).build()),
        )
        .set_permissions(list_input(&p.permissions, |perm| sdk::Permission::from(perm.as_str())))
        .build()
}

fn database_identifier_input(d: &model::DatabaseIdentifier) -> sdk::DatabaseIdentifier {
    sdk::DatabaseIdentifier::builder()
        .set_catalog_id(d.catalog_id.clone())
        .set_database_name(d.database_name.clone())
        .set_region(d.region.clone())
        .build()
}

fn federated_database_input(f: &model::FederatedDatabase) -> sdk::FederatedDatabase {
    sdk::FederatedDatabase::builder()
        .set_identifier(f.identifier.clone())
        .set_connection_name(f.connection_name.clone())
        .set_connection_type(f.connection_type.clone())
        .build()
}

fn table_identifier_input(t: &model::TableIdentifier) -> sdk::TableIdentifier {
    sdk::TableIdentifier::builder()
        .set_catalog_id(t.catalog_id.clone())
        .set_database_name(t.database_name.clone())
        .set_name(t.name.clone())
        .set_region(t.region.clone())
        .build()
}

fn federated_table_input(f: &model::FederatedTable) -> sdk::FederatedTable {
    sdk::FederatedTable::builder()
        .set_identifier(f.identifier.clone())
        .set_database_identifier(f.database_identifier.clone())
        .set_connection_name(f.connection_name.clone())
        .set_connection_type(f.connection_type.clone())
        .build()
}

/// Only the fields the model records are set; Glue-managed ones (view version id and token,
/// refresh settings, sub-object versions and statistics) are left for Glue to fill in.
fn view_definition_input(v: &model::ViewDefinition) -> sdk::ViewDefinitionInput {
    sdk::ViewDefinitionInput::builder()
        .set_is_protected(v.is_protected)
        .set_definer(v.definer.clone())
        .set_representations(list_input(&v.representations, view_representation_input))
        .set_sub_objects(strings_input(&v.sub_objects))
        .build()
}

fn view_representation_input(r: &model::ViewRepresentation) -> sdk::ViewRepresentationInput {
    sdk::ViewRepresentationInput::builder()
        .set_dialect(r.dialect.as_deref().map(sdk::ViewDialect::from))
        .set_dialect_version(r.dialect_version.clone())
        .set_view_original_text(r.view_original_text.clone())
        .set_view_expanded_text(r.view_expanded_text.clone())
        .set_validation_connection(r.validation_connection.clone())
        .build()
}

fn sd_input(sd: &model::StorageDescriptor) -> Result<sdk::StorageDescriptor, ConvertError> {
    Ok(sdk::StorageDescriptor::builder()
        .set_columns(try_list_input(&sd.columns, column_input)?)
        .set_location(sd.location.clone())
        .set_additional_locations(strings_input(&sd.additional_locations))
        .set_input_format(sd.input_format.clone())
        .set_output_format(sd.output_format.clone())
        .compressed(sd.compressed)
        .number_of_buckets(sd.number_of_buckets)
        .set_serde_info(sd.serde_info.as_ref().map(serde_info_input))
        .set_bucket_columns(strings_input(&sd.bucket_columns))
        .set_sort_columns(try_list_input(&sd.sort_columns, order_input)?)
        .set_parameters(params_input(&sd.parameters))
        .set_skewed_info(sd.skewed_info.as_ref().map(skewed_info_input))
        .stored_as_sub_directories(sd.stored_as_sub_directories)
        .set_schema_reference(sd.schema_reference.as_ref().map(schema_reference_input))
        .build())
}

fn column_input(c: &model::Column) -> Result<sdk::Column, ConvertError> {
    sdk::Column::builder()
        .name(&c.name)
        .set_type(c.type_.clone())
        .set_comment(c.comment.clone())
        .set_parameters(params_input(&c.parameters))
        .build()
        .map_err(|e| ConvertError::build("Column", &c.name, e))
}

fn serde_info_input(s: &model::SerDeInfo) -> sdk::SerDeInfo {
    sdk::SerDeInfo::builder()
        .set_name(s.name.clone())
        .set_serialization_library(s.serialization_library.clone())
        .set_parameters(params_input(&s.parameters))
        .build()
}

fn order_input(o: &model::Order) -> Result<sdk::Order, ConvertError> {
    sdk::Order::builder()
        .column(&o.column)
        .sort_order(o.sort_order)
        .build()
        .map_err(|e| ConvertError::build("Order", &o.column, e))
}

fn skewed_info_input(s: &model::SkewedInfo) -> sdk::SkewedInfo {
    sdk::SkewedInfo::builder()
        .set_skewed_column_names(strings_input(&s.skewed_column_names))
        .set_skewed_column_values(strings_input(&s.skewed_column_values))
        .set_skewed_column_value_location_maps(params_input(&s.skewed_column_value_location_maps))
        .build()
}

fn schema_reference_input(r: &model::SchemaReference) -> sdk::SchemaReference {
    sdk::SchemaReference::builder()
        .set_schema_id(r.schema_id.as_ref().map(schema_id_input))
        .set_schema_version_id(r.schema_version_id.clone())
        .set_schema_version_number(r.schema_version_number)
        .build()
}

fn schema_id_input(s: &model::SchemaId) -> sdk::SchemaId {
    sdk::SchemaId::builder()
        .set_schema_arn(s.schema_arn.clone())
        .set_schema_name(s.schema_name.clone())
        .set_registry_name(s.registry_name.clone())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Params;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn column(name: &str, ty: &str) -> model::Column {
        model::Column {
            name: name.into(),
            type_: Some(ty.into()),
            comment: Some(format!("the {name} column")),
            parameters: params(&[("iceberg.field.id", "1")]),
        }
    }

    fn full_sd() -> model::StorageDescriptor {
        model::StorageDescriptor {
            columns: vec![column("id", "bigint"), column("payload", "string")],
            location: Some("s3://lake/sales/orders/".into()),
            additional_locations: strings(&["s3://lake-archive/sales/orders/"]),
            input_format: Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into()),
            output_format: Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat".into()),
            compressed: true,
            number_of_buckets: 8,
            serde_info: Some(model::SerDeInfo {
                name: Some("parquet".into()),
                serialization_library: Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into()),
                parameters: params(&[("serialization.format", "1")]),
            }),
            bucket_columns: strings(&["id"]),
            sort_columns: vec![
                model::Order { column: "id".into(), sort_order: 1 },
                model::Order { column: "payload".into(), sort_order: 0 },
            ],
            parameters: params(&[("classification", "parquet"), ("compressionType", "snappy")]),
            skewed_info: Some(model::SkewedInfo {
                skewed_column_names: strings(&["id"]),
                skewed_column_values: strings(&["42"]),
                skewed_column_value_location_maps: params(&[("42", "s3://lake/sales/orders/skew42/")]),
            }),
            stored_as_sub_directories: true,
            schema_reference: Some(model::SchemaReference {
                schema_id: Some(model::SchemaId {
                    schema_arn: Some("arn:aws:glue:eu-west-1:111122223333:schema/reg/orders".into()),
                    schema_name: Some("orders".into()),
                    registry_name: Some("reg".into()),
                }),
                schema_version_id: Some("6f0d3c2e-0000-4000-8000-000000000001".into()),
                schema_version_number: Some(3),
            }),
        }
    }

    fn full_table() -> model::Table {
        model::Table {
            database_name: "sales".into(),
            name: "orders".into(),
            description: Some("all orders".into()),
            owner: Some("data-eng".into()),
            last_access_time: Some(1_700_000_000_123),
            last_analyzed_time: Some(1_700_000_100_456),
            retention: 30,
            storage_descriptor: Some(full_sd()),
            partition_keys: vec![column("dt", "string"), column("region", "string")],
            view_original_text: Some("/* Presto View: e30= */".into()),
            view_expanded_text: Some("/* Presto View */".into()),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: params(&[("EXTERNAL", "TRUE"), ("projection.enabled", "false")]),
            target_table: Some(model::TableIdentifier {
                catalog_id: Some("444455556666".into()),
                database_name: Some("shared_sales".into()),
                name: Some("orders".into()),
                region: Some("us-east-1".into()),
            }),
            federated_table: Some(model::FederatedTable {
                identifier: Some("arn:aws:dynamodb:eu-west-1:111122223333:table/orders".into()),
                database_identifier: Some("default".into()),
                connection_name: Some("ddb".into()),
                connection_type: Some("DYNAMODB".into()),
            }),
            view_definition: Some(model::ViewDefinition {
                is_protected: Some(true),
                definer: Some("arn:aws:iam::111122223333:role/definer".into()),
                representations: vec![model::ViewRepresentation {
                    dialect: Some("ATHENA".into()),
                    dialect_version: Some("3".into()),
                    view_original_text: Some("SELECT * FROM sales.raw_orders".into()),
                    view_expanded_text: Some("SELECT id, payload FROM sales.raw_orders".into()),
                    validation_connection: Some("athena-validation".into()),
                }],
                sub_objects: strings(&["arn:aws:glue:eu-west-1:111122223333:table/sales/raw_orders"]),
            }),
            meta: model::TableMeta {
                catalog_id: Some("111122223333".into()),
                create_time: Some(1_600_000_000_000),
                update_time: Some(1_650_000_000_000),
                created_by: Some("arn:aws:iam::111122223333:role/crawler".into()),
                version_id: Some("7".into()),
                is_registered_with_lake_formation: true,
                is_multi_dialect_view: Some(true),
                is_materialized_view: Some(false),
            },
        }
    }

    fn full_database() -> model::Database {
        model::Database {
            name: "sales".into(),
            description: Some("sales data".into()),
            location_uri: Some("s3://lake/sales/".into()),
            parameters: params(&[("owner", "data-eng")]),
            create_table_default_permissions: vec![model::PrincipalPermissions {
                principal: Some("IAM_ALLOWED_PRINCIPALS".into()),
                permissions: strings(&["ALL", "SELECT"]),
            }],
            target_database: Some(model::DatabaseIdentifier {
                catalog_id: Some("444455556666".into()),
                database_name: Some("shared_sales".into()),
                region: Some("us-east-1".into()),
            }),
            federated_database: Some(model::FederatedDatabase {
                identifier: Some("arn:aws:redshift:eu-west-1:111122223333:namespace:x".into()),
                connection_name: Some("rs".into()),
                connection_type: Some("REDSHIFT".into()),
            }),
            meta: model::DatabaseMeta { catalog_id: Some("111122223333".into()), create_time: Some(1_600_000_000_000) },
        }
    }

    fn full_partition() -> model::Partition {
        model::Partition {
            database_name: "sales".into(),
            table_name: "orders".into(),
            values: strings(&["2024-01-01", "eu"]),
            last_access_time: Some(1_700_000_000_123),
            storage_descriptor: Some(full_sd()),
            parameters: params(&[("numRows", "1000")]),
            last_analyzed_time: Some(1_700_000_100_456),
            meta: model::PartitionMeta {
                catalog_id: Some("111122223333".into()),
                creation_time: Some(1_600_000_000_000),
            },
        }
    }

    /// The read type Glue would return for a table written with `input`, plus `meta`.
    fn sdk_table_from_input(input: &sdk::TableInput, db: &str, meta: &model::TableMeta) -> sdk::Table {
        let view_definition = input.view_definition.as_ref().map(|v| {
            sdk::ViewDefinition::builder()
                .set_is_protected(v.is_protected)
                .set_definer(v.definer.clone())
                .set_sub_objects(v.sub_objects.clone())
                .set_representations(v.representations.as_ref().map(|rs| {
                    rs.iter()
                        .map(|r| {
                            sdk::ViewRepresentation::builder()
                                .set_dialect(r.dialect.clone())
                                .set_dialect_version(r.dialect_version.clone())
                                .set_view_original_text(r.view_original_text.clone())
                                .set_view_expanded_text(r.view_expanded_text.clone())
                                .set_validation_connection(r.validation_connection.clone())
                                .build()
                        })
                        .collect()
                }))
                .build()
        });
        sdk::Table::builder()
            .name(input.name.clone())
            .database_name(db)
            .set_description(input.description.clone())
            .set_owner(input.owner.clone())
            .set_last_access_time(input.last_access_time)
            .set_last_analyzed_time(input.last_analyzed_time)
            .retention(input.retention)
            .set_storage_descriptor(input.storage_descriptor.clone())
            .set_partition_keys(input.partition_keys.clone())
            .set_view_original_text(input.view_original_text.clone())
            .set_view_expanded_text(input.view_expanded_text.clone())
            .set_table_type(input.table_type.clone())
            .set_parameters(input.parameters.clone())
            .set_target_table(input.target_table.clone())
            .set_federated_table(input.federated_table.clone())
            .set_view_definition(view_definition)
            .set_catalog_id(meta.catalog_id.clone())
            .set_create_time(time_input(meta.create_time))
            .set_update_time(time_input(meta.update_time))
            .set_created_by(meta.created_by.clone())
            .set_version_id(meta.version_id.clone())
            .is_registered_with_lake_formation(meta.is_registered_with_lake_formation)
            .set_is_multi_dialect_view(meta.is_multi_dialect_view)
            .set_is_materialized_view(meta.is_materialized_view)
            .build()
            .expect("table name is set")
    }

    #[test]
    fn table_round_trips_through_input_and_read_type() {
        let table = full_table();
        let input = table_input(&table).expect("table input");

        assert_eq!(input.name, "orders");
        assert_eq!(input.retention, 30);
        let view = input.view_definition.as_ref().expect("view definition is sent");
        assert_eq!(view.view_version_id, 0, "Glue-managed view version is not sent");
        assert_eq!(view.representations.as_ref().map(Vec::len), Some(1));
        assert_eq!(view.representations.as_ref().and_then(|r| r[0].dialect.clone()), Some(sdk::ViewDialect::Athena));

        let read = sdk_table_from_input(&input, "sales", &table.meta);
        let back = table_from_sdk(&read, "ignored");
        assert_eq!(back.writable(), table.writable());
        assert_eq!(back.meta, table.meta, "read-only fields land in meta");
    }

    #[test]
    fn table_database_name_falls_back_to_argument() {
        let read = sdk::Table::builder().name("t").build().expect("name is set");
        let t = table_from_sdk(&read, "queried_db");
        assert_eq!(t.database_name, "queried_db");
        assert_eq!(t.name, "t");
        assert_eq!(t, model::Table { database_name: "queried_db".into(), name: "t".into(), ..Default::default() });
    }

    #[test]
    fn database_round_trips_through_input_and_read_type() {
        let db = full_database();
        let input = database_input(&db).expect("database input");
        let perms = input.create_table_default_permissions.clone().unwrap_or_default();
        assert_eq!(perms[0].permissions(), &[sdk::Permission::All, sdk::Permission::Select]);

        let read = sdk::Database::builder()
            .name(input.name.clone())
            .set_description(input.description.clone())
            .set_location_uri(input.location_uri.clone())
            .set_parameters(input.parameters.clone())
            .set_create_table_default_permissions(input.create_table_default_permissions.clone())
            .set_target_database(input.target_database.clone())
            .set_federated_database(input.federated_database.clone())
            .set_catalog_id(db.meta.catalog_id.clone())
            .set_create_time(time_input(db.meta.create_time))
            .build()
            .expect("database name is set");
        let back = database_from_sdk(&read);
        assert_eq!(back.writable(), db.writable());
        assert_eq!(back.meta, db.meta);
    }

    #[test]
    fn partition_round_trips_through_input_and_read_type() {
        let part = full_partition();
        let input = partition_input(&part).expect("partition input");

        let read = sdk::Partition::builder()
            .set_values(input.values.clone())
            .database_name("sales")
            .table_name("orders")
            .set_last_access_time(input.last_access_time)
            .set_storage_descriptor(input.storage_descriptor.clone())
            .set_parameters(input.parameters.clone())
            .set_last_analyzed_time(input.last_analyzed_time)
            .set_catalog_id(part.meta.catalog_id.clone())
            .set_creation_time(time_input(part.meta.creation_time))
            .build();
        let back = partition_from_sdk(&read, "ignored_db", "ignored_table");
        assert_eq!(back.writable(), part.writable());
        assert_eq!(back.meta, part.meta);

        let anonymous = sdk::Partition::builder().set_values(input.values.clone()).build();
        let back = partition_from_sdk(&anonymous, "sales", "orders");
        assert_eq!((back.database_name.as_str(), back.table_name.as_str()), ("sales", "orders"));
    }

    #[test]
    fn empty_collections_are_sent_as_none() {
        let table = model::Table {
            database_name: "db".into(),
            name: "t".into(),
            storage_descriptor: Some(model::StorageDescriptor {
                columns: vec![model::Column { name: "c".into(), ..Default::default() }],
                serde_info: Some(model::SerDeInfo::default()),
                skewed_info: Some(model::SkewedInfo::default()),
                ..Default::default()
            }),
            view_definition: Some(model::ViewDefinition { definer: Some("me".into()), ..Default::default() }),
            ..Default::default()
        };
        let input = table_input(&table).expect("table input");
        assert!(input.partition_keys.is_none());
        assert!(input.parameters.is_none());
        let sd = input.storage_descriptor.as_ref().expect("sd");
        assert!(sd.columns.as_ref().is_some_and(|c| c[0].parameters.is_none()));
        assert!(sd.additional_locations.is_none());
        assert!(sd.bucket_columns.is_none());
        assert!(sd.sort_columns.is_none());
        assert!(sd.parameters.is_none());
        assert!(sd.serde_info.as_ref().is_some_and(|s| s.parameters.is_none()));
        let skew = sd.skewed_info.as_ref().expect("skewed info");
        assert!(skew.skewed_column_names.is_none());
        assert!(skew.skewed_column_values.is_none());
        assert!(skew.skewed_column_value_location_maps.is_none());
        let view = input.view_definition.as_ref().expect("view definition");
        assert_eq!(view.definer.as_deref(), Some("me"));
        assert!(view.is_protected.is_none());
        assert!(view.representations.is_none());
        assert!(view.sub_objects.is_none());

        let no_view = model::Table { view_definition: None, ..table };
        assert!(table_input(&no_view).expect("table input").view_definition.is_none());

        let db = model::Database {
            name: "db".into(),
            create_table_default_permissions: vec![model::PrincipalPermissions::default()],
            ..Default::default()
        };
        let input = database_input(&db).expect("database input");
        assert!(input.parameters.is_none());
        let perms = input.create_table_default_permissions.as_ref().expect("perms");
        assert!(perms[0].permissions.is_none());
        assert!(perms[0].principal.is_none());
        let input =
            database_input(&model::Database { name: "db".into(), ..Default::default() }).expect("database input");
        assert!(input.create_table_default_permissions.is_none());

        let part = model::Partition { database_name: "db".into(), table_name: "t".into(), ..Default::default() };
        let input = partition_input(&part).expect("partition input");
        assert!(input.values.is_none());
        assert!(input.parameters.is_none());
        assert!(input.storage_descriptor.is_none());
    }

    #[test]
    fn absent_sdk_collections_read_as_empty() {
        let read = sdk::Partition::builder().storage_descriptor(sdk::StorageDescriptor::builder().build()).build();
        let p = partition_from_sdk(&read, "db", "t");
        assert!(p.values.is_empty());
        assert!(p.parameters.is_empty());
        assert_eq!(p.storage_descriptor, Some(model::StorageDescriptor::default()));
    }

    #[test]
    fn build_error_names_object_and_message() {
        let err = sdk::Column::builder().build().map_err(|e| ConvertError::build("Column", "db.t.c", e));
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("cannot build Glue Column for db.t.c: "), "{msg}");
        assert!(msg.contains("name"), "{msg}");
    }
}
