//! Reads of a segment outside the log's lock: [`LogSegment::read`] plans
//! whole batches under the lock (position and length in the open file), and
//! the [`ReadPlan`] is executed after it — read into memory, or handed on as
//! a file range to be sent with `sendfile` ([`ReadPlan::file_piece`]).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use rivulet_protocol::record_batch;
use rivulet_protocol::spliced::FilePiece;

use super::LogSegment;
use crate::error::{IoContext, Result};

/// Bytes of one segment to be read outside the log's lock: a position and
/// length within an open file. The file stays readable even if the segment is
/// deleted meanwhile.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Arc<File>,
    path: Arc<PathBuf>,
    position: u64,
    len: usize,
}

impl ReadPlan {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The planned bytes as a range of the segment file, to be sent from
    /// it ([`FilePiece`]): whole batches, as the plan ends after one.
    pub fn file_piece(&self) -> FilePiece {
        FilePiece {
            file: self.file.clone(),
            position: self.position,
            len: self.len,
        }
    }

    /// Read the planned bytes and cut them after the last whole batch. The
    /// first batch is always whole (the plan covers it).
    ///
    /// The buffer is filled by `pread` straight into uninitialised capacity
    /// (rustix's safe spare-capacity API): zero-filling it first would cost
    /// as much memory bandwidth as the read itself.
    pub fn execute(&self) -> Result<Bytes> {
        let mut buf: Vec<u8> = Vec::with_capacity(self.len);
        while buf.len() < self.len {
            let at = self.position + buf.len() as u64;
            let before = buf.len();
            rustix::io::pread(&*self.file, rustix::buffer::spare_capacity(&mut buf), at)
                .map_err(std::io::Error::from)
                .at(self.path.as_path())?;
            if buf.len() == before {
                // The file ended early (truncated since the plan was made).
                break;
            }
        }
        let mut end = 0;
        while let Some(size) = buf.get(end..).and_then(record_batch::peek_batch_size) {
            if end + size > buf.len() {
                break;
            }
            end += size;
        }
        buf.truncate(end);
        Ok(Bytes::from(buf))
    }
}

impl LogSegment {
    /// Plan a read of whole batches starting with the one holding
    /// `start_offset`, up to `max_bytes` (but at least that first batch when
    /// `min_one_batch`) and never past `max_position`. The plan ends after a
    /// batch: where `max_bytes` cuts one, before it (the offset index and a
    /// batch header or two find where).
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_position: Option<u64>,
        min_one_batch: bool,
    ) -> Result<Option<ReadPlan>> {
        let Some((position, first)) = self.translate_offset(start_offset)? else {
            return Ok(None);
        };
        let limit = max_position.unwrap_or(self.size).min(self.size);
        if position >= limit {
            return Ok(None);
        }
        let available = (limit - position) as usize;
        let first_size = first.size_in_bytes();
        let mut len = max_bytes.min(available);
        if len < first_size {
            if !min_one_batch || first_size > available {
                return Ok(None);
            }
            len = first_size;
        } else if len < available {
            len = self.whole_batches_end(position, first_size, position + len as u64)?;
        }
        Ok(Some(ReadPlan {
            file: self.log.clone(),
            path: self.log_path.clone(),
            position,
            len,
        }))
    }

    /// From the batch at `position` (of `first_size` bytes, which fits), the
    /// length up to the end of the last batch ending at or before `end`.
    fn whole_batches_end(&self, position: u64, first_size: usize, end: u64) -> Result<usize> {
        let mut at = position + first_size as u64;
        if let Some(indexed) = self.offset_index.floor_position(end) {
            at = at.max(indexed);
        }
        while let Some(h) = self.header_at(at)? {
            let next = at + h.size_in_bytes() as u64;
            if next > end {
                break;
            }
            at = next;
        }
        Ok((at - position) as usize)
    }
}
