//! Following a container's log file.

use super::*;

/// State of a log stream between items.
pub(super) struct LogReader {
    pub(super) file: tokio::fs::File,
    pub(super) inner: Arc<Inner>,
    pub(super) id: String,
    pub(super) follow: bool,
    /// The container has ended: read to the end of the file, then stop.
    pub(super) draining: bool,
}

impl LogReader {
    pub(super) async fn next(mut self) -> Option<(Result<Bytes, RuntimeError>, Option<LogReader>)> {
        loop {
            let mut buf = vec![0u8; LOG_CHUNK];
            match self.file.read(&mut buf).await {
                Err(e) => {
                    return Some((
                        Err(RuntimeError::Io {
                            op: "read container log",
                            source: e,
                        }),
                        None,
                    ));
                }
                Ok(0) => {
                    if !self.follow || self.draining {
                        return None;
                    }
                    // Whatever it wrote before it exited is in the file by
                    // now: one more pass to the end reads all of it.
                    if !self.inner.is_running(&self.id).await {
                        self.draining = true;
                        continue;
                    }
                    tokio::time::sleep(LOG_POLL).await;
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Some((Ok(Bytes::from(buf)), Some(self)));
                }
            }
        }
    }
}
