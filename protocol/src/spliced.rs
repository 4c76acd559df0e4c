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
//! A field can also be a range of an open file ([`FilePiece`], a follower's
//! records still in the leader's log): the caller encodes a stand-in of the
//! same length ([`file_stand_in`]), and the frame keeps the file range in its
//! place. [`write_spliced`] sends such a piece with `sendfile(2)` when it
//! writes to a plain TCP socket ([`FileSender`]): the bytes go from the page
//! cache to the socket without passing through the broker's memory. Any
//! other writer, and [`SplicedFrame::flatten`], read the range first.
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

mod files;
pub use files::{file_stand_in, FilePiece, FileSender, SENDFILE_BYTES, STAND_IN_BYTES};

/// Byte fields shorter than this are copied: a piece of its own costs an
/// I/O vector (and under TLS possibly a record of its own).
pub const MIN_SPLICE: usize = 4096;

/// At most this many pieces go to one vectored write (`IOV_MAX` is 1,024).
const MAX_IOV: usize = 64;

#[derive(Debug, Clone)]
enum Piece {
    Mem(Bytes),
    File(FilePiece),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Mem(b) => b.len(),
            Piece::File(f) => f.len,
        }
    }
}

/// A part of a frame in order: bytes in memory or a file range.
enum Part<'a> {
    Mem(&'a [u8]),
    File(&'a FilePiece),
}

/// A frame as a head buffer with pieces spliced in: the bytes are
/// `head[..at₁] ++ piece₁ ++ head[at₁..at₂] ++ piece₂ ++ … ++ head[atₙ..]`.
#[derive(Debug, Default)]
pub struct SplicedFrame {
    head: BytesMut,
    /// Each piece and the offset in `head` it goes before, in order.
    pieces: Vec<(usize, Piece)>,
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

    /// How many of its bytes are file pieces.
    pub fn file_len(&self) -> usize {
        self.pieces
            .iter()
            .map(|(_, p)| match p {
                Piece::File(f) => f.len,
                Piece::Mem(_) => 0,
            })
            .sum()
    }

    /// Its parts in order (empty ones left out).
    fn parts(&self) -> Vec<Part<'_>> {
        let mut from = 0;
        let mut out = Vec::with_capacity(self.pieces.len() * 2 + 1);
        for (at, piece) in &self.pieces {
            out.push(Part::Mem(&self.head[from..*at]));
            out.push(match piece {
                Piece::Mem(b) => Part::Mem(&b[..]),
                Piece::File(f) => Part::File(f),
            });
            from = *at;
        }
        out.push(Part::Mem(&self.head[from..]));
        out.retain(|p| match p {
            Part::Mem(s) => !s.is_empty(),
            Part::File(f) => f.len > 0,
        });
        out
    }

    /// Its bytes in one buffer (a copy when anything is spliced; file
    /// pieces are read).
    pub fn flatten(self) -> io::Result<BytesMut> {
        if self.pieces.is_empty() {
            return Ok(self.head);
        }
        let mut out = BytesMut::with_capacity(self.len());
        for p in self.parts() {
            match p {
                Part::Mem(s) => out.extend_from_slice(s),
                Part::File(f) => out.extend_from_slice(&f.read()?),
            }
        }
        Ok(out)
    }
}

