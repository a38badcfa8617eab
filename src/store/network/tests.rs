use super::*;

/// Any connected peer could append, vote and write: the handlers ignored
/// the sender. A node outside the configuration is now refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_the_configuration_cannot_write_vote_or_append() {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (net_a, a, info_a) = super::super::testing::open(da.path(), "a").await;
    let (net_b, b, _) = super::super::testing::open(db.path(), "b").await;
    super::super::testing::lead_alone(&a, info_a.clone()).await;
    let pod = crate::resource::ObjectKey::new(crate::resource::Kind::ConfigMap, "default", "x");
    let cmd = Command {
        ops: vec![super::super::Op::Put {
            key: pod.clone(),
            object: br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}"#.to_vec(),
            precondition: super::super::Precondition::None,
        }],
    };
    let write = call_leader(&net_b, &info_a, StoreRpc::Write(vec![cmd])).await;
    let Err(e) = write else {
        panic!("a stranger's write was served");
    };
    assert!(e.to_string().contains(NOT_A_MEMBER), "{e}");
    assert!(
        a.get(&pod).expect("read").is_none(),
        "the write was applied"
    );
    // A vote request at a far higher term would depose the leader.
    let vote = RaftRpc::Vote(VoteRequest::new(
        openraft::Vote::new(1_000, node_id_of_peer(&net_b)),
        None,
    ));
    let peer = info_a.peer().expect("peer id");
    let res = net_b
        .request(
            peer,
            info_a.multiaddrs(),
            Channel::Raft,
            encode(&vote).expect("encode"),
        )
        .await;
    assert!(
        matches!(&res, Err(NetError::Remote { msg, .. }) if msg.contains(NOT_A_MEMBER)),
        "{res:?}"
    );
    assert_eq!(
        a.leader().map(|(id, _)| id),
        Some(a.node_id()),
        "the leader was deposed"
    );
    assert!(a.metrics().current_term < 1_000);
    // Asking who the voters are stays open to keyed peers (a removed node asks).
    let voters = forward_voters(&net_b, &info_a).await.expect("voters");
    assert_eq!(voters, vec![a.node_id()]);
    for (net, store) in [(net_a, a), (net_b, b)] {
        store.shutdown().await;
        net.shutdown().await;
    }
}

