//! Coalescing of concurrent requests: whatever queued up while the previous
//! batch was in flight goes out as the next batch. Under no load a request
//! leaves at once, alone; under load batches grow by themselves.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

/// Starts a task that hands queued items to `handle` in batches of at most
/// `max_batch`, with at most `in_flight` batches running at once.
pub(super) fn spawn_batcher<T, F, Fut>(
    max_batch: usize,
    in_flight: usize,
    handle: F,
) -> mpsc::UnboundedSender<T>
where
    T: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<T>();
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(in_flight));
        let handle = Arc::new(handle);
        while let Some(first) = rx.recv().await {
            // Waiting for a slot is what lets the next batch grow under load.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let handle = handle.clone();
            tokio::spawn(async move {
                handle(batch).await;
                drop(permit);
            });
        }
    });
    tx
}
