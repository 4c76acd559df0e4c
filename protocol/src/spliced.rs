//! Frames whose large byte fields stay where they are.
//!
//! A Fetch response is mostly record batches the broker has just read from
//! its log into buffers of their own. Encoding them the usual way copies
//! every record byte once more into the response, and the copy is a full
//! pass over memory no longer in cache. [`encode_spliced`] encodes a message
//! into a [`SplicedFrame`] instead: the message's own fields go into one
//! buffer, and each byte field that is one of the given `Bytes` (the records)
//! is kept by reference at its place, so [`write_spliced`] hands the socket
//! (`writev`) or the TLS layer the pieces in order and the record bytes are
//! read once, by whoever writes them out.
//!
//! A field is kept by reference only when its slice is exactly one of the
//! given `Bytes` (same address, same length): the same memory, so the same
//! content, whatever the encoder does with it. `kafka-protocol` writes byte
//! fields with one `put_slice` of the whole field and never reads back or
//! seeks in what it has written when encoding messages, which is all this
//! relies on.

use std::io::{self, IoSlice};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Byte fields shorter than this are copied: a piece of its own costs an
/// I/O vector (and under TLS possibly a record of its own).
pub const MIN_SPLICE: usize = 4096;

/// At most this many pieces go to one vectored write (`IOV_MAX` is 1,024).
const MAX_IOV: usize = 64;

/// A frame as a head buffer with pieces spliced in: the bytes are
/// `head[..at₁] ++ piece₁ ++ head[at₁..at₂] ++ piece₂ ++ … ++ head[atₙ..]`.
#[derive(Debug, Default)]
pub struct SplicedFrame {
    head: BytesMut,
    /// Each piece and the offset in `head` it goes before, in order.
    pieces: Vec<(usize, Bytes)>,
}

impl SplicedFrame {
    /// A frame with nothing spliced.
    pub fn whole(head: BytesMut) -> Self {
        SplicedFrame {
            head,
            pieces: Vec::new(),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.spliced_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of its bytes are spliced pieces (not copied).
    pub fn spliced_len(&self) -> usize {
        self.pieces.iter().map(|(_, p)| p.len()).sum()
    }

    /// Its bytes in order, as the slices they are kept in (empty ones left
    /// out).
    pub fn slices(&self) -> Vec<&[u8]> {
        let mut from = 0;
        let mut out = Vec::with_capacity(self.pieces.len() * 2 + 1);
        for (at, piece) in &self.pieces {
            out.push(&self.head[from..*at]);
            out.push(&piece[..]);
            from = *at;
        }
        out.push(&self.head[from..]);
        out.retain(|s| !s.is_empty());
        out
    }

    /// Its bytes in one buffer (a copy when anything is spliced).
    pub fn flatten(self) -> BytesMut {
        if self.pieces.is_empty() {
            return self.head;
        }
        let mut out = BytesMut::with_capacity(self.len());
        for s in self.slices() {
            out.extend_from_slice(s);
        }
        out
    }
}

/// Encode a size-prefixed frame with `write`, keeping each byte field that
/// is one of `splice` (and at least [`MIN_SPLICE`] long) by reference.
/// `capacity` is what the whole encoded message is expected to take; the
/// copied part is sized to it less what may be spliced.
pub fn encode_spliced<E>(
    capacity: usize,
    splice: &[Bytes],
    write: impl FnOnce(&mut SpliceBuf) -> Result<(), E>,
) -> Result<SplicedFrame, crate::wire::FrameError<E>> {
    let mut candidates: Vec<&Bytes> = splice.iter().filter(|b| b.len() >= MIN_SPLICE).collect();
    candidates.sort_unstable_by_key(|b| b.as_ptr() as usize);
    let by_reference: usize = candidates.iter().map(|b| b.len()).sum();
    let mut buf = SpliceBuf {
        head: BytesMut::with_capacity(capacity.saturating_sub(by_reference).saturating_add(4)),
        pieces: Vec::new(),
        spliced: 0,
        candidates,
    };
    buf.head.put_i32(0);
    write(&mut buf).map_err(crate::wire::FrameError::Write)?;
    let mut frame = SplicedFrame {
        head: buf.head,
        pieces: buf.pieces,
    };
    let body = frame.len().saturating_sub(4);
    let size = i32::try_from(body).map_err(|_| crate::wire::FrameError::TooLarge(body))?;
    if let Some(prefix) = frame.head.get_mut(..4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(frame)
}

/// The buffer [`encode_spliced`] encodes into.
pub struct SpliceBuf<'a> {
    head: BytesMut,
    pieces: Vec<(usize, Bytes)>,
    /// Bytes in `pieces`.
    spliced: usize,
    /// What may be spliced, by address.
    candidates: Vec<&'a Bytes>,
}

impl SpliceBuf<'_> {
    fn candidate(&self, src: &[u8]) -> Option<&Bytes> {
        if src.len() < MIN_SPLICE {
            return None;
        }
        let at = src.as_ptr() as usize;
        let i = self
            .candidates
            .binary_search_by_key(&at, |b| b.as_ptr() as usize)
            .ok()?;
        self.candidates
            .get(i)
            .copied()
            .filter(|b| b.len() == src.len())
    }
}

// SAFETY: every method delegates to `head`, a `BytesMut`, whose own
// implementation upholds `BufMut`'s contract; `put_slice` either does the
// same or records a piece without touching `head`.
unsafe impl BufMut for SpliceBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise (cnt bytes of `chunk_mut` written) is
        // about `head`'s chunk, which `chunk_mut` returned.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some(piece) = self.candidate(src).cloned() {
            self.spliced += piece.len();
            self.pieces.push((self.head.len(), piece));
        } else {
            self.head.extend_from_slice(src);
        }
    }
}

