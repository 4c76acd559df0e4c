//! Compression codecs for the records payload of a v2 record batch.
//!
//! Owns the byte formats Kafka clients put after the 61-byte batch header
//! when the attributes name a codec, and nothing else (no record parsing):
//!
//! - gzip: a gzip stream; several concatenated members are accepted.
//! - snappy: on decode, either a raw snappy block (librdkafka and others) or
//!   the xerial/snappy-java framing the Java client writes; on encode, always
//!   the xerial framing, which every client can read.
//! - lz4: the LZ4 *frame* format (KIP-57), written with independent 64 KiB
//!   blocks and no checksums, as Kafka's `Lz4BlockOutputStream` does, because
//!   the Java reader decodes each block on its own.
//! - zstd: zstd frames (KIP-110).
//!
//! Invariant: [`decompress`] never produces, nor grows its output buffer
//! beyond, `limit` bytes. A decompression bomb yields
//! [`RecordError::TooLarge`] after at most `limit + 1` bytes have been
//! inflated. (The zstd decoder's own window buffer is bounded separately by
//! libzstd's default 128 MiB window cap, the same one Kafka clients accept.)

use std::io::{self, Read, Write};

use crate::error::RecordError;
use crate::record_batch::Compression;

/// Magic bytes that open a snappy-java (`SnappyOutputStream`) stream.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic plus the big-endian version and minimum-compatible-version words.
const XERIAL_HEADER_LEN: usize = 16;
/// The version and compatible version snappy-java writes.
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
/// snappy-java's default block size: at most this much input per chunk.
const XERIAL_CHUNK: usize = 32 * 1024;

/// How many bytes to inflate per read of a streaming decoder.
const READ_CHUNK: usize = 16 * 1024;

/// The codec a producer's `compression.type` names (`none`, `gzip`,
/// `snappy`, `lz4`, `zstd`), if it names one.
pub fn producer_codec(name: &str) -> Option<Compression> {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .find(|c| codec_name(*c).eq_ignore_ascii_case(name))
}

/// The name Kafka uses for a codec (`compression.type`).
pub fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

fn decompress_error(codec: Compression, source: io::Error) -> RecordError {
    RecordError::Decompress {
        codec: codec_name(codec),
        source,
    }
}

fn compress_error(codec: Compression, source: io::Error) -> RecordError {
    RecordError::Compress {
        codec: codec_name(codec),
        source,
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Decompress a batch's records payload written with `codec`.
///
/// Returns the uncompressed records bytes, or
/// [`RecordError::TooLarge`] if they would exceed `limit` bytes (checked
/// while inflating, so memory stays bounded by about `limit`), or
/// [`RecordError::Decompress`] if the input is not a complete, valid stream
/// of that codec (truncated streams are errors, not short outputs).
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(RecordError::TooLarge { limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => {
            let mut out = Vec::new();
            read_bounded(flate2::read::MultiGzDecoder::new(input), &mut out, limit)
                .map_err(|e| e.into_record_error(codec, limit))?;
            Ok(out)
        }
        Compression::Snappy => decompress_snappy(input, limit),
        Compression::Lz4 => decompress_lz4(input, limit),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| decompress_error(codec, e))?;
            let mut out = Vec::new();
            read_bounded(decoder, &mut out, limit)
                .map_err(|e| e.into_record_error(codec, limit))?;
            Ok(out)
        }
    }
}

/// The plaintext of a `codec`-compressed payload as a stream that yields
/// at most `limit` bytes, for reading records one by one without holding
/// them all (the produce path's check, [`crate::records::scan_batch`]):
/// gzip, lz4 and zstd inflate as they are read, so a bomb costs the
/// decoder's own state and no more; snappy (a raw block is not readable in
/// parts) is decompressed whole first, at most `limit` bytes as in
/// [`decompress`]. Map the stream's read errors with [`stream_error`].
pub fn reader<'a>(
    codec: Compression,
    input: &'a [u8],
    limit: usize,
) -> Result<Box<dyn Read + 'a>, RecordError> {
    let inner: Box<dyn Read + 'a> = match codec {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Snappy => Box::new(io::Cursor::new(decompress_snappy(input, limit)?)),
        Compression::Lz4 => Box::new(Lz4Frames {
            rest: input,
            decoder: None,
            done: false,
        }),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| decompress_error(codec, e))?,
        ),
    };
    Ok(Box::new(Bounded { inner, left: limit }))
}

