//! Many files in flight at once (snapshots, `sync`): small files are latency-bound, so many of
//! them run together; each file is admitted against a memory budget by what its transfer may
//! hold in its queues, so many mid-size files or several large ones never add up past it. The
//! connections they open are bounded separately by the client's connection budget.

use std::future::Future;

use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use crate::hub::transfer::RangedConfig;

/// Bytes the transfers of one fan-out may hold in their queues together.
pub(crate) const MEMORY_BUDGET: u64 = 32 << 20;
/// Most a plain stream holds queued (its write and hash queues).
const STREAM_MEMORY: u64 = 4 << 20;
/// Least a transfer is counted for (buffers, a connection's read buffer).
const MIN_MEMORY: u64 = 16 << 10;
/// Budget unit (permits are counted in KiB).
const UNIT: u64 = 1 << 10;

/// What a transfer of a file of `size` bytes may hold: its size up to a plain stream's queues,
/// half the budget for a file fetched in ranged parts (two of them may run together).
pub(crate) fn memory_weight(size: Option<u64>, ranged: &RangedConfig) -> u64 {
    match size {
        Some(s) if ranged.use_ranged(Some(s), s) => MEMORY_BUDGET / 2,
        Some(s) => s.clamp(MIN_MEMORY, STREAM_MEMORY),
        None => STREAM_MEMORY,
    }
}

/// Runs `work` on every item, at most `max_in_flight` at once and within [`MEMORY_BUDGET`] by
/// `weight`; results in completion order.
pub(crate) async fn fan_out<T, R, Fut>(
    items: Vec<T>,
    max_in_flight: usize,
    weight: impl Fn(&T) -> u64,
    work: impl Fn(T) -> Fut,
) -> Vec<R>
where
    Fut: Future<Output = R>,
{
    let budget_units = units(MEMORY_BUDGET);
    let memory = Semaphore::new(budget_units as usize);
    let memory = &memory;
    let work = &work;
    stream::iter(items.into_iter().map(|item| {
        let need = units(weight(&item)).clamp(1, budget_units);
        async move {
            // Fair (FIFO): a heavy file waits its turn instead of being overtaken forever.
            let _held = memory.acquire_many(need).await.ok();
            work(item).await
        }
    }))
    .buffer_unordered(max_in_flight.max(1))
    .collect()
    .await
}

fn units(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn weights_follow_what_a_transfer_may_queue() {
        let r = RangedConfig::default();
        assert_eq!(memory_weight(Some(4096), &r), MIN_MEMORY);
        assert_eq!(memory_weight(Some(1 << 20), &r), 1 << 20);
        assert_eq!(memory_weight(Some(20 << 20), &r), STREAM_MEMORY);
        assert_eq!(memory_weight(Some(1 << 30), &r), MEMORY_BUDGET / 2);
        assert_eq!(memory_weight(None, &r), STREAM_MEMORY);
    }

    /// Many small items run together up to the count; heavy ones are held to the budget.
    #[tokio::test]
    async fn in_flight_is_bounded_by_count_and_memory() {
        async fn peak(items: Vec<u64>, max: usize) -> (u64, u64) {
            let now = AtomicU64::new(0);
            let peak = AtomicU64::new(0);
            let bytes_now = AtomicU64::new(0);
            let bytes_peak = AtomicU64::new(0);
            fan_out(
                items,
                max,
                |w| *w,
                |w| {
                    let (now, peak, bytes_now, bytes_peak) = (&now, &peak, &bytes_now, &bytes_peak);
                    async move {
                        peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        bytes_peak.fetch_max(bytes_now.fetch_add(w, Ordering::SeqCst) + w, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        bytes_now.fetch_sub(w, Ordering::SeqCst);
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                },
            )
            .await;
            (peak.into_inner(), bytes_peak.into_inner())
        }
        let (n, _) = peak(vec![MIN_MEMORY; 200], 64).await;
        assert_eq!(n, 64, "small files: the count bounds them");
        let (n, bytes) = peak(vec![STREAM_MEMORY; 40], 64).await;
        assert_eq!(
            n,
            (MEMORY_BUDGET / STREAM_MEMORY),
            "mid-size files: the memory budget bounds them"
        );
        assert!(bytes <= MEMORY_BUDGET);
        // An item heavier than the whole budget still runs, alone.
        let (n, _) = peak(vec![MEMORY_BUDGET * 4, 1], 8).await;
        assert_eq!(n, 1);
    }
}
