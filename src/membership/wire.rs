//! What membership puts on the wire: foca's identity and codec, the
//! messages of the `Gossip` channel, and each member's metadata. Every
//! decode is bounded; a peer's bytes never panic us.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut};
use foca::{Header, Identity, Member};
use serde::{Deserialize, Serialize};

/// Largest gossip message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// A member's SWIM identity: its PeerId, one address to dial, and a bump
/// that grows each time the process restarts (or renews after being
/// declared down), so the newest incarnation of a host wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// PeerId bytes.
    pub peer: Vec<u8>,
    /// A multiaddr (bytes) the member listens on.
    pub addr: Vec<u8>,
    /// Grows with restarts and renewals.
    pub bump: u64,
}

impl Identity for MemberId {
    type Addr = Vec<u8>;

    fn renew(&self) -> Option<Self> {
        Some(MemberId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> Vec<u8> {
        self.peer.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// Errors decoding or encoding gossip.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("gossip encode: {0}")]
    Encode(String),
    #[error("gossip decode: {0}")]
    Decode(String),
    #[error("gossip buffer too small")]
    NoRoom,
}

fn put(value: &impl Serialize, mut buf: impl BufMut) -> Result<(), WireError> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    if buf.remaining_mut() < bytes.len() {
        return Err(WireError::NoRoom);
    }
    buf.put_slice(&bytes);
    Ok(())
}

fn take<T: serde::de::DeserializeOwned>(mut buf: impl Buf) -> Result<T, WireError> {
    // foca hands us contiguous slices; a split buffer would just fail to decode.
    let (v, n) = crate::net::decode_bounded::<T, MAX_MESSAGE>(buf.chunk())
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if n > buf.remaining() {
        return Err(WireError::Decode("length past the end".into()));
    }
    buf.advance(n);
    Ok(v)
}

/// foca's codec: bincode with a size limit.
pub struct Codec;

impl foca::Codec<MemberId> for Codec {
    type Error = WireError;

    fn encode_header(
        &mut self,
        header: &Header<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), WireError> {
        put(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<MemberId>, WireError> {
        take(buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), WireError> {
        put(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<MemberId>, WireError> {
        take(buf)
    }
}

/// Decodes only the header of a SWIM packet (to time probes).
pub fn peek_header(data: &[u8]) -> Option<Header<MemberId>> {
    take(data).ok()
}

/// What a node publishes about itself; it changes while the node runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Grows with every change (and across restarts: it starts from the clock).
    pub version: u64,
    /// Node name.
    pub name: String,
    /// PeerId, base58.
    pub peer_id: String,
    /// p2p multiaddrs.
    pub p2p_addrs: Vec<String>,
    /// HTTP API address.
    pub api_addr: String,
    /// CPU capacity in millicores.
    pub cpu_millis: u64,
    /// Memory capacity in bytes.
    pub memory_bytes: u64,
    /// Labels from the config.
    pub labels: BTreeMap<String, String>,
    /// shoal's version.
    pub shoal_version: String,
    /// This node's place in the Raft group.
    pub raft_role: RaftRole,
    /// Container runtime.
    pub runtime: String,
    /// Set when the node is leaving on purpose.
    pub leaving: bool,
}

/// A node's place in the Raft group, as gossip publishes it. On the wire
/// (and in JSON) it is the lowercase word, as it was when it was a string,
/// so nodes of either version read each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RaftRole {
    /// Not in a Raft group (yet).
    #[default]
    None,
    /// Receives the log, does not vote.
    Learner,
    /// Votes.
    Voter,
    /// Leads.
    Leader,
}

impl RaftRole {
    /// The word gossip and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::None => "none",
            RaftRole::Learner => "learner",
            RaftRole::Voter => "voter",
            RaftRole::Leader => "leader",
        }
    }

    /// In the group, as a learner, voter or leader.
    pub fn in_cluster(self) -> bool {
        self != RaftRole::None
    }

    /// A voter or the leader.
    pub fn votes(self) -> bool {
        matches!(self, RaftRole::Voter | RaftRole::Leader)
    }
}

impl std::fmt::Display for RaftRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RaftRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RaftRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        // An unknown word (a newer peer's) reads as not in the group rather
        // than failing the whole metadata.
        Ok(match word.as_str() {
            "learner" => RaftRole::Learner,
            "voter" => RaftRole::Voter,
            "leader" => RaftRole::Leader,
            _ => RaftRole::None,
        })
    }
}

/// A message on the `Gossip` channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum Wire {
    /// A SWIM packet for foca.
    Swim(Vec<u8>),
    /// Asks for the receiver's metadata.
    GetMeta,
    /// The sender's metadata, pushed after a change.
    PushMeta(Meta),
}

/// Encodes a gossip message.
pub fn encode(w: &Wire) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(w, config()).map_err(|e| WireError::Encode(e.to_string()))
}

/// Decodes a gossip message (bounded).
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, WireError> {
    if b.len() > MAX_MESSAGE {
        return Err(WireError::Decode("message too large".into()));
    }
    take(b)
}

#[cfg(test)]
mod tests {

    /// The role travels as the word it was when it was a string, so a node
    /// of the previous version reads this one's metadata and the reverse.
    #[test]
    fn raft_role_is_the_old_string_on_the_wire() {
        for (role, word) in [
            (RaftRole::None, "none"),
            (RaftRole::Learner, "learner"),
            (RaftRole::Voter, "voter"),
            (RaftRole::Leader, "leader"),
        ] {
            let new = bincode::serde::encode_to_vec(role, config()).unwrap();
            let old = bincode::serde::encode_to_vec(word.to_string(), config()).unwrap();
            assert_eq!(new, old);
            let (back, _): (RaftRole, usize) =
                bincode::serde::decode_from_slice(&old, config()).unwrap();
            assert_eq!(back, role);
            assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(word));
        }
        let (odd, _): (RaftRole, usize) = bincode::serde::decode_from_slice(
            &bincode::serde::encode_to_vec("observer".to_string(), config()).unwrap(),
            config(),
        )
        .unwrap();
        assert_eq!(odd, RaftRole::None);
    }

    use super::*;
    use foca::Codec as _;

    #[test]
    fn newer_bump_wins() {
        let a = MemberId {
            peer: vec![1],
            addr: vec![],
            bump: 5,
        };
        let b = a.renew().unwrap();
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
        assert_eq!(a.addr(), b.addr());
    }

    #[test]
    fn garbage_never_panics() {
        let mut c = Codec;
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = c.decode_header(&junk[..]);
            let _ = c.decode_member(&junk[..]);
            let _ = decode::<Wire>(&junk);
        }
        // A length prefix claiming gigabytes is refused, not allocated.
        let huge = [0xfc, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode::<Wire>(&huge).is_err());
    }

    #[test]
    fn header_round_trip() {
        let id = MemberId {
            peer: vec![1, 2, 3],
            addr: vec![4],
            bump: 9,
        };
        let h = Header {
            src: id.clone(),
            src_incarnation: 3,
            dst: id,
            message: foca::Message::Ping(7),
        };
        let mut buf = Vec::new();
        Codec.encode_header(&h, &mut buf).unwrap();
        assert_eq!(peek_header(&buf), Some(h));
    }
}
