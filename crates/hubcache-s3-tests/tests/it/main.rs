//! The S3 store, end to end.