/// The [`RecordError`] for a read error of a [`reader`] stream.
pub fn stream_error(codec: Compression, e: io::Error, limit: usize) -> RecordError {
    if e.get_ref().is_some_and(|inner| inner.is::<LimitExceeded>()) {
        RecordError::TooLarge { limit }
    } else {
        decompress_error(codec, e)
    }
}

/// The error a [`Bounded`] stream fails with past its limit.
#[derive(Debug)]
struct LimitExceeded;

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed past the limit")
    }
}

impl std::error::Error for LimitExceeded {}

/// A stream that fails once its inner one yields more than `left` bytes.
struct Bounded<R> {
    inner: R,
    left: usize,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n)
            .ok_or_else(|| io::Error::other(LimitExceeded))?;
        Ok(n)
    }
}

/// LZ4 frames read one after another until the input is used up (as
/// [`decompress_lz4`] decodes them), each checked complete at its end.
struct Lz4Frames<'a> {
    rest: &'a [u8],
    decoder: Option<lz4::Decoder<&'a [u8]>>,
    done: bool,
}

impl Read for Lz4Frames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.done && !buf.is_empty() {
            let decoder = match self.decoder.as_mut() {
                Some(d) => d,
                None => self.decoder.insert(lz4::Decoder::new(self.rest)?),
            };
            let n = decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let Some(finished) = self.decoder.take() else {
                break;
            };
            // The decoder reports a clean end of input even mid-frame; only
            // `finish` tells a complete frame from a truncated one.
            let (remaining, result) = finished.finish();
            result.map_err(|_| invalid("truncated lz4 frame"))?;
            if remaining.is_empty() {
                self.done = true;
            } else if remaining.len() >= self.rest.len() {
                return Err(invalid("lz4 frame made no progress"));
            } else {
                self.rest = remaining;
            }
        }
        Ok(0)
    }
}

/// Compress `input` (encoded records) into the payload format of `codec`,
/// at the codec's default level.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    compress_at(codec, None, input)
}

/// Kafka's default lz4 level, which Kafka compresses with lz4's fast
/// compressor (other levels with the high-compression one).
pub const LZ4_DEFAULT_LEVEL: i32 = 9;

/// [`compress`] at `level` (`None`: the codec's default), with Kafka's
/// meaning of `compression.<codec>.level` (KIP-390): gzip 1 to 9 (-1: the
/// default, 6); lz4 1 to 17, where Kafka's default 9 is lz4's fast mode
/// and other levels are liblz4 frame levels (3 and above: high
/// compression); zstd -131072 to 22 (default 3). Snappy has no level.
/// Levels outside those ranges (configs refuse them) are clamped.
pub fn compress_at(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let level = match level {
                Some(l) if l >= 0 => flate2::Compression::new(l.clamp(1, 9) as u32),
                _ => flate2::Compression::default(),
            };
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder
                .write_all(input)
                .map_err(|e| compress_error(codec, e))?;
            encoder.finish().map_err(|e| compress_error(codec, e))
        }
        Compression::Snappy => compress_xerial(input),
        Compression::Lz4 => {
            let level = match level {
                None | Some(LZ4_DEFAULT_LEVEL) => 0,
                Some(l) => l.clamp(1, 17) as u32,
            };
            let mut encoder = lz4::EncoderBuilder::new()
                .level(level)
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(|e| compress_error(codec, e))?;
            encoder
                .write_all(input)
                .map_err(|e| compress_error(codec, e))?;
            let (out, result) = encoder.finish();
            result.map_err(|e| compress_error(codec, e))?;
            Ok(out)
        }
        Compression::Zstd => {
            let level = level.map_or(zstd::DEFAULT_COMPRESSION_LEVEL, |l| l.clamp(-131_072, 22));
            zstd::stream::encode_all(input, level).map_err(|e| compress_error(codec, e))
        }
    }
}

/// Why a bounded read stopped early.
enum BoundedReadError {
    /// The output would exceed the limit.
    TooLarge,
    /// The decoder failed.
    Io(io::Error),
}

impl BoundedReadError {
    fn into_record_error(self, codec: Compression, limit: usize) -> RecordError {
        match self {
            BoundedReadError::TooLarge => RecordError::TooLarge { limit },
            BoundedReadError::Io(e) => decompress_error(codec, e),
        }
    }
}

