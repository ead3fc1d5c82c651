//! lakelog's own data model: catalog objects, change records and their wire format.
//! Nothing in here knows about the AWS SDK; conversions live in `crate::aws`.

pub mod catalog;
pub mod codec;
pub mod fields;
pub mod filter;
pub mod lakeformation;
pub mod principal;
pub mod record;
pub mod seqno;
pub mod tagged;

pub use catalog::*;
pub use record::*;
