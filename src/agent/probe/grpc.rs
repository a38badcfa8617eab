//! gRPC health probes: the standard `grpc.health.v1.Health/Check` call
//! over HTTP/2 without TLS, as the kubelet makes it. The messages are two
//! protobuf fields, encoded here rather than through a gRPC stack.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// The most response bytes read: a health answer is a few bytes.
const MAX_RESPONSE_BYTES: usize = 4096;

/// The serving states of `grpc.health.v1.HealthCheckResponse.ServingStatus`.
fn status_name(code: u64) -> &'static str {
    match code {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

/// `HealthCheckRequest { service }` in a gRPC frame.
fn request_frame(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + msg.len());
    frame.put_u8(0); // not compressed
    frame.put_u32(msg.len() as u32);
    frame.put_slice(&msg);
    frame.freeze()
}

fn put_varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `status` of a framed `HealthCheckResponse`; fields other than 1 are
/// skipped, as protobuf readers do.
fn response_status(frame: &[u8]) -> Result<u64, String> {
    let bad = |why: &str| format!("malformed health response: {why}");
    if frame.len() < 5 {
        return Err(bad("shorter than a gRPC frame"));
    }
    if frame[0] != 0 {
        return Err(bad("compressed"));
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let mut msg = frame
        .get(5..5 + len)
        .ok_or_else(|| bad("frame longer than the body"))?;
    // An empty message is the default: UNKNOWN.
    let mut status = 0;
    while msg.has_remaining() {
        let key = get_varint(&mut msg).ok_or_else(|| bad("truncated key"))?;
        match key & 7 {
            0 => {
                let v = get_varint(&mut msg).ok_or_else(|| bad("truncated varint"))?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let n = get_varint(&mut msg).ok_or_else(|| bad("truncated length"))?;
                let n = usize::try_from(n).map_err(|_| bad("length"))?;
                if msg.remaining() < n {
                    return Err(bad("truncated field"));
                }
                msg.advance(n);
            }
            1 if msg.remaining() >= 8 => msg.advance(8),
            5 if msg.remaining() >= 4 => msg.advance(4),
            _ => return Err(bad("unknown wire type")),
        }
    }
    Ok(status)
}

/// Calls Health/Check for `service` at `addr`; `Ok` when it answers
/// SERVING. The error reads as the kubelet's.
pub(super) async fn check(addr: &str, service: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, call(addr, service)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        )),
    }
}

async fn call(addr: &str, service: &str) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("failed to connect service {addr:?}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("failed to connect service {addr:?}: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(request_frame(service)))
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("health rpc failed: {e}"))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(format!("health rpc failed: HTTP {}", resp.status()));
        }
        // A call refused outright carries its status in the headers.
        let header_status = grpc_status(resp.headers());
        let mut body = resp.into_body();
        let mut data = BytesMut::new();
        let mut trailer_status = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("health rpc failed: {e}"))?;
            match frame.into_data() {
                Ok(d) => {
                    if data.len() + d.len() > MAX_RESPONSE_BYTES {
                        return Err("health rpc failed: response too large".to_string());
                    }
                    data.extend_from_slice(&d);
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailer_status = grpc_status(&t);
                    }
                }
            }
        }
        match trailer_status.or(header_status) {
            Some((0, _)) | None => {}
            Some((code, msg)) => {
                return Err(format!(
                    "health rpc failed: code {code}{}",
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {msg}")
                    }
                ));
            }
        }
        match response_status(&data)? {
            1 => Ok(()),
            s => Err(format!(
                "service unhealthy (responded with {:?})",
                status_name(s)
            )),
        }
    }
    .await;
    driver.abort();
    result
}

/// `grpc-status` and `grpc-message` of a header or trailer map.
fn grpc_status(h: &hyper::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let msg = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((code, msg))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::StreamBody;
    use hyper::body::{Frame, Incoming};

    use super::*;

    /// A health server on loopback: "" is SERVING, "down" NOT_SERVING,
    /// anything else NOT_FOUND as a trailers-only answer, as grpc-go's.
    async fn server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let svc = hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
                    let body = req.into_body().collect().await.expect("body").to_bytes();
                    let service =
                        String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
                    let mut trailers = hyper::HeaderMap::new();
                    let frames: Vec<Result<Frame<Bytes>, Infallible>> = match service.as_str() {
                        "" | "down" => {
                            let status = if service.is_empty() { 1 } else { 2 };
                            trailers.insert("grpc-status", "0".parse().expect("value"));
                            vec![
                                Ok(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                                Ok(Frame::trailers(trailers)),
                            ]
                        }
                        _ => {
                            trailers.insert("grpc-status", "5".parse().expect("value"));
                            trailers
                                .insert("grpc-message", "unknown service".parse().expect("value"));
                            vec![Ok(Frame::trailers(trailers))]
                        }
                    };
                    let resp = hyper::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(StreamBody::new(futures::stream::iter(frames)))
                        .expect("response");
                    Ok::<_, Infallible>(resp)
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        addr
    }

    #[tokio::test]
    async fn health_answers_decide_the_probe() {
        let addr = server().await;
        let t = Duration::from_secs(5);
        check(&addr, "", t).await.expect("SERVING");
        let e = check(&addr, "down", t).await.expect_err("NOT_SERVING");
        assert_eq!(e, "service unhealthy (responded with \"NOT_SERVING\")");
        let e = check(&addr, "other", t).await.expect_err("unknown service");
        assert_eq!(e, "health rpc failed: code 5: unknown service");
        // Nothing listening.
        let free = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr");
        let e = check(&free.to_string(), "", t).await.expect_err("closed");
        assert!(e.starts_with("failed to connect service"), "{e}");
    }

    #[test]
    fn messages_encode_and_decode_as_protobuf() {
        assert_eq!(&request_frame("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_frame("ab")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        // An empty message is UNKNOWN; unknown fields are skipped.
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Ok(0));
        assert_eq!(
            response_status(&[0, 0, 0, 0, 6, 0x12, 2, b'x', b'y', 0x08, 2]),
            Ok(2)
        );
        // Malformed answers are errors, never a panic.
        for bad in [
            &[][..],
            &[0, 0, 0, 0],
            &[1, 0, 0, 0, 0],
            &[0, 0, 0, 0, 9, 0x08],
            &[0, 0, 0, 0, 1, 0x08],
            &[0, 0, 0, 0, 2, 0x12, 9],
            &[0, 0, 0, 0, 1, 0x0b],
            &[
                0, 0, 0, 0, 10, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            assert!(response_status(bad).is_err(), "{bad:?}");
        }
    }
}