/// Append everything `reader` yields to `out`, failing as soon as `out` would
/// hold more than `limit` bytes. Capacity grows by doubling but is clamped to
/// `limit`, so a bomb costs at most about `limit` bytes of memory.
fn read_bounded<R: Read>(
    mut reader: R,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), BoundedReadError> {
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BoundedReadError::Io(e)),
        };
        let got = chunk.get(..n).ok_or_else(|| {
            BoundedReadError::Io(invalid(
                "decoder reported more bytes than it was given room for",
            ))
        })?;
        reserve_bounded(out, got.len(), limit)?;
        out.extend_from_slice(got);
    }
}

/// Make room for `extra` more bytes in `out` without letting its length or
/// its capacity pass `limit`.
fn reserve_bounded(out: &mut Vec<u8>, extra: usize, limit: usize) -> Result<(), BoundedReadError> {
    let needed = out
        .len()
        .checked_add(extra)
        .ok_or(BoundedReadError::TooLarge)?;
    if needed > limit {
        return Err(BoundedReadError::TooLarge);
    }
    if needed > out.capacity() {
        let target = out
            .capacity()
            .saturating_mul(2)
            .max(needed)
            .max(READ_CHUNK)
            .min(limit);
        out.reserve_exact(target - out.len());
    }
    Ok(())
}

/// Raw snappy block or xerial framing, told apart by the xerial magic (the
/// same rule librdkafka and snappy-java's own reader use).
fn decompress_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    let mut out = Vec::new();
    match input.strip_prefix(&XERIAL_MAGIC[..]) {
        Some(after_magic) => {
            // The two version words are not checked: snappy-java has only
            // ever written 1/1, and a reader gains nothing by refusing others.
            let mut rest = after_magic
                .get(XERIAL_HEADER_LEN - XERIAL_MAGIC.len()..)
                .ok_or_else(|| decompress_error(codec, invalid("truncated snappy-java header")))?;
            while !rest.is_empty() {
                let (len_bytes, after_len) = rest.split_first_chunk::<4>().ok_or_else(|| {
                    decompress_error(codec, invalid("truncated snappy-java chunk length"))
                })?;
                let len = u32::from_be_bytes(*len_bytes) as usize;
                if len > after_len.len() {
                    return Err(decompress_error(
                        codec,
                        invalid("truncated snappy-java chunk"),
                    ));
                }
                let (block, after_block) = after_len.split_at(len);
                decompress_raw_snappy_into(block, &mut out, limit)?;
                rest = after_block;
            }
        }
        None => decompress_raw_snappy_into(input, &mut out, limit)?,
    }
    Ok(out)
}

/// Decompress one raw snappy block and append it to `out`, checking the
/// length the block declares against what `limit` leaves before allocating.
fn decompress_raw_snappy_into(
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), RecordError> {
    let codec = Compression::Snappy;
    let snap_error =
        |e: snap::Error| decompress_error(codec, io::Error::new(io::ErrorKind::InvalidData, e));
    let len = snap::raw::decompress_len(block).map_err(snap_error)?;
    reserve_bounded(out, len, limit).map_err(|e| e.into_record_error(codec, limit))?;
    let start = out.len();
    out.resize(start + len, 0);
    let dst = out.get_mut(start..).unwrap_or_default();
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(snap_error)?;
    out.truncate(start + written);
    Ok(())
}

