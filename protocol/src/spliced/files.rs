//! File pieces: byte ranges of open files (a follower's records still in
//! the leader's log) that a [`SplicedFrame`](super::SplicedFrame) carries in
//! the place of a stand-in of the same length, and the sender that puts them
//! on a plain socket with `sendfile(2)`, from the page cache, through no
//! buffer of ours.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::MIN_SPLICE;

/// A byte range of an open file, to be sent as it is in the page cache.
#[derive(Debug, Clone)]
pub struct FilePiece {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

impl FilePiece {
    /// Its bytes, read now; an error when the file no longer holds them
    /// all (truncated since the range was taken).
    pub fn read(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}

/// Zeros that stand in for file pieces while a message is encoded (never
/// sent: [`encode_spliced`](super::encode_spliced) replaces every stand-in by its file range, or
/// fails): a read-only anonymous mapping made once and never written, so it
/// takes address space, not memory (nor room in the binary, as a static
/// array would). `None` if it cannot be mapped: nothing is sent from files.
fn stand_ins() -> Option<&'static [u8]> {
    static AREA: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *AREA.get_or_init(|| {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a new private anonymous mapping, not aliased by anything.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                STAND_IN_BYTES,
                ProtFlags::READ,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .ok()?;
        // SAFETY: the mapping is STAND_IN_BYTES of readable zeros and is
        // never unmapped or written: valid shared bytes for the process's
        // life.
        Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().cast_const(), STAND_IN_BYTES) })
    })
}

/// Most bytes of file pieces one frame can stand in for; a caller with more
/// reads the rest into memory.
pub const STAND_IN_BYTES: usize = 64 << 20;

/// A stand-in for a file piece of `len` bytes, `at` bytes into the stand-in
/// area: each file piece of one frame needs its own range (`at` the sum of
/// the lengths before it), as pieces are told apart by address. `None` when
/// it does not fit, or is shorter than [`MIN_SPLICE`].
pub fn file_stand_in(at: usize, len: usize) -> Option<Bytes> {
    if len < MIN_SPLICE {
        return None;
    }
    let end = at.checked_add(len)?;
    stand_ins()?.get(at..end).map(Bytes::from_static)
}

/// Record bytes sent from files with `sendfile(2)`, over the process.
pub static SENDFILE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Sends file pieces to a plain TCP socket with `sendfile(2)`: a second
/// descriptor of the socket, registered for writability only, beside the
/// stream that writes the rest of each frame.
#[derive(Debug)]
pub struct FileSender {
    fd: AsyncFd<OwnedFd>,
}

impl FileSender {
    /// A sender to `socket` (a connected TCP socket in non-blocking mode,
    /// as tokio's are).
    pub fn new(socket: &impl AsFd) -> io::Result<Self> {
        let fd = socket.as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a descriptor of our own, open until the AsyncFd
        // that owns it is dropped, and its `as_raw_fd` never changes.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(FileSender { fd })
    }

    /// A sender to the socket `fd`.
    ///
    /// # Safety
    /// `fd` must be an open socket during the call (the sender keeps a
    /// descriptor of its own).
    pub unsafe fn from_raw(fd: std::os::fd::RawFd) -> io::Result<Self> {
        // SAFETY: open for this call, as the caller promises.
        let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        FileSender::new(&socket)
    }

    /// Send all of `piece`; an error when the file ends before it (the
    /// frame can no longer be completed: the caller drops the connection).
    pub(super) async fn send(&self, piece: &FilePiece) -> io::Result<()> {
        let mut position = piece.position;
        let mut left = piece.len;
        while left > 0 {
            let mut ready = self.fd.writable().await?;
            let sent = ready.try_io(|fd| {
                rustix::fs::sendfile(fd.get_ref(), &*piece.file, Some(&mut position), left)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended before its piece was sent (truncated meanwhile)",
                    ))
                }
                Ok(Ok(n)) => {
                    left = left.saturating_sub(n);
                    SENDFILE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
                }
                Ok(Err(e)) => return Err(e),
                // Not writable after all: wait again.
                Err(_) => continue,
            }
        }
        Ok(())
    }
}
