//! The hostile clients and the probes that time the broker meanwhile.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::wire::{self, WireError, MIN_RESPONSE_SIZE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

// ---- clients ----

/// What the connections of one phase did.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) frames: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) responses: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// The largest response size a hostile client accepts: any a size prefix
/// can state (the bodies are skipped, not held).
const ANY_SIZE: usize = i32::MAX as usize;

/// Read responses until the connection ends (or a size prefix is not a
/// response's), skipping their bodies as they arrive. No wait of its own is
/// bounded: the phase ends the task.
pub(crate) async fn drain_responses<R: AsyncRead + Unpin>(mut r: R, c: &Counters) {
    while let Ok(size) = wire::read_size(&mut r, MIN_RESPONSE_SIZE, ANY_SIZE, Duration::MAX).await {
        let mut body = (&mut r).take(size as u64);
        if tokio::io::copy(&mut body, &mut tokio::io::sink())
            .await
            .is_err()
        {
            return;
        }
        Counters::add(&c.responses, 1);
    }
}

/// Huge claims: 16 frames per connection from `start` on, then read until
/// the broker closes; next connection starts one frame further.
pub(crate) async fn claims_client(
    addr: String,
    frames: Arc<Vec<Bytes>>,
    start: usize,
    c: Arc<Counters>,
) {
    const PER_CONNECTION: usize = 16;
    let mut i = start;
    loop {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        Counters::add(&c.connects, 1);
        let mut batch = BytesMut::new();
        for k in 0..PER_CONNECTION {
            batch.put_slice(&frames[(i + k) % frames.len()]);
        }
        i += 1;
        // The broker closes after the first frame: later writes may fail.
        let _ = s.write_all(&batch).await;
        Counters::add(&c.frames, PER_CONNECTION as u64);
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    Counters::add(&c.closed, 1);
                    break;
                }
                Ok(Ok(_)) => Counters::add(&c.responses, 1),
                Err(_) => break, // neither answered nor closed: counted by the gap
            }
        }
    }
}

/// A size prefix of `limit`, a Produce header and 4 KiB, then nothing.
pub(crate) async fn stalled_client(addr: String, limit: usize, c: Arc<Counters>) {
    let Ok(mut s) = TcpStream::connect(&addr).await else {
        return;
    };
    Counters::add(&c.connects, 1);
    // A Produce frame of 4 KiB whose size prefix claims `limit` bytes.
    let mut head = BytesMut::from(raw_frame(ApiKey::Produce, 9, &[0x5a; 4096]));
    head[..4].copy_from_slice(&(limit as i32).to_be_bytes());
    if s.write_all(&head).await.is_ok() {
        Counters::add(&c.frames, 1);
    }
    // Returns only if the broker closes the connection.
    drain_responses(s, &c).await;
    Counters::add(&c.closed, 1);
}

/// Send `frame` as fast as the broker takes it; read the responses or not.
pub(crate) async fn flood_client(addr: String, frame: Bytes, read: bool, c: Arc<Counters>) {
    loop {
        let Ok(s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        Counters::add(&c.connects, 1);
        let (r, mut w) = s.into_split();
        // Dropped (and its reader aborted) with this connection or task.
        let mut reader = tokio::task::JoinSet::new();
        if read {
            let c = c.clone();
            reader.spawn(async move { drain_responses(r, &c).await });
        }
        while w.write_all(&frame).await.is_ok() {
            Counters::add(&c.frames, 1);
        }
        Counters::add(&c.closed, 1);
    }
}

/// ApiVersions v3 (with `pad` bytes of unknown tagged field) on a fresh
/// connection: the advertised `(key, min, max)` ranges.
pub(crate) async fn api_versions(addr: &str, pad: usize) -> Result<Vec<(i16, i16, i16)>, String> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("hostile"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .with_unknown_tagged_fields(pad_fields(pad));
    let mut client = wire::connect(addr)
        .await
        .map_err(|e| e.to_string())?
        .with_client_id(Some("hostile".to_string()));
    let r = client
        .round_trip(3, &req)
        .await
        .map_err(|e| e.to_string())?;
    if r.error_code != 0 {
        return Err(format!("error code {}", r.error_code));
    }
    Ok(r.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect())
}

/// Send one whole frame on a fresh connection: the response's size and
/// the time it took (60 s at most).
pub(crate) async fn one_request(addr: &str, frame: &[u8]) -> Result<(usize, Duration), String> {
    const WAIT: Duration = Duration::from_secs(60);
    let started = Instant::now();
    let exchange = async {
        let mut client = wire::connect(addr)
            .await?
            .with_max_response_bytes(ANY_SIZE)
            .with_timeout(WAIT);
        client.send(frame).await?;
        Ok::<_, WireError>(client.read_response().await?.len())
    };
    match tokio::time::timeout(WAIT, exchange).await {
        Ok(Ok(size)) => Ok((size, started.elapsed())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 60 s".into()),
    }
}

/// What the probes saw during a phase.
#[derive(Default)]
pub(crate) struct Probes {
    pub(crate) slowest_ms: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) large_sent: AtomicU64,
    pub(crate) large_ok: AtomicU64,
}

/// One ApiVersions probe: its time counts, and a failure unless answered,
/// also when the phase ends before it does (the task is dropped then).
pub(crate) struct Attempt<'a> {
    pub(crate) probes: &'a Probes,
    pub(crate) started: Instant,
    pub(crate) answered: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.probes.slowest_ms.fetch_max(ms, Relaxed);
        if !self.answered {
            Counters::add(&self.probes.failed, 1);
        }
    }
}

/// An ApiVersions every 250 ms (5 s to answer).
pub(crate) async fn small_probe(addr: String, p: Arc<Probes>) {
    loop {
        let mut attempt = Attempt {
            probes: &p,
            started: Instant::now(),
            answered: false,
        };
        let r = tokio::time::timeout(Duration::from_secs(5), api_versions(&addr, 0)).await;
        attempt.answered = matches!(r, Ok(Ok(_)));
        drop(attempt);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A 256 KiB ApiVersions every second (3 s to answer), each on its own
/// task so that one waiting for the pool does not hold up the next.
pub(crate) async fn large_probe(addr: String, p: Arc<Probes>) {
    let mut probes = tokio::task::JoinSet::new();
    loop {
        let (addr, p) = (addr.clone(), p.clone());
        probes.spawn(async move {
            Counters::add(&p.large_sent, 1);
            let r =
                tokio::time::timeout(Duration::from_secs(3), api_versions(&addr, 256 * 1024)).await;
            if matches!(r, Ok(Ok(_))) {
                Counters::add(&p.large_ok, 1);
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        while probes.try_join_next().is_some() {}
    }
}
