//! Coalescing of concurrent requests: whatever queued up while the previous
//! batch was in flight goes out as the next batch. Under no load a request
//! leaves at once, alone; under load batches grow by themselves.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

/// Starts a task that hands queued items to `handle` in batches of at most
/// `max_batch` items and `max_bytes` (by `size_of`; a single larger item
/// still goes out, alone), with at most `in_flight` batches running at once.
pub(super) fn spawn_batcher<T, F, Fut>(
    max_batch: usize,
    max_bytes: usize,
    size_of: fn(&T) -> usize,
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
        // An item that did not fit the previous batch opens the next one.
        let mut held: Option<T> = None;
        loop {
            let first = match held.take() {
                Some(item) => item,
                None => match rx.recv().await {
                    Some(item) => item,
                    None => return,
                },
            };
            // Waiting for a slot is what lets the next batch grow under load.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut bytes = size_of(&first);
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(item) => {
                        let size = size_of(&item);
                        if bytes.saturating_add(size) > max_bytes {
                            held = Some(item);
                            break;
                        }
                        bytes += size;
                        batch.push(item);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_are_bounded_in_items_and_bytes() {
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Vec<usize>>();
        let gate = Arc::new(tokio::sync::Notify::new());
        let tx = spawn_batcher(4, 100, |n: &usize| *n, 1, {
            let gate = gate.clone();
            move |batch: Vec<usize>| {
                let seen_tx = seen_tx.clone();
                let gate = gate.clone();
                async move {
                    let _ = seen_tx.send(batch);
                    gate.notified().await;
                }
            }
        });
        // The first goes alone; the rest queue behind it.
        tx.send(1).expect("send");
        assert_eq!(seen_rx.recv().await, Some(vec![1]));
        for n in [10, 10, 10, 10, 10, 60, 50, 500, 1] {
            tx.send(n).expect("send");
        }
        let mut batches = Vec::new();
        for _ in 0..5 {
            gate.notify_one();
            batches.push(seen_rx.recv().await.expect("a batch"));
        }
        gate.notify_one();
        assert_eq!(
            batches,
            vec![
                vec![10, 10, 10, 10],
                vec![10, 60],
                vec![50],
                vec![500],
                vec![1]
            ]
        );
    }
}
