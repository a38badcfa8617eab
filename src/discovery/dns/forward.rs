//! Forwarding what the cluster zone does not answer: upstream queries over
//! UDP, and over TCP when the answer was truncated.

use super::*;

/// Answers that say "this server is no use", as opposed to NXDOMAIN or
/// NODATA, which are real answers; the next upstream may do better.
pub(super) fn upstream_failed(code: ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::ServFail
            | ResponseCode::Refused
            | ResponseCode::NotImp
            | ResponseCode::FormErr
    )
}

/// Asks one upstream, over UDP and then, for a TCP client whose answer did
/// not fit, over TCP.
pub(super) async fn forward_to(
    upstream: SocketAddr,
    query: &Query,
    client: &Metadata,
    dnssec_ok: bool,
    tcp_client: bool,
) -> io::Result<Message> {
    let reply = tokio::time::timeout(
        FORWARD_TIMEOUT,
        exchange_udp(upstream, &upstream_query(query, client, dnssec_ok)),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "udp timeout"))??;
    if !(reply.metadata.truncation && tcp_client) {
        return Ok(reply);
    }
    // A fresh id: the UDP one was visible to anyone watching that exchange.
    tokio::time::timeout(
        FORWARD_TIMEOUT,
        exchange_tcp(upstream, &upstream_query(query, client, dnssec_ok)),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "tcp timeout"))?
}

/// A new query for `query`, with a random id (the client's is not reused so
/// that upstream replies cannot be spoofed by someone who saw the client's).
pub(super) fn upstream_query(query: &Query, client: &Metadata, dnssec_ok: bool) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = client.recursion_desired;
    message.metadata.checking_disabled = client.checking_disabled;
    message.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_UDP_PAYLOAD);
    edns.set_dnssec_ok(dnssec_ok);
    message.set_edns(edns);
    message
}

/// Whether `reply` answers `sent`: same id, a response, same question.
pub(super) fn answers_query(sent: &Message, reply: &Message) -> bool {
    reply.metadata.id == sent.metadata.id
        && reply.metadata.message_type == MessageType::Response
        && (reply.queries.is_empty() || reply.queries == sent.queries)
}

pub(super) async fn exchange_udp(upstream: SocketAddr, sent: &Message) -> io::Result<Message> {
    let bytes = sent.to_vec().map_err(io::Error::other)?;
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket per query gives a random source port, and connecting
    // it makes the kernel drop datagrams from anyone but the upstream.
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Garbage or a stale reply: keep waiting for the real one until the
        // caller's timeout.
        match Message::from_vec(&buf[..n]) {
            Ok(reply) if answers_query(sent, &reply) => return Ok(reply),
            Ok(_) => debug!(%upstream, "ignoring dns reply for another query"),
            Err(error) => debug!(%upstream, %error, "ignoring malformed dns reply"),
        }
    }
}

pub(super) async fn exchange_tcp(upstream: SocketAddr, sent: &Message) -> io::Result<Message> {
    let bytes = sent.to_vec().map_err(io::Error::other)?;
    let len = u16::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut stream = TcpStream::connect(upstream).await?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await?;
    loop {
        let len = stream.read_u16().await?;
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        let reply = Message::from_vec(&buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if answers_query(sent, &reply) {
            return Ok(reply);
        }
    }
}
