//! A sequence of gossip-channel requests from one peer, fed to one SWIM
//! instance: each is a 2-byte little-endian length and that many bytes;
//! what is left at the end is the last one.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MAX_BODIES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut bodies = Vec::new();
    let mut rest = data;
    while bodies.len() < MAX_BODIES - 1 && rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        if rest.len() - 2 < len {
            break;
        }
        bodies.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    if !rest.is_empty() {
        bodies.push(rest);
    }
    shoal::fuzzing::gossip(bodies);
});
