//! What a peer sends on the p2p port once the transport is up: a
//! length-prefixed frame, whose first byte picks the channel (Raft, Store,
//! Logs, Gossip) and whose rest each channel decodes with bincode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shoal::fuzzing::p2p(data);
});
