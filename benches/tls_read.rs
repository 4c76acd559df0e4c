//! What rustls' unbuffered API would save on the broker's TLS read path
//! (issue 13, produce over SASL_SSL), measured in memory so neither the
//! kernel nor the client is in the figure. A plain harness, not criterion.
//!
//! A rustls client encrypts Produce-sized requests (`TLS_READ_REQUEST`
//! bytes, default 1 MB) as librdkafka writes them: the first
//! `TLS_READ_COPIED` per cent (default 85) in one write, cut by rustls into
//! 16 KiB records; the rest as one record per 1 KiB value and one per
//! 10-byte record header (librdkafka's `SSL_write` per buffer slice once a
//! batch outgrows its copy buffer; `strace -f` of the Python producer).
//! Two server connections decrypt the same traffic into 1 MB frames, the
//! bytes arriving in 64 KiB "reads" (the broker's TLS read buffer), each
//! first copied into a receive buffer as `recv` would:
//!
//! - buffered: `ServerConnection` as tokio-rustls drives it (`read_tls` from
//!   the receive buffer into rustls' deframer, `process_new_packets`, the
//!   plaintext read out of rustls' buffer into the frame);
//! - unbuffered: `UnbufferedServerConnection` reading records straight from
//!   the receive buffer (no deframer copy), each record's plaintext copied
//!   into the frame. In rustls 0.23.46 this path still hands each record's
//!   plaintext over in a `Vec` of its own (`ReadTraffic::next_record`), so
//!   what it saves is the copy into the deframer and its buffer management.
//!
//! Prints CPU seconds per GB of plaintext for each and the difference.
//! `TLS_READ_MB` (default 256) sets how much is decrypted per run,
//! `TLS_READ_REPEAT` (default 3) the runs (best of each).
//!
//! `TLS_WRITE=1` measures the other direction instead (fetch responses over
//! TLS): 1 MiB responses written through a `ServerConnection` (256 KiB
//! buffer limit, as the broker's TLS listeners) and drained into a reused
//! buffer, against the least any record layer must do (copy a 16 KiB
//! fragment, seal it with AES-256-GCM, copy the record out) and a bare copy.
//!
//! Certificates come from `rivulet certs generate` (`$RIVULET_BIN` or the
//! release build, as for the other benches). Run: `cargo bench --bench tls_read`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rivulet_protocol::tls::{ClientAuth, ClientConfig, ServerConfig, TlsFiles};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;
use rustls::{ClientConnection, ServerConnection};

#[path = "common/mod.rs"]
#[allow(dead_code)] // only the knobs and the binary are used here
mod common;
use common::{env_usize, rivulet_bin};

const RECV: usize = 64 * 1024;
const FRAME: usize = 1 << 20;

fn configs(dir: &std::path::Path) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let status = std::process::Command::new(rivulet_bin())
        .args(["certs", "generate", "--dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run rivulet certs generate");
    assert!(status.success(), "rivulet certs generate failed");
    let server = TlsFiles {
        certificate: Some(dir.join("node.pem")),
        key: Some(dir.join("node.key")),
        ca: Some(dir.join("ca.pem")),
    }
    .server_config(ClientAuth::None)
    .expect("server config");
    let client = TlsFiles {
        certificate: None,
        key: None,
        ca: Some(dir.join("ca.pem")),
    }
    .client_config()
    .expect("client config");
    (server, client)
}

fn client(config: &Arc<ClientConfig>) -> ClientConnection {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut c = ClientConnection::new(config.clone(), name).expect("client");
    // A whole request is encrypted before it is drained.
    c.set_buffer_limit(None);
    c
}

/// Everything `c` has to send.
fn drain(c: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut out).expect("write_tls");
    }
    out
}

fn feed_client(c: &mut ClientConnection, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        c.read_tls(&mut bytes).expect("client read_tls");
        c.process_new_packets().expect("client process");
    }
}

fn handshake_buffered(s: &mut ServerConnection, c: &mut ClientConnection) {
    for _ in 0..10 {
        let to_server = drain(c);
        let mut rd = &to_server[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("server read_tls");
            s.process_new_packets().expect("server process");
        }
        let mut to_client = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut to_client).expect("server write_tls");
        }
        feed_client(c, &to_client);
        if !s.is_handshaking() && !c.is_handshaking() && !c.wants_write() {
            return;
        }
    }
    panic!("buffered handshake did not finish");
}