/// An older version could write an entry larger than a frame: a follower
/// never got past it (the frame was refused before it was sent, again and
/// again). It now goes in pieces and every replica applies it as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_larger_than_a_frame_reaches_a_new_member() {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (net_a, a, info_a) = super::super::testing::open(da.path(), "a").await;
    let (net_b, b, info_b) = super::super::testing::open(db.path(), "b").await;
    super::super::testing::lead_alone(&a, info_a).await;
    let key = crate::resource::ObjectKey::new(crate::resource::Kind::ConfigMap, "default", "huge");
    let len = crate::net::MAX_FRAME_BYTES + 2 * 1024 * 1024;
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "huge", "namespace": "default"},
        "data": {"v": "x".repeat(len)},
    });
    let cmd = Command {
        ops: vec![super::super::Op::Put {
            key: key.clone(),
            object: serde_json::to_vec(&object).expect("json"),
            precondition: super::super::Precondition::None,
        }],
    };
    drop(object);
    // Straight into the log, past Store::write's size checks, as an
    // older version wrote it.
    a.raft()
        .client_write(super::super::Proposal(vec![cmd]))
        .await
        .expect("committed on the leader alone");
    a.raft()
        .add_learner(b.node_id(), info_b, false)
        .await
        .expect("add b");
    let target = a.metrics().last_log_index;
    // Minutes in a debug build: each try reads the entry from the log
    // and encodes it byte by byte. 25 s alone here, over 120 s among the
    // other lib tests on CI's two cores: the deadline only catches a stuck
    // follower, so it is generous.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(420);
    loop {
        let applied = b.metrics().last_applied.map(|l| l.index);
        if applied >= target {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b is stuck at {applied:?}, the leader's log ends at {target:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = b.get(&key).expect("read").expect("b holds the object");
    assert_eq!(
        got.body
            .get("data")
            .and_then(|d| d.get("v"))
            .and_then(|v| v.as_str())
            .map(str::len),
        Some(len)
    );
    assert_eq!(a.state_bytes(), b.state_bytes());
    for (net, store) in [(net_a, a), (net_b, b)] {
        store.shutdown().await;
        net.shutdown().await;
    }
}

/// A member's pieces are bounded and must follow on from what is held.
#[test]
fn staging_takes_pieces_in_order_and_within_the_ceiling() {
    let staging = Staging::default();
    let peer = PeerId::random();
    let id = LogId::new(openraft::CommittedLeaderId::new(1, 1), 7);
    let entry = Entry::<TypeConfig> {
        log_id: id,
        payload: openraft::EntryPayload::Blank,
    };
    let bytes = encode(&entry).expect("encode");
    let total = bytes.len() as u64;
    assert!(staging.put(peer, id, MAX_STAGED_BYTES + 1, 0, &[]).is_err());
    assert_eq!(staging.put(peer, id, total, 0, &bytes[..2]), Ok(2));
    // Out of order: nothing added, the sender learns where to go on.
    assert_eq!(staging.put(peer, id, total, 1, &bytes[1..]), Ok(2));
    assert!(staging.take_entry(&peer, id).is_err(), "not whole yet");
    assert_eq!(staging.put(peer, id, total, 2, &bytes[2..]), Ok(total));
    assert_eq!(staging.take_entry(&peer, id).expect("whole").log_id, id);
    // Another peer's entry is its own.
    assert!(staging.take_entry(&PeerId::random(), id).is_err());
    // Appends past it let it go.
    staging.passed(&peer, Some(id));
    assert!(staging.take_entry(&peer, id).is_err());
    // Bytes that are not the entry they claim to be are refused.
    let other = LogId::new(openraft::CommittedLeaderId::new(1, 1), 8);
    assert!(staging.put(peer, other, total, 0, &bytes).is_err());
    assert!(staging.take_entry(&peer, other).is_err());
}

fn node_id_of_peer(net: &Net) -> NodeId {
    super::super::node_id_of(&net.peer_id())
}

/// A peer's bytes are untrusted: garbage, truncations and huge length
/// prefixes must decode to errors, never panic or allocate wildly.
#[test]
fn undecodable_peer_bytes_are_errors() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..512usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = decode::<RaftRpc>(&bytes);
        let _ = decode::<StoreRpc>(&bytes);
        let _ = decode::<StoreReply>(&bytes);
    }
    // A vector claiming u64::MAX elements.
    let mut huge = vec![0u8]; // StoreRpc::Write
    huge.push(253);
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode::<StoreRpc>(&huge).is_err());
    // A valid message truncated at every point.
    let cmd = Command {
        ops: vec![super::super::Op::Delete {
            key: crate::resource::ObjectKey::new(crate::resource::Kind::Pod, "default", "x"),
            precondition: super::super::Precondition::None,
        }],
    };
    let full = encode(&StoreRpc::Write(vec![cmd])).expect("encode");
    for cut in 0..full.len() {
        assert!(
            decode::<StoreRpc>(&full[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    assert!(decode::<StoreRpc>(&full).is_ok());
}

/// Found by the p2p fuzz target (a 48 MiB allocation from 23 bytes): a
/// Store write whose key's string claims 50,331,647 bytes. bincode
/// reserves a claimed length before reading it, up to its limit (then
/// 64 MiB); the limit now follows the input's size, so the claim is
/// refused before anything is reserved.
#[test]
fn a_huge_string_length_in_a_small_message_is_refused_before_allocating() {
    let frame = [
        2u8, 0, 252, 220, 0, 240, 128, 1, 0, 0, 0, 252, 255, 255, 255, 2, 2, 234, 200, 53, 1, 0, 0,
    ];
    assert_eq!(crate::net::Channel::from_u8(frame[0]), Some(Channel::Store));
    let err = decode::<StoreRpc>(&frame[1..])
        .err()
        .expect("must not decode");
    assert!(
        matches!(err, bincode::error::DecodeError::LimitExceeded),
        "refused only after reserving the claim: {err}"
    );
    assert_eq!(decode_peer_body(Channel::Store, &frame[1..]), 0);
}
