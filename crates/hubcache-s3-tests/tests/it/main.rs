//! The S3 store end to end: s3s-fs in process (SigV4 checked), mirrors over it, the real
//! `hubcache` binary and Python huggingface_hub where it matters.

#![allow(clippy::unwrap_used)]

mod common;
mod faults;
mod fill;
mod pull;
mod python;
mod serve;
