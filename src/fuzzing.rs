//! Entry points for the `cargo fuzz` targets in `fuzz/` (see fuzz/README.md).
//! Each hands untrusted bytes to the decoding code the daemon runs — not a
//! copy of it — so a crash found here is a crash of the daemon. Not an API.

use std::sync::Arc;

use crate::discovery::ServiceTable;
use crate::net::{self, Channel};

/// Reads `data` as a p2p stream (one length-prefixed frame), and reads both
/// that frame and `data` itself as a request frame: a channel byte, then a
/// body decoded as each message and reply of that channel.
pub fn p2p(data: &[u8]) {
    let mut stream = futures::io::Cursor::new(data);
    if let Ok(frame) = futures::executor::block_on(net::read_frame(&mut stream)) {
        assert!(
            frame.len() <= net::MAX_FRAME_BYTES && frame.len() + 4 <= data.len(),
            "a frame longer than the limit or than the bytes sent"
        );
        request_frame(&frame);
    }
    request_frame(data);
}

fn request_frame(frame: &[u8]) {
    let Some((&first, body)) = frame.split_first() else {
        return;
    };
    match Channel::from_u8(first) {
        Some(c @ (Channel::Raft | Channel::Store)) => {
            std::hint::black_box(crate::store::decode_peer_body(c, body));
        }
        Some(Channel::Logs) => {
            std::hint::black_box(crate::agent::logs::decode_peer_body(body));
        }
        Some(Channel::Exec) => {
            std::hint::black_box(crate::agent::exec::decode_peer_body(body));
        }
        Some(Channel::Usage) => {
            std::hint::black_box(crate::agent::usage::decode_peer_body(body));
        }
        Some(Channel::Gossip) => {
            std::hint::black_box(crate::membership::feed_gossip([body]));
        }
        None => {}
    }
}

/// Feeds `bodies`, in order, to one fresh gossip instance as one peer's
/// gossip-channel requests; returns how many decoded.
pub fn gossip<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> usize {
    crate::membership::feed_gossip(bodies)
}

/// The DNS server's answer to the raw UDP message `raw`, for the zone of
/// `domain` serving `table`; `None` when the server sends nothing back.
pub fn dns(domain: &str, table: Arc<ServiceTable>, raw: &[u8]) -> Option<Vec<u8>> {
    crate::discovery::dns::answer_raw(domain, table, raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let path = e.expect("seed entry").path();
                let bytes = std::fs::read(&path).expect("seed bytes");
                (path, bytes)
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds in {}", dir.display());
        out
    }

    /// The fuzz targets' seeds go through the same entry points in every
    /// `cargo test`, and are what they claim to be: real messages that decode.
    #[test]
    fn the_fuzz_seeds_decode() {
        for (_, bytes) in seeds("p2p") {
            p2p(&bytes);
        }
        for (path, bytes) in seeds("gossip") {
            let mut bodies = Vec::new();
            let mut rest = bytes.as_slice();
            while rest.len() >= 2 {
                let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
                bodies.push(&rest[2..2 + len]);
                rest = &rest[2 + len..];
            }
            assert_eq!(
                gossip(bodies.iter().copied()),
                bodies.len(),
                "{}",
                path.display()
            );
        }
        let table = Arc::new(ServiceTable::default());
        for (path, bytes) in seeds("dns") {
            let reply = dns("shoal", table.clone(), &bytes)
                .unwrap_or_else(|| panic!("{}: no answer", path.display()));
            let parsed = hickory_server::proto::op::Message::from_vec(&reply).expect("answer");
            assert_eq!(
                parsed.metadata.id.to_be_bytes(),
                bytes[..2],
                "{}",
                path.display()
            );
        }
        for (path, bytes) in seeds("manifest") {
            let text = String::from_utf8(bytes).expect("utf-8");
            let parsed = if path.extension().is_some_and(|e| e == "json") {
                let value = serde_json::from_str(&text).expect("json");
                crate::manifest::object_from_json(value).map(|_| ())
            } else {
                crate::manifest::parse_manifests(&text).map(|_| ())
            };
            // Some are kinds shoal refuses (HPA, CronJob): seeds of the error paths.
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if [
                "nginx-deployment.yaml",
                "pod.json",
                "service-configmap-secret.yaml",
            ]
            .contains(&name)
            {
                parsed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}
