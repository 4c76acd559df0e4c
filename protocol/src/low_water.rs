//! A socket's receive low-water mark (`SO_RCVLOWAT`) while a large frame
//! body is read: the reader is woken once most of what it still expects has
//! arrived, not for every TCP segment.
//!
//! A client that writes a request in many small pieces (librdkafka over TLS
//! writes one TLS record per record value, each its own TCP segment) would
//! otherwise wake the connection's task for every few kilobytes: about seven
//! wake-ups and sixteen `recv` calls per 1 MB Produce request. Before each
//! wait for more of a body, the mark is raised to what the frame still
//! lacks, minus what a layer above the socket may already hold; once the
//! body is in, it goes back to one byte, so the next frame's size prefix
//! wakes the reader as before. The kernel still wakes the reader early when
//! its receive buffer fills or the peer closes, so a mark never stalls a
//! connection.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Below this many missing bytes a wake-up per segment costs little: the
/// mark stays at one byte.
const MIN_MARK: usize = 64 * 1024;

/// The low-water mark of one connection's socket.
#[derive(Debug)]
pub struct LowWater {
    /// None: not a socket (the mark is never set).
    fd: Option<RawFd>,
    /// Bytes of the frame a layer above the socket may hold when a read
    /// waits (TLS: one partial record); the mark stays this far below what
    /// is missing, so the bytes that will arrive always reach it.
    slack: usize,
    /// The mark now set (1 is the kernel's default).
    mark: usize,
}

impl LowWater {
    /// `fd` must stay open as long as this value is used.
    pub fn new(fd: RawFd, slack: usize) -> Self {
        LowWater {
            fd: Some(fd),
            slack,
            mark: 1,
        }
    }

    /// For a stream that is not a socket: reads wait as they would.
    pub fn none() -> Self {
        LowWater {
            fd: None,
            slack: 0,
            mark: 1,
        }
    }

    /// A read is about to wait while `missing` bytes of the frame have not
    /// been read: wake it only once most of them are in.
    fn before_wait(&mut self, missing: usize) {
        let mark = missing.saturating_sub(self.slack);
        self.set(if mark >= MIN_MARK { mark } else { 1 });
    }

    /// Bytes the socket holds unread (`FIONREAD`), if it is a socket that
    /// says: what a frame's buffer can grow to at once, since those bytes
    /// are there.
    pub fn queued(&self) -> Option<usize> {
        let fd = self.fd?;
        let mut queued: libc::c_int = 0;
        // SAFETY: `fd` is an open socket (the caller's promise to `new`);
        // the kernel writes one c_int to `queued`, which outlives the call.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        if rc == 0 {
            usize::try_from(queued).ok()
        } else {
            None
        }
    }

    /// The frame is in (or abandoned): back to waking on every byte.
    pub fn reset(&mut self) {
        self.set(1);
    }

    fn set(&mut self, mark: usize) {
        let Some(fd) = self.fd else { return };
        if mark == self.mark {
            return;
        }
        let value = libc::c_int::try_from(mark).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fd` is an open socket (the caller's promise to `new`);
        // the option value is a c_int read by the kernel during the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // A socket that refuses the option keeps waking on every segment,
        // which is only slower; remember what the kernel has.
        if rc == 0 {
            self.mark = mark;
        }
    }
}

/// A reader of the `missing` last bytes of a frame that raises `low`'s mark
/// before each wait.
pub struct Watched<'a, R> {
    pub inner: &'a mut R,
    pub low: &'a mut LowWater,
    pub missing: usize,
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<'_, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_read(cx, buf);
        // The socket is drained (its readiness cleared): a mark set now
        // applies to the next wake-up, and the kernel checks it at once
        // against what arrived meanwhile.
        if polled.is_pending() {
            this.low.before_wait(this.missing);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Both ends of a loopback TCP connection: (client, server).
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn mark_of(fd: RawFd) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: fd is an open socket; value and len outlive the call.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[tokio::test]
    async fn a_frame_trickled_in_small_pieces_is_read_whole_and_the_mark_goes_back() {
        const SIZE: usize = 600 * 1024;
        let (mut s, mut server) = connected().await;
        let writer = tokio::spawn(async move {
            let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
            for piece in body.chunks(1000) {
                s.write_all(piece).await.unwrap();
            }
            // Then a small frame: it must not wait behind a raised mark.
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.write_all(b"tail").await.unwrap();
            s
        });
        let mut low = LowWater::new(server.as_raw_fd(), 0);
        let mut got = Vec::with_capacity(SIZE);
        while got.len() < SIZE {
            let missing = SIZE - got.len();
            let mut watched = Watched {
                inner: &mut server,
                low: &mut low,
                missing,
            };
            let n = (&mut watched)
                .take(missing as u64)
                .read_buf(&mut got)
                .await
                .unwrap();
            assert!(n > 0);
        }
        low.reset();
        assert_eq!(mark_of(server.as_raw_fd()), 1);
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        let mut tail = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut tail))
            .await
            .expect("the small frame after a large one is read at once")
            .unwrap();
        assert_eq!(&tail, b"tail");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn the_mark_follows_what_is_missing_less_the_slack() {
        let (_client, server) = connected().await;
        let fd = server.as_raw_fd();
        let mut low = LowWater::new(fd, 20 * 1024);
        low.before_wait(500 * 1024);
        assert_eq!(mark_of(fd), 480 * 1024);
        low.before_wait(MIN_MARK + 20 * 1024 - 1);
        assert_eq!(
            mark_of(fd),
            1,
            "below the minimum the mark stays at one byte"
        );
        low.before_wait(300 * 1024);
        low.reset();
        assert_eq!(mark_of(fd), 1);
    }

    #[tokio::test]
    async fn a_read_dropped_unfinished_puts_the_mark_back() {
        let (mut client, mut server) = connected().await;
        let fd = server.as_raw_fd();
        let mut low = LowWater::new(fd, 0);
        client.write_all(&[1u8; 1000]).await.unwrap();
        let read = crate::wire::read_body(&mut server, 1 << 20, Duration::from_secs(30), &mut low);
        // The caller gives up while most of the frame is missing.
        assert!(tokio::time::timeout(Duration::from_millis(200), read)
            .await
            .is_err());
        assert_eq!(mark_of(fd), 1);
    }

    #[tokio::test]
    async fn queued_counts_what_arrived_and_was_not_read() {
        let (mut client, mut server) = connected().await;
        let low = LowWater::new(server.as_raw_fd(), 0);
        assert_eq!(low.queued(), Some(0));
        client.write_all(&[7u8; 3000]).await.unwrap();
        let mut first = [0u8; 1000];
        server.read_exact(&mut first).await.unwrap();
        for _ in 0..100 {
            if low.queued() == Some(2000) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(low.queued(), Some(2000));
        assert_eq!(LowWater::none().queued(), None);
    }
}
