//! Helpers for the S3 store tests and benchmark: an in-process s3s-fs, a fault proxy.
