//! One module per command: clap arguments, the call into the library, and what is printed.

pub mod cache;
pub mod deploy;
pub mod download;
pub mod env;
pub mod model;
pub mod plan;
pub mod serve;
pub mod store;