/// Encode a size-prefixed frame with `write`, keeping each byte field that
/// is one of `splice` (and at least [`MIN_SPLICE`] long) by reference, and
/// putting each file piece of `files` where its stand-in
/// ([`file_stand_in`]) is written. `capacity` is what the whole encoded
/// message is expected to take; the copied part is sized to it less what
/// may be spliced. Fails ([`FrameError::StandIn`](crate::wire::FrameError))
/// when a stand-in was not written as one whole field.
pub fn encode_spliced<E>(
    capacity: usize,
    splice: &[Bytes],
    files: &[(Bytes, FilePiece)],
    write: impl FnOnce(&mut SpliceBuf) -> Result<(), E>,
) -> Result<SplicedFrame, crate::wire::FrameError<E>> {
    let mut candidates: Vec<(&Bytes, Option<&FilePiece>)> = splice
        .iter()
        .filter(|b| b.len() >= MIN_SPLICE)
        .map(|b| (b, None))
        .chain(files.iter().map(|(b, f)| (b, Some(f))))
        .collect();
    // A stand-in is usually among `splice` too (it is a partition's
    // records): keep one candidate per address, the file piece, so the
    // lookup never finds the stand-in's zeros as memory to send.
    candidates.sort_unstable_by_key(|(b, f)| (b.as_ptr() as usize, f.is_none()));
    candidates.dedup_by_key(|(b, _)| b.as_ptr() as usize);
    let by_reference: usize = candidates.iter().map(|(b, _)| b.len()).sum();
    let mut buf = SpliceBuf {
        head: BytesMut::with_capacity(capacity.saturating_sub(by_reference).saturating_add(4)),
        pieces: Vec::new(),
        spliced: 0,
        candidates,
    };
    buf.head.put_i32(0);
    write(&mut buf).map_err(crate::wire::FrameError::Write)?;
    let placed = buf
        .pieces
        .iter()
        .filter(|(_, p)| matches!(p, Piece::File(_)))
        .count();
    if placed != files.len() {
        return Err(crate::wire::FrameError::StandIn);
    }
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
    pieces: Vec<(usize, Piece)>,
    /// Bytes in `pieces`.
    spliced: usize,
    /// What may be spliced, by address: bytes, or a file piece's stand-in.
    candidates: Vec<(&'a Bytes, Option<&'a FilePiece>)>,
}

