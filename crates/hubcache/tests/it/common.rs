//! Helpers shared by the library's integration tests.

use std::path::Path;
use std::time::Duration;

use hubcache::hub::RetryPolicy;
use hubcache::HubBuilder;
use hubcache_test_support::FakeHub;

/// A hub on the fake Hub with `retries` fast retries (10 ms doubling to 40 ms) and metadata and
/// read timeouts of `timeout`, so fault tests finish in milliseconds.
pub fn fast_builder(hub: &FakeHub, cache: &Path, retries: u32, timeout: Duration) -> HubBuilder {
    HubBuilder::new(hub.url(), cache)
        .retry(RetryPolicy {
            max_retries: retries,
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        })
        .resume_delay(Duration::from_millis(10))
        .read_timeout(timeout)
        .etag_timeout(timeout)
}