fn handshake_unbuffered(s: &mut UnbufferedServerConnection, c: &mut ClientConnection) {
    let mut incoming = Vec::new();
    let mut out = vec![0u8; 64 * 1024];
    for _ in 0..10 {
        incoming.extend_from_slice(&drain(c));
        let mut out_len = 0;
        let done = loop {
            let status = s.process_tls_records(&mut incoming);
            let discard = status.discard;
            let mut stop = None;
            match status.state.expect("server state") {
                ConnectionState::EncodeTlsData(mut e) => {
                    out_len += e.encode(&mut out[out_len..]).expect("encode");
                }
                ConnectionState::TransmitTlsData(t) => {
                    feed_client(c, &out[..out_len]);
                    out_len = 0;
                    t.done();
                }
                ConnectionState::BlockedHandshake => stop = Some(false),
                ConnectionState::WriteTraffic(_) => stop = Some(true),
                _ => panic!("unexpected state in the handshake"),
            }
            incoming.drain(..discard);
            if let Some(done) = stop {
                break done;
            }
        };
        feed_client(c, &out[..out_len]);
        if done && !c.is_handshaking() && !c.wants_write() {
            assert!(incoming.is_empty());
            return;
        }
    }
    panic!("unbuffered handshake did not finish");
}

/// `requests` requests of `request` bytes, written as librdkafka does.
fn traffic(c: &mut ClientConnection, requests: usize, request: usize, copied: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..request).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::new();
    for _ in 0..requests {
        let head = request * copied / 100;
        c.writer().write_all(&body[..head]).expect("write");
        let mut at = head;
        while at < request {
            let header = (request - at).min(10);
            c.writer().write_all(&body[at..at + header]).expect("write");
            at += header;
            let value = (request - at).min(1024);
            c.writer().write_all(&body[at..at + value]).expect("write");
            at += value;
        }
        out.extend_from_slice(&drain(c));
    }
    out
}

/// The request frame being filled (as `wire::read_body` fills one), and a
/// checksum of every frame handed on, so both paths are seen to read the
/// same bytes.
struct Frame {
    buf: Vec<u8>,
    filled: usize,
    checksum: u64,
}

impl Frame {
    fn new() -> Self {
        Frame {
            buf: vec![0u8; FRAME],
            filled: 0,
            checksum: 0,
        }
    }

    /// Where the next bytes go.
    fn room(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// `n` bytes were written into [`Frame::room`]; a full frame is handed on.
    fn filled(&mut self, n: usize) {
        self.filled += n;
        if self.filled == FRAME {
            self.checksum = self
                .checksum
                .wrapping_mul(31)
                .wrapping_add(self.buf[FRAME / 2] as u64);
            self.filled = 0;
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = self.room();
            let n = room.len().min(bytes.len());
            room[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.filled(n);
        }
    }
}

fn run_buffered(s: &mut ServerConnection, wire: &[u8]) -> (f64, usize, u64) {
    let mut recv = vec![0u8; RECV];
    let mut frame = Frame::new();
    let mut total = 0usize;
    let start = Instant::now();
    for chunk in wire.chunks(RECV) {
        recv[..chunk.len()].copy_from_slice(chunk);
        let mut rd = &recv[..chunk.len()];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("read_tls");
            s.process_new_packets().expect("process");
            loop {
                let n = s.reader().read(frame.room()).unwrap_or(0);
                if n == 0 {
                    break;
                }
                total += n;
                frame.filled(n);
            }
        }
    }
    (start.elapsed().as_secs_f64(), total, frame.checksum)
}

fn run_unbuffered(s: &mut UnbufferedServerConnection, wire: &[u8]) -> (f64, usize, u64) {
    let mut recv = vec![0u8; 4 * RECV];
    // Undecrypted bytes are recv[start..used]; what is before `start` is
    // done with, and moved out only before the next read.
    let (mut start_at, mut used) = (0, 0);
    let mut frame = Frame::new();
    let mut total = 0usize;
    let start = Instant::now();
    for chunk in wire.chunks(RECV) {
        recv.copy_within(start_at..used, 0);
        used -= start_at;
        start_at = 0;
        recv[used..used + chunk.len()].copy_from_slice(chunk);
        used += chunk.len();
        loop {
            let status = s.process_tls_records(&mut recv[start_at..used]);
            let mut discard = status.discard;
            let more = match status.state.expect("state") {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        let record = record.expect("record");
                        discard += record.discard;
                        total += record.payload.len();
                        frame.push(record.payload);
                    }
                    true
                }
                ConnectionState::WriteTraffic(_) => false,
                _ => panic!("unexpected state after the handshake"),
            };
            start_at += discard;
            if !more {
                break;
            }
        }
    }
    (start.elapsed().as_secs_f64(), total, frame.checksum)
}