/// Write the snappy-java framing: the 16-byte header, then for each input
/// chunk of at most 32 KiB a big-endian length and a raw snappy block.
fn compress_xerial(input: &[u8]) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    let mut out = Vec::with_capacity(
        XERIAL_HEADER_LEN + snap::raw::max_compress_len(input.len().min(XERIAL_CHUNK)),
    );
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_CHUNK) {
        let len_at = out.len();
        let block_at = len_at + 4;
        out.resize(block_at + snap::raw::max_compress_len(chunk.len()), 0);
        let dst = out.get_mut(block_at..).unwrap_or_default();
        let written = encoder
            .compress(chunk, dst)
            .map_err(|e| compress_error(codec, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        out.truncate(block_at + written);
        // A 32 KiB chunk compresses to well under 4 GiB.
        let len = u32::try_from(written)
            .map_err(|_| compress_error(codec, invalid("snappy chunk too large")))?;
        out.splice(len_at..block_at, len.to_be_bytes());
    }
    Ok(out)
}

/// LZ4 frames until the input is used up. Kafka clients write one frame, but
/// the frame format allows concatenation, so accept it as `lz4 -d` does.
fn decompress_lz4(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Lz4;
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        let mut decoder = lz4::Decoder::new(rest).map_err(|e| decompress_error(codec, e))?;
        read_bounded(&mut decoder, &mut out, limit)
            .map_err(|e| e.into_record_error(codec, limit))?;
        // The decoder reports a clean end of input even mid-frame; only
        // `finish` tells a complete frame from a truncated one.
        let (remaining, result) = decoder.finish();
        result.map_err(|_| decompress_error(codec, invalid("truncated lz4 frame")))?;
        if remaining.is_empty() {
            return Ok(out);
        }
        if remaining.len() >= rest.len() {
            return Err(decompress_error(
                codec,
                invalid("lz4 frame made no progress"),
            ));
        }
        rest = remaining;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_round_trip_and_trade_size_for_effort() {
        // Text with some repetition at varying distances: levels matter.
        let input: Vec<u8> = (0..4_000u32)
            .flat_map(|i| {
                format!(
                    "{{\"id\":{i},\"user\":\"u{}\",\"v\":{}}}",
                    i % 97,
                    i * 7 % 1013
                )
                .into_bytes()
            })
            .collect();
        let size = |codec, level| {
            let out = compress_at(codec, level, &input).unwrap();
            assert_eq!(
                decompress(codec, &out, 1 << 24).unwrap(),
                input,
                "{codec:?} {level:?}"
            );
            out.len()
        };
        for (codec, low, high) in [
            (Compression::Gzip, 1, 9),
            (Compression::Lz4, 1, 12),
            (Compression::Zstd, -5, 19),
        ] {
            let (l, h) = (size(codec, Some(low)), size(codec, Some(high)));
            assert!(
                h < l,
                "{codec:?}: level {high} gave {h} bytes, level {low} {l}"
            );
        }
        // Defaults: gzip -1 is gzip's default, lz4 9 is the fast mode.
        assert_eq!(
            size(Compression::Gzip, Some(-1)),
            size(Compression::Gzip, None)
        );
        assert_eq!(
            size(Compression::Lz4, Some(LZ4_DEFAULT_LEVEL)),
            size(Compression::Lz4, None)
        );
        assert_eq!(
            size(Compression::Zstd, Some(3)),
            size(Compression::Zstd, None)
        );
        // Out of range: clamped, still a valid stream.
        size(Compression::Zstd, Some(99));
        size(Compression::Gzip, Some(42));
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const MIB: usize = 1024 * 1024;

    fn samples() -> Vec<Vec<u8>> {
        let repetitive: Vec<u8> = b"rivulet-record "
            .iter()
            .copied()
            .cycle()
            .take(MIB)
            .collect();
        // Pseudo-random bytes that do not compress, from a fixed LCG.
        let mut state = 0x2545_f491_u32;
        let noisy: Vec<u8> = (0..100_000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        vec![
            Vec::new(),
            b"x".to_vec(),
            b"hello, kafka".to_vec(),
            repetitive,
            noisy,
        ]
    }

    #[test]
    fn every_codec_round_trips_empty_small_and_large_inputs() {
        for codec in ALL {
            for input in samples() {
                let compressed = compress(codec, &input).unwrap();
                let back = decompress(codec, &compressed, 2 * MIB).unwrap();
                assert_eq!(back, input, "{codec:?} with {} bytes", input.len());
            }
        }
    }

    #[test]
    fn output_exactly_at_the_limit_is_accepted() {
        let input = vec![7u8; 50_000];
        for codec in ALL {
            let compressed = compress(codec, &input).unwrap();
            assert_eq!(
                decompress(codec, &compressed, input.len()).unwrap(),
                input,
                "{codec:?}"
            );
            assert!(
                matches!(
                    decompress(codec, &compressed, input.len() - 1),
                    Err(RecordError::TooLarge { .. })
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn decompression_bomb_is_too_large_for_every_codec() {
        let zeros = vec![0u8; 10 * MIB];
        for codec in ALL {
            let bomb = compress(codec, &zeros).unwrap();
            match decompress(codec, &bomb, MIB) {
                Err(RecordError::TooLarge { limit }) => assert_eq!(limit, MIB),
                other => panic!("{codec:?}: expected TooLarge, got {other:?}"),
            }
        }
    }

    #[test]
    fn raw_snappy_block_bomb_is_rejected_from_its_declared_length() {
        let bomb = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 10 * MIB])
            .unwrap();
        assert!(matches!(
            decompress(Compression::Snappy, &bomb, MIB),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn decodes_raw_snappy_blocks() {
        let input = b"raw snappy as librdkafka writes it, raw snappy, raw snappy".to_vec();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_ne!(raw.get(..8), Some(&XERIAL_MAGIC[..]));
        assert_eq!(decompress(Compression::Snappy, &raw, MIB).unwrap(), input);
    }

    #[test]
    fn decodes_hand_built_snappy_java_framing() {
        let first = vec![b'a'; 1000];
        let second = b"second chunk".to_vec();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for chunk in [&first, &second] {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        let expected: Vec<u8> = first.iter().chain(&second).copied().collect();
        assert_eq!(
            decompress(Compression::Snappy, &framed, MIB).unwrap(),
            expected
        );
    }

    #[test]
    fn snappy_encoder_writes_snappy_java_framing_in_32k_chunks() {
        let input = vec![3u8; 3 * XERIAL_CHUNK + 5];
        let out = compress(Compression::Snappy, &input).unwrap();
        assert_eq!(out[..8], XERIAL_MAGIC);
        assert_eq!(out[8..16], [0, 0, 0, 1, 0, 0, 0, 1]);
        let mut rest = &out[16..];
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let block = &rest[4..4 + len];
            sizes.push(snap::raw::decompress_len(block).unwrap());
            rest = &rest[4 + len..];
        }
        assert_eq!(sizes, vec![XERIAL_CHUNK, XERIAL_CHUNK, XERIAL_CHUNK, 5]);
    }

    #[test]
    fn lz4_encoder_writes_independent_64k_blocks_without_checksums() {
        let out = compress(Compression::Lz4, b"frame").unwrap();
        assert_eq!(out[..4], [0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        // FLG: version 01, block independence set, no checksums, no size.
        assert_eq!(out[4], 0b0110_0000);
        // BD: maximum block size 64 KiB.
        assert_eq!(out[5], 0b0100_0000);
    }

    #[test]
    fn concatenated_gzip_members_lz4_and_zstd_frames_decode_in_full() {
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let mut joined = compress(codec, b"first ").unwrap();
            joined.extend(compress(codec, b"second").unwrap());
            assert_eq!(
                decompress(codec, &joined, MIB).unwrap(),
                b"first second",
                "{codec:?}"
            );
        }
    }

    #[test]
    fn truncated_streams_are_errors_not_short_outputs() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let compressed = compress(codec, &input).unwrap();
            for cut in [1, 7, compressed.len() / 2] {
                let result = decompress(codec, &compressed[..compressed.len() - cut], MIB);
                assert!(
                    matches!(result, Err(RecordError::Decompress { .. })),
                    "{codec:?} cut {cut}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn errors_name_the_codec() {
        let err = decompress(Compression::Zstd, b"not zstd", MIB).unwrap_err();
        assert!(
            matches!(err, RecordError::Decompress { codec: "zstd", .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("zstd decompression failed"));
    }

    fn any_codec() -> impl Strategy<Value = Compression> {
        proptest::sample::select(ALL.to_vec())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(codec in any_codec(), bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(out) = decompress(codec, &bytes, 4096) {
                prop_assert!(out.len() <= 4096);
            }
        }

        #[test]
        fn arbitrary_snappy_java_chunks_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = compress(Compression::Snappy, b"").unwrap();
            framed.extend_from_slice(&bytes);
            if let Ok(out) = decompress(Compression::Snappy, &framed, 4096) {
                prop_assert!(out.len() <= 4096);
            }
        }

        #[test]
        fn corrupted_streams_never_panic(
            codec in any_codec(),
            pos in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut compressed = compress(codec, &[42u8; 3000]).unwrap();
            let at = pos.index(compressed.len());
            compressed[at] ^= flip;
            if let Ok(out) = decompress(codec, &compressed, 4096) {
                prop_assert!(out.len() <= 4096);
            }
        }

        #[test]
        fn any_input_round_trips(codec in any_codec(), input in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let compressed = compress(codec, &input).unwrap();
            prop_assert_eq!(decompress(codec, &compressed, input.len()).unwrap(), input);
        }
    }
}
