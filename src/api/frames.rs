//! The frames `shoal exec` and the API exchange once the HTTP connection is
//! upgraded (`Upgrade: shoal-exec`): a kind byte, a big-endian u32 length and
//! at most [`MAX_PAYLOAD`] bytes. A longer frame is refused, so neither side
//! buffers more than one frame per read.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` token of an exec connection.
pub const UPGRADE: &str = "shoal-exec";
/// The header of an attach's 101 naming the container attached to.
pub const ATTACH_CONTAINER_HEADER: &str = "shoal-attach-container";
/// The header of an attach's 101 saying whether the container has a
/// terminal (`true` or `false`).
pub const ATTACH_TTY_HEADER: &str = "shoal-attach-tty";
/// The most bytes one frame carries.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Bytes for the command's stdin (client to node).
pub const STDIN: u8 = 0;
/// Bytes the command wrote to stdout or its terminal (node to client).
pub const STDOUT: u8 = 1;
/// Bytes the command wrote to stderr (node to client).
pub const STDERR: u8 = 2;
/// A terminal size: columns then rows, u16 each (client to node).
pub const RESIZE: u8 = 3;
/// End of the command's stdin (client to node).
pub const STDIN_EOF: u8 = 4;
/// The command ended: its exit code as a big-endian i64 (node to client, last).
pub const EXIT: u8 = 5;
/// The session failed: a UTF-8 message (node to client, last).
pub const ERROR: u8 = 6;

/// Writes `payload` as frames of `kind`, split at [`MAX_PAYLOAD`] (one empty
/// frame for an empty payload).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut chunks = payload.chunks(MAX_PAYLOAD).peekable();
    if chunks.peek().is_none() {
        return write_one(w, kind, &[]).await;
    }
    for c in chunks {
        write_one(w, kind, c).await?;
    }
    Ok(())
}

async fn write_one<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, p: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(p.len()).map_err(std::io::Error::other)?;
    // One write per frame: a header sent alone waits for the peer's
    // delayed ACK (40 ms) before the payload goes, wherever Nagle is on.
    let mut frame = Vec::with_capacity(5 + p.len());
    frame.push(kind);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(p);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the {MAX_PAYLOAD}-byte limit"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

/// A [`RESIZE`] payload.
pub fn resize_payload(width: u16, height: u16) -> [u8; 4] {
    let mut p = [0u8; 4];
    p[..2].copy_from_slice(&width.to_be_bytes());
    p[2..].copy_from_slice(&height.to_be_bytes());
    p
}

/// Reads a [`RESIZE`] payload.
pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    match p {
        [a, b, c, d] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_split_and_refuse_oversize() {
        let (mut a, mut b) = tokio::io::duplex(1024 * 1024);
        let big = vec![7u8; MAX_PAYLOAD + 10];
        write_frame(&mut a, STDOUT, &big).await.expect("write");
        write_frame(&mut a, STDIN_EOF, &[]).await.expect("write");
        write_frame(&mut a, RESIZE, &resize_payload(120, 40))
            .await
            .expect("write");
        let (k, p) = read_frame(&mut b).await.expect("read").expect("frame");
        assert_eq!((k, p.len()), (STDOUT, MAX_PAYLOAD));
        let (k, p) = read_frame(&mut b).await.expect("read").expect("frame");
        assert_eq!((k, p.len()), (STDOUT, 10));
        let (k, p) = read_frame(&mut b).await.expect("read").expect("frame");
        assert_eq!((k, p.len()), (STDIN_EOF, 0));
        let (k, p) = read_frame(&mut b).await.expect("read").expect("frame");
        assert_eq!((k, parse_resize(&p)), (RESIZE, Some((120, 40))));
        drop(a);
        assert!(read_frame(&mut b).await.expect("eof").is_none());

        let (mut a, mut b) = tokio::io::duplex(64);
        let mut head = vec![STDIN];
        head.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        a.write_all(&head).await.expect("write");
        assert!(
            read_frame(&mut b).await.is_err(),
            "an oversize frame is refused"
        );
    }
}