/// `TLS_WRITE=1`: what rustls' write path costs per GB of plaintext, beside
/// a minimal record layer and a bare copy (three runs).
fn write_experiment(server_config: &Arc<ServerConfig>, client_config: &Arc<ClientConfig>) {
    let mut c = client(client_config);
    let mut s = ServerConnection::new(server_config.clone()).expect("server");
    handshake_buffered(&mut s, &mut c);
    s.set_buffer_limit(Some(256 * 1024));
    let response = vec![7u8; 1 << 20];
    let mut sink: Vec<u8> = Vec::with_capacity(4 << 20);
    let n = 512;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            let mut rest = &response[..];
            while !rest.is_empty() {
                let w = s.writer().write(rest).expect("write");
                rest = &rest[w..];
                while s.wants_write() {
                    sink.clear();
                    s.write_tls(&mut sink).expect("write_tls");
                }
            }
        }
        let rustls_t = t.elapsed().as_secs_f64();
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[1u8; 32]).expect("key"));
        let mut buf = vec![0u8; 16384 + 5 + 17];
        let t = Instant::now();
        let mut seq = 0u64;
        for _ in 0..n {
            for chunk in response.chunks(16384) {
                let len = chunk.len();
                buf[5..5 + len].copy_from_slice(chunk);
                buf[5 + len] = 0x17;
                seq += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&seq.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from([0x17u8, 3, 3, 0, 0]),
                        &mut buf[5..6 + len],
                    )
                    .expect("seal");
                buf[6 + len..6 + len + 16].copy_from_slice(tag.as_ref());
                sink.clear();
                sink.extend_from_slice(&buf[..6 + len + 16]);
            }
        }
        let own_t = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..n {
            for chunk in response.chunks(16384) {
                sink.clear();
                sink.extend_from_slice(chunk);
            }
        }
        let copy_t = t.elapsed().as_secs_f64();
        let gb = n as f64 * response.len() as f64 / 1e9;
        println!(
            "write: rustls {:.3} s/GB, copy + seal + copy {:.3} s/GB, one copy {:.3} s/GB",
            rustls_t / gb,
            own_t / gb,
            copy_t / gb
        );
    }
}

fn main() {
    if std::env::var("TLS_WRITE").is_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server_config, client_config) = configs(dir.path());
        write_experiment(&server_config, &client_config);
        return;
    }
    let mb = env_usize("TLS_READ_MB", 256);
    let request = env_usize("TLS_READ_REQUEST", 1_000_000);
    let copied = env_usize("TLS_READ_COPIED", 85).min(100);
    let repeat = env_usize("TLS_READ_REPEAT", 3).max(1);
    let requests = (mb * 1_000_000 / request).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (server_config, client_config) = configs(dir.path());
    let (mut best_b, mut best_u) = (f64::MAX, f64::MAX);
    for _ in 0..repeat {
        let mut cb = client(&client_config);
        let mut sb = ServerConnection::new(server_config.clone()).expect("server");
        handshake_buffered(&mut sb, &mut cb);
        let mut cu = client(&client_config);
        let mut su = UnbufferedServerConnection::new(server_config.clone()).expect("server");
        handshake_unbuffered(&mut su, &mut cu);
        let wire_b = traffic(&mut cb, requests, request, copied);
        let wire_u = traffic(&mut cu, requests, request, copied);
        let (tb, nb, kb) = run_buffered(&mut sb, &wire_b);
        let (tu, nu, ku) = run_unbuffered(&mut su, &wire_u);
        assert_eq!((nb, kb), (nu, ku), "both must read the same plaintext");
        assert_eq!(nb, requests * request);
        let gb = nb as f64 / 1e9;
        best_b = best_b.min(tb / gb);
        best_u = best_u.min(tu / gb);
        println!(
            "run: {:.0} MB in {} TLS bytes: buffered {:.3} s/GB, unbuffered {:.3} s/GB",
            nb as f64 / 1e6,
            wire_b.len(),
            tb / gb,
            tu / gb
        );
    }
    println!(
        "best of {repeat}: buffered (tokio-rustls path) {best_b:.3} s/GB, unbuffered \
         {best_u:.3} s/GB, saving {:.3} s/GB ({:.0} %); {copied} % of each {request}-byte \
         request in 16 KiB records",
        best_b - best_u,
        100.0 * (best_b - best_u) / best_b
    );
}