impl SpliceBuf<'_> {
    fn candidate(&self, src: &[u8]) -> Option<Piece> {
        if src.len() < MIN_SPLICE {
            return None;
        }
        let at = src.as_ptr() as usize;
        let i = self
            .candidates
            .binary_search_by_key(&at, |(b, _)| b.as_ptr() as usize)
            .ok()?;
        let (bytes, file) = self.candidates.get(i)?;
        if bytes.len() != src.len() {
            return None;
        }
        Some(match file {
            Some(f) => Piece::File((*f).clone()),
            None => Piece::Mem((*bytes).clone()),
        })
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
        if let Some(piece) = self.candidate(src) {
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
/// (vectored writes where `out` supports them); file pieces with `files`
/// when given (`out` must then be the socket `files` sends to), read and
/// written otherwise.
pub async fn write_spliced<W: AsyncWrite + Unpin + ?Sized>(
    out: &mut W,
    frame: &SplicedFrame,
    files: Option<&FileSender>,
) -> io::Result<()> {
    if frame.pieces.is_empty() {
        return out.write_all(&frame.head).await;
    }
    // Runs of parts in memory between file pieces.
    let mut run: Vec<&[u8]> = Vec::new();
    for part in frame.parts() {
        match part {
            Part::Mem(s) => run.push(s),
            Part::File(f) => {
                write_slices(out, &std::mem::take(&mut run)).await?;
                match files {
                    Some(sender) => {
                        // What `out` was handed is in the socket already:
                        // tokio's streams do not buffer.
                        out.flush().await?;
                        sender.send(f).await?;
                    }
                    None => out.write_all(&f.read()?).await?,
                }
            }
        }
    }
    write_slices(out, &run).await
}

/// Write `slices` in order, vectored where `out` supports it.
async fn write_slices<W: AsyncWrite + Unpin + ?Sized>(
    out: &mut W,
    slices: &[&[u8]],
) -> io::Result<()> {
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
    use std::fs::File;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

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
            let frame =
                encode_spliced(0, &parts, &[], |out| response.encode(out, version)).unwrap();
            // The three long enough are spliced, the others copied.
            assert_eq!(frame.spliced_len(), 10_000 + MIN_SPLICE + 70_000);
            assert_eq!(frame.pieces.len(), 3);
            assert_eq!(
                &frame.flatten().unwrap()[..],
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
        let frame = encode_spliced(0, &other, &[], |out| response.encode(out, 12)).unwrap();
        assert_eq!(frame.spliced_len(), 20_000);
        // A prefix of a given one (same address, shorter) is not it either.
        let prefix = vec![parts[0].slice(..5_000)];
        let frame = encode_spliced(0, &prefix, &[], |out| response.encode(out, 12)).unwrap();
        assert_eq!(frame.spliced_len(), 0);
        assert_eq!(&frame.flatten().unwrap()[..], &flat(&response, 12)[..]);
    }

    #[test]
    fn gaps_after_the_last_piece_are_filled_and_seeks_never_back_over_it() {
        let piece = records(MIN_SPLICE, 9);
        let framed = |seek: Option<usize>| {
            encode_spliced(0, std::slice::from_ref(&piece), &[], |out| {
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
            .unwrap()
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
        let frame = encode_spliced(0, &[], &[], |out| {
            out.put_slice(b"abc");
            out.seek(1);
            out.put_u8(7);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(&frame.flatten().unwrap()[..], &[0, 0, 0, 1, 7][..]);
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
        let frame = encode_spliced(0, &parts, &[], |out| response.encode(out, 12)).unwrap();
        assert_eq!(frame.pieces.len(), 150);
        for (max, vectored) in [(1_000, true), (7, true), (1 << 20, true), (333, false)] {
            let mut out = Trickle {
                got: Vec::new(),
                max,
                vectored,
            };
            write_spliced(&mut out, &frame, None).await.unwrap();
            assert_eq!(out.got, &expected[..], "max {max}, vectored {vectored}");
        }
    }

    /// A file holding `records` at `position`, and the piece of it.
    fn file_piece(dir: &std::path::Path, records: &[u8], position: u64) -> FilePiece {
        use std::os::unix::fs::FileExt;
        let path = dir.join(format!("seg-{position}"));
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        file.write_all_at(records, position).unwrap();
        FilePiece {
            file: Arc::new(file),
            position,
            len: records.len(),
        }
    }

    /// A response whose second and fourth partitions' records are file
    /// pieces, and the frame of the same response with every record in
    /// memory.
    fn with_file_pieces(
        dir: &std::path::Path,
        version: i16,
    ) -> (SplicedFrame, BytesMut, Vec<FilePiece>) {
        let real = vec![
            records(10_000, 1),
            records(300_000, 2),
            records(100, 3),
            records(MIN_SPLICE, 4),
        ];
        let pieces = vec![
            file_piece(dir, &real[1], 4096),
            file_piece(dir, &real[3], 0),
        ];
        let stand_ins = vec![
            file_stand_in(0, real[1].len()).unwrap(),
            file_stand_in(real[1].len(), real[3].len()).unwrap(),
        ];
        let in_frame = vec![
            real[0].clone(),
            stand_ins[0].clone(),
            real[2].clone(),
            stand_ins[1].clone(),
        ];
        let files: Vec<(Bytes, FilePiece)> = stand_ins.into_iter().zip(pieces.clone()).collect();
        let frame = encode_spliced(0, &in_frame, &files, |out| {
            response(&in_frame).encode(out, version)
        })
        .unwrap();
        (frame, flat(&response(&real), version), pieces)
    }

    #[test]
    fn file_pieces_take_their_stand_ins_places_and_are_read_when_flattened() {
        let dir = tempfile::tempdir().unwrap();
        for version in [4, 12, 16] {
            let (frame, expected, _) = with_file_pieces(dir.path(), version);
            assert_eq!(frame.file_len(), 300_000 + MIN_SPLICE);
            assert_eq!(frame.spliced_len(), 10_000 + 300_000 + MIN_SPLICE);
            assert_eq!(frame.len(), expected.len());
            assert!(frame.flatten().unwrap()[..] == expected[..], "v{version}");
        }
        // Each stand-in has its own range; none past the area or too short.
        assert!(file_stand_in(0, MIN_SPLICE - 1).is_none());
        assert!(file_stand_in(STAND_IN_BYTES - MIN_SPLICE, MIN_SPLICE + 1).is_none());
        assert!(file_stand_in(usize::MAX, MIN_SPLICE).is_none());
    }

    #[test]
    fn a_stand_in_also_listed_as_memory_is_still_sent_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = records(20_000, 7);
        let piece = file_piece(dir.path(), &real, 0);
        let stand_in = file_stand_in(0, real.len()).unwrap();
        // The caller's list of record fields holds the stand-in (twice
        // here, among other records): the file piece must win the lookup.
        let mut in_frame: Vec<Bytes> = (0..40u8).map(|i| records(MIN_SPLICE, i)).collect();
        in_frame.reverse();
        in_frame.insert(13, stand_in.clone());
        in_frame.insert(29, stand_in.clone());
        let files = vec![(stand_in.clone(), piece)];
        let frame = encode_spliced(0, &in_frame, &files, |out| {
            response(std::slice::from_ref(&stand_in)).encode(out, 12)
        })
        .unwrap();
        assert_eq!(frame.file_len(), real.len());
        let expected = flat(&response(std::slice::from_ref(&real)), 12);
        assert!(frame.flatten().unwrap()[..] == expected[..]);
    }

    #[test]
    fn a_stand_in_not_encoded_as_one_field_fails_the_frame() {
        let dir = tempfile::tempdir().unwrap();
        let piece = file_piece(dir.path(), &records(MIN_SPLICE, 1), 0);
        let stand_in = file_stand_in(0, MIN_SPLICE).unwrap();
        let files = vec![(stand_in.clone(), piece)];
        // Written in two halves: neither is the stand-in.
        let e = encode_spliced(0, &[], &files, |out| {
            out.put_slice(&stand_in[..MIN_SPLICE / 2]);
            out.put_slice(&stand_in[MIN_SPLICE / 2..]);
            Ok::<(), ()>(())
        })
        .unwrap_err();
        assert!(matches!(e, crate::wire::FrameError::StandIn), "{e:?}");
        // Not written at all.
        let e = encode_spliced(0, &[], &files, |_| Ok::<(), ()>(())).unwrap_err();
        assert!(matches!(e, crate::wire::FrameError::StandIn), "{e:?}");
    }

    #[tokio::test]
    async fn file_pieces_go_through_sendfile_to_a_socket_and_are_read_for_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let (frame, expected, pieces) = with_file_pieces(dir.path(), 12);
        // Without a sender (TLS, tests): read and written like the rest.
        let mut out = Trickle {
            got: Vec::new(),
            max: 5_000,
            vectored: true,
        };
        write_spliced(&mut out, &frame, None).await.unwrap();
        assert!(out.got[..] == expected[..]);

        // To a socket: the file pieces by sendfile, the reader slower than
        // the writer so that the socket fills and sendfile waits.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break got;
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() < 100_000 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        });
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sender = FileSender::new(&socket).unwrap();
        let before = SENDFILE_BYTES.load(Ordering::Relaxed);
        write_spliced(&mut socket, &frame, Some(&sender))
            .await
            .unwrap();
        let sent = SENDFILE_BYTES.load(Ordering::Relaxed) - before;
        drop(sender);
        drop(socket);
        let got = reader.await.unwrap();
        assert!(
            got[..] == expected[..],
            "{} bytes against {}",
            got.len(),
            expected.len()
        );
        // Other tests may send files at the same time: at least these.
        assert!(sent >= (300_000 + MIN_SPLICE) as u64, "{sent}");

        // A file cut short before its piece is sent: an error, not a frame
        // with a hole.
        pieces[0].file.set_len(5_000).unwrap();
        let (mut a, _b) = tokio::io::duplex(1 << 20);
        assert!(write_spliced(&mut a, &frame, None).await.is_err());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let drain = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sender = FileSender::new(&socket).unwrap();
        let e = write_spliced(&mut socket, &frame, Some(&sender))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        drop(socket);
        drop(sender);
        drain.await.unwrap();
    }
}
