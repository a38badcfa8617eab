use super::*;

#[tokio::test]
async fn oversized_frame_is_refused_before_allocation() {
    let mut data = Vec::new();
    data.extend_from_slice(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes());
    let mut cursor = futures::io::Cursor::new(data);
    let err = read_frame(&mut cursor).await.expect_err("must refuse");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

/// Seen while writing the p2p fuzz target, whose 16 MiB allocation
/// limit it breaks: a frame header alone, 4 bytes claiming the maximum,
/// made the reader allocate all 32 MiB before any of it arrived. Now a
/// short frame is an end-of-stream error that says how much came; the
/// allocation bound itself is what `.ci/fuzz` checks.
#[tokio::test]
async fn a_frame_length_alone_reserves_little_memory() {
    let claimed = MAX_FRAME_BYTES as u32;
    let mut data = claimed.to_be_bytes().to_vec();
    data.extend_from_slice(b"only a few bytes");
    let err = read_frame(&mut futures::io::Cursor::new(data))
        .await
        .expect_err("a short frame is an error");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(err.to_string().contains("16 of 33554432"), "{err}");

    let mut whole = 5u32.to_be_bytes().to_vec();
    whole.extend_from_slice(b"hello trailing");
    let frame = read_frame(&mut futures::io::Cursor::new(whole))
        .await
        .expect("a whole frame");
    assert_eq!(frame, b"hello");
}

/// A string may claim no more than the input holds (up to the size
/// class of the input), so the claim is refused before it is reserved;
/// a message that needs the whole limit still decodes.
#[test]
fn bincode_claims_are_bounded_by_the_input() {
    use bincode::error::DecodeError;
    // A 2 MiB string's length, and nothing of it.
    let claim =
        bincode::serde::encode_to_vec(1u64 << 21, bincode::config::standard()).expect("encode");
    let err = decode_bounded::<String, { 64 << 20 }>(&claim).expect_err("no string");
    assert!(matches!(err, DecodeError::LimitExceeded), "{err}");

    for len in [0, 4096, 4097, 300 * 1024, 5 << 20] {
        let s = "x".repeat(len);
        let bytes = bincode::serde::encode_to_vec(&s, bincode::config::standard()).expect("encode");
        let (back, used) = decode_bounded::<String, { 64 << 20 }>(&bytes).expect("decodes");
        assert_eq!((back.len(), used), (len, bytes.len()));
    }
    // Small elements are bigger in memory than on the wire: 3,000 u64s
    // of one byte each are 24 KB decoded (an append of many small log
    // entries was refused when the limit was the input's size).
    let many: Vec<u64> = vec![7; 3000];
    let bytes = bincode::serde::encode_to_vec(&many, bincode::config::standard()).expect("encode");
    assert!(bytes.len() < 4096);
    let (back, _) = decode_bounded::<Vec<u64>, { 64 << 20 }>(&bytes).expect("decodes");
    assert_eq!(back, many);
    let big = bincode::serde::encode_to_vec("y".repeat(5000), bincode::config::standard())
        .expect("encode");
    assert!(matches!(
        decode_bounded::<String, 4096>(&big),
        Err(DecodeError::LimitExceeded)
    ));
}

#[test]
fn only_failures_after_tcp_connected_blame_the_key() {
    let refused = "Failed to negotiate transport protocol(s): [(/ip4/127.0.0.1/tcp/1: : Connection refused (os error 111))]";
    assert!(!explain_connection_error(refused).contains("cluster key"));
    let reset = "Failed to negotiate transport protocol(s): [(/ip4/127.0.0.1/tcp/1: : Handshake failed: Connection reset by peer (os error 104))]";
    assert!(explain_connection_error(reset).contains("cluster key"));
}

#[tokio::test]
async fn parse_addr_accepts_host_port_and_multiaddr() {
    let a = parse_addr("127.0.0.1:7946").await.expect("host:port");
    assert_eq!(a.to_string(), "/ip4/127.0.0.1/tcp/7946");
    let b = parse_addr("/ip4/127.0.0.1/tcp/1").await.expect("multiaddr");
    assert_eq!(b.to_string(), "/ip4/127.0.0.1/tcp/1");
    assert!(parse_addr("nonsense").await.is_err());
}
