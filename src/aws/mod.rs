pub mod glue_convert;
