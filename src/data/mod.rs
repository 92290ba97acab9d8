//! `data` layer: load any instruction dataset, normalize it to canonical records,
//! hold it as a polars frame, filter it, describe it, and export it.

pub mod frame;
pub mod load;
pub mod mapping;
pub mod normalize;
pub mod reader;
pub mod record;

pub use load::{LoadOptions, Loaded, load_dataset};
pub use mapping::{Format, Mapping, MappingFile};
pub use record::{Message, Record};
pub mod export;
pub mod filter;
pub mod stats;
