//! Framing of controller RPCs over TCP: `[u32 length][u16 version][JSON]`,
//! big-endian, where the length counts the version and the payload.
//!
//! The version lets a rolling upgrade reason about peers: a node refuses a
//! frame of a version it does not know with a clear error instead of
//! misreading it. JSON keeps the payload self-describing, so adding a field
//! with a default does not break older peers. Frames above
//! [`MAX_FRAME_BYTES`] are refused before anything is allocated.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version of the controller RPC encoding this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame accepted (snapshots of big clusters included).
pub const MAX_FRAME_BYTES: u32 = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(u32),
    #[error("frame too short ({0} bytes)")]
    TooShort(u32),
    #[error("peer speaks controller protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion(u16),
    #[error("malformed frame payload: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Write one frame.
pub async fn write_frame<W, T>(w: &mut W, value: &T) -> Result<(), CodecError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let payload = serde_json::to_vec(value)?;
    let len = u32::try_from(payload.len() + 2)
        .ok()
        .filter(|l| *l <= MAX_FRAME_BYTES)
        .ok_or(CodecError::TooLarge(u32::MAX))?;
    let mut buf = Vec::with_capacity(payload.len() + 6);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    buf.extend_from_slice(&payload);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Read one frame; `Ok(None)` on a clean end of stream before a frame.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, CodecError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(len));
    }
    if len < 2 {
        return Err(CodecError::TooShort(len));
    }
    let mut version = [0u8; 2];
    r.read_exact(&mut version).await?;
    let version = u16::from_be_bytes(version);
    if version != PROTOCOL_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    // Read the payload as it arrives, growing the buffer with what came: a
    // peer that claims 256 MiB and stalls holds only what it sent.
    let len = (len - 2) as usize;
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let read = (&mut *r).take(len as u64).read_to_end(&mut payload).await?;
    if read < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(serde_json::from_slice(&payload)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_frames_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &vec![1u32, 2, 3]).await.unwrap();
        let got: Option<Vec<u32>> = read_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(got, Some(vec![1, 2, 3]));
        let empty: Option<Vec<u32>> = read_frame(&mut &b""[..]).await.unwrap();
        assert_eq!(empty, None);

        let huge = [0xffu8, 0xff, 0xff, 0xff];
        let r: Result<Option<u8>, _> = read_frame(&mut &huge[..]).await;
        assert!(matches!(r, Err(CodecError::TooLarge(_))));

        let mut other = buf.clone();
        other[5] = 9;
        let r: Result<Option<Vec<u32>>, _> = read_frame(&mut other.as_slice()).await;
        assert!(matches!(r, Err(CodecError::UnsupportedVersion(9))));

        let mut garbage = buf.clone();
        let n = garbage.len();
        garbage[n - 2] = b'x';
        let r: Result<Option<Vec<u32>>, _> = read_frame(&mut garbage.as_slice()).await;
        assert!(matches!(r, Err(CodecError::Malformed(_))));

        let truncated = &buf[..buf.len() - 1];
        let r: Result<Option<Vec<u32>>, _> = read_frame(&mut &truncated[..]).await;
        assert!(matches!(r, Err(CodecError::Io(_))));
    }
}