/// Offsets count the spliced bytes too. Seeking and ranges (which message
/// encoding does not use) address the bytes copied since the last piece.
impl ByteBufMut for SpliceBuf<'_> {
    fn offset(&self) -> usize {
        self.head.len() + self.spliced
    }

    fn seek(&mut self, offset: usize) {
        // Never back over the size prefix or a piece's place.
        let floor = self.pieces.last().map_or(4, |(at, _)| *at).max(4);
        self.head
            .resize(offset.saturating_sub(self.spliced).max(floor), 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let (start, end) = (
            r.start.saturating_sub(self.spliced),
            r.end.saturating_sub(self.spliced),
        );
        self.head.get_mut(start..end).unwrap_or_default()
    }
}

/// Write `frame` to `out` in order, its pieces straight from where they are
/// (vectored writes where `out` supports them).
pub async fn write_spliced<W: AsyncWrite + Unpin + ?Sized>(
    out: &mut W,
    frame: &SplicedFrame,
) -> io::Result<()> {
    if frame.pieces.is_empty() {
        return out.write_all(&frame.head).await;
    }
    let slices = frame.slices();
    if !out.is_write_vectored() {
        for s in slices {
            out.write_all(s).await?;
        }
        return Ok(());
    }
    // The next byte to write: slice `i`, offset `at` in it.
    let (mut i, mut at) = (0, 0);
    while i < slices.len() {
        let iov: Vec<IoSlice<'_>> = slices[i..]
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(k, s)| IoSlice::new(if k == 0 { &s[at..] } else { s }))
            .collect();
        let mut n = out.write_vectored(&iov).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && i < slices.len() {
            let left = slices[i].len() - at;
            if n < left {
                at += n;
                n = 0;
            } else {
                n -= left;
                i += 1;
                at = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Encodable;

    fn records(n: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..n)
                .map(|i| (i as u8).wrapping_mul(7) ^ seed)
                .collect::<Vec<_>>(),
        )
    }

    fn response(parts: &[Bytes]) -> FetchResponse {
        let partitions = parts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(i as i64 * 10)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(kafka_protocol::protocol::StrBytes::from_static_str("t").into())
            .with_partitions(partitions)])
    }

    fn flat(response: &FetchResponse, version: i16) -> BytesMut {
        crate::wire::build_frame(0, |out| response.encode(out, version)).unwrap()
    }

    #[test]
    fn a_spliced_frame_has_the_bytes_of_the_copied_one() {
        let parts = vec![
            records(10_000, 1),
            records(100, 2),
            records(MIN_SPLICE, 3),
            records(0, 4),
            records(70_000, 5),
        ];
        let response = response(&parts);
        for version in [4, 11, 12, 16] {
            let frame = encode_spliced(0, &parts, |out| response.encode(out, version)).unwrap();
            // The three long enough are spliced, the others copied.
            assert_eq!(frame.spliced_len(), 10_000 + MIN_SPLICE + 70_000);
            assert_eq!(frame.pieces.len(), 3);
            assert_eq!(
                &frame.flatten()[..],
                &flat(&response, version)[..],
                "v{version}"
            );
        }
    }

    #[test]
    fn only_the_given_bytes_are_spliced() {
        let parts = vec![records(10_000, 1), records(20_000, 2)];
        let response = response(&parts);
        // An equal copy of the first is not the first.
        let other = vec![Bytes::copy_from_slice(&parts[0]), parts[1].clone()];
        let frame = encode_spliced(0, &other, |out| response.encode(out, 12)).unwrap();
        assert_eq!(frame.spliced_len(), 20_000);
        // A prefix of a given one (same address, shorter) is not it either.
        let prefix = vec![parts[0].slice(..5_000)];
        let frame = encode_spliced(0, &prefix, |out| response.encode(out, 12)).unwrap();
        assert_eq!(frame.spliced_len(), 0);
        assert_eq!(&frame.flatten()[..], &flat(&response, 12)[..]);
    }

    #[test]
    fn gaps_after_the_last_piece_are_filled_and_seeks_never_back_over_it() {
        let piece = records(MIN_SPLICE, 9);
        let framed = |seek: Option<usize>| {
            encode_spliced(0, std::slice::from_ref(&piece), |out| {
                out.put_u8(1);
                out.put_slice(&piece);
                let g = out.put_gap(4);
                out.put_u8(2);
                out.gap_buf(g).copy_from_slice(&[10, 11, 12, 13]);
                if let Some(to) = seek {
                    out.seek(to);
                }
                out.put_u8(3);
                Ok::<(), ()>(())
            })
            .unwrap()
            .flatten()
        };
        let expect = |tail: &[u8]| {
            let mut want = vec![0, 0, 0, 0, 1];
            want.extend_from_slice(&piece);
            want.extend_from_slice(tail);
            let size = (want.len() - 4) as i32;
            want[..4].copy_from_slice(&size.to_be_bytes());
            want
        };
        // The gap after the piece is filled where it was left.
        assert!(framed(None)[..] == expect(&[10, 11, 12, 13, 2, 3])[..]);
        // A seek back within what follows the piece cuts there.
        let after_piece = 5 + piece.len();
        assert!(framed(Some(after_piece + 2))[..] == expect(&[10, 11, 3])[..]);
        // A seek behind the piece's place stops at it: nothing before is lost.
        assert!(framed(Some(0))[..] == expect(&[3])[..]);

        // Before any piece, a seek stops at the size prefix.
        let frame = encode_spliced(0, &[], |out| {
            out.put_slice(b"abc");
            out.seek(1);
            out.put_u8(7);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(&frame.flatten()[..], &[0, 0, 0, 1, 7][..]);
    }

    /// A writer that takes at most `max` bytes per call, vectored or not.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_put_out_every_byte_in_order() {
        // More pieces than one vectored write takes.
        let parts: Vec<Bytes> = (0..150).map(|i| records(MIN_SPLICE + i, i as u8)).collect();
        let response = response(&parts);
        let expected = flat(&response, 12);
        let frame = encode_spliced(0, &parts, |out| response.encode(out, 12)).unwrap();
        assert_eq!(frame.pieces.len(), 150);
        for (max, vectored) in [(1_000, true), (7, true), (1 << 20, true), (333, false)] {
            let mut out = Trickle {
                got: Vec::new(),
                max,
                vectored,
            };
            write_spliced(&mut out, &frame).await.unwrap();
            assert_eq!(out.got, &expected[..], "max {max}, vectored {vectored}");
        }
    }
}
