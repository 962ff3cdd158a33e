//! A flaky HTTP proxy for the S3 fault tests: a std-net TCP proxy in
//! front of the S3 server (moto) that, for a share of requests chosen by
//! a seeded generator, answers `503 SlowDown` without forwarding, closes
//! the connection without forwarding, or forwards the request and then
//! closes the connection without passing the answer on (the request took
//! effect, the client never learns it: the hardest case for a retry). It
//! can also stop forwarding altogether after a number of requests, to cut
//! a flush in the middle. It counts requests and the most it had in
//! flight at once (optionally holding requests until a number are, so
//! that the count does not depend on how fast the server answers).
//!
//! Each connection carries one request: the proxy reads it (headers and
//! a `Content-Length` body; object_store sends no chunked bodies), sends
//! it upstream with `Connection: close` on a new connection, and relays
//! the answer with `Connection: close`, so the client never reuses a
//! connection the proxy is about to drop. Moto checks no signatures, so
//! the `Host` the client signed (the proxy's) does not matter.
//!
//! Which request gets which fault follows the seed and the order requests
//! arrive in (deterministic for one client thread; with several, the
//! same sequence of faults is dealt out in arrival order).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shares of requests that get each fault (each in `0.0..=1.0`, summed at
/// most 1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Answered `503 Service Unavailable` (S3's `SlowDown`), not forwarded.
    pub unavailable: f64,
    /// The connection closed after the request was read, not forwarded.
    pub drop_before: f64,
    /// Forwarded, then the connection closed without the answer.
    pub drop_after: f64,
    /// After this many forwarded requests, every later one is answered
    /// 503 (a server that went away in the middle of a flush).
    pub forward_at_most: Option<u64>,
    /// Holds each forwarded request until this many are in flight at once
    /// (or 3 s passed); once that happened, holds none. Makes a
    /// concurrency test count what the client keeps in flight rather than
    /// how fast the server answers.
    pub hold_until_in_flight: Option<u64>,
}

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub unavailable: AtomicU64,
    pub dropped_before: AtomicU64,
    pub dropped_after: AtomicU64,
    pub forwarded: AtomicU64,
    /// Requests forwarded and not yet answered, now and at most.
    in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// Response bytes (headers and body) passed on to clients.
    pub bytes_to_clients: AtomicU64,
}

impl Stats {
    pub fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::SeqCst)
    }
}

pub struct FlakyProxy {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl FlakyProxy {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts a proxy to `upstream` (`http://host:port`).
    pub fn start(upstream: &str, seed: u64, faults: Faults) -> FlakyProxy {
        let up: SocketAddr = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .trim_end_matches('/')
            .parse()
            .expect("upstream as IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, up, seed, faults, &st);
                });
            }
        });
        FlakyProxy { addr, stats, stop }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// splitmix64: the `n`-th draw of the seed's sequence, in `0.0..1.0`.
fn draw(seed: u64, n: u64) -> f64 {
    let mut z = seed
        .wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Headers up to the blank line (exclusive), or `None` at EOF.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head with `Connection: close` in place of any connection header.
fn closing(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let conn = l
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"));
        if i == 0 || !conn {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
     <Message>Please reduce your request rate.</Message></Error>";

fn unavailable(mut client: TcpStream) -> std::io::Result<()> {
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
        SLOW_DOWN.len()
    );
    client.write_all(reply.as_bytes())?;
    client.shutdown(Shutdown::Both)
}

fn serve(
    client: TcpStream,
    up: SocketAddr,
    seed: u64,
    faults: Faults,
    st: &Stats,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let len: usize = header(&head, "content-length")
        .map_or(Ok(0), str::parse)
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let n = st.requests.fetch_add(1, Ordering::SeqCst);
    let u = draw(seed, n);
    if u < faults.unavailable {
        st.unavailable.fetch_add(1, Ordering::SeqCst);
        return unavailable(client);
    }
    if u < faults.unavailable + faults.drop_before {
        st.dropped_before.fetch_add(1, Ordering::SeqCst);
        return client.shutdown(Shutdown::Both);
    }
    if let Some(most) = faults.forward_at_most
        && st.forwarded.load(Ordering::SeqCst) >= most
    {
        st.unavailable.fetch_add(1, Ordering::SeqCst);
        return unavailable(client);
    }
    let lost = u < faults.unavailable + faults.drop_before + faults.drop_after;
    st.forwarded.fetch_add(1, Ordering::SeqCst);
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if let Some(k) = faults.hold_until_in_flight {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while st.max_in_flight.load(Ordering::SeqCst) < k && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    let r = forward(client, up, &head, &body, lost, st);
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    r
}

fn forward(
    mut client: TcpStream,
    up: SocketAddr,
    head: &[String],
    body: &[u8],
    lost: bool,
    st: &Stats,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(up)?;
    server.write_all(&closing(head))?;
    server.write_all(body)?;
    let mut from = BufReader::new(server);
    let Some(answer) = read_head(&mut from)? else {
        return client.shutdown(Shutdown::Both);
    };
    if lost {
        // The server did it; the client will not hear so.
        std::io::copy(&mut from, &mut std::io::sink())?;
        st.dropped_after.fetch_add(1, Ordering::SeqCst);
        return client.shutdown(Shutdown::Both);
    }
    let h = closing(&answer);
    client.write_all(&h)?;
    st.bytes_to_clients
        .fetch_add(h.len() as u64, Ordering::SeqCst);
    // The body, counted as it goes (a client that stops reading ends it).
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let k = from.read(&mut buf)?;
        if k == 0 {
            break;
        }
        client.write_all(&buf[..k])?;
        st.bytes_to_clients.fetch_add(k as u64, Ordering::SeqCst);
    }
    client.shutdown(Shutdown::Both)
}

/// One request straight to the server, with a made-up signature (moto
/// checks none, but answers a request without one with 403, and takes a
/// body without a binary content type for a form): `(status, body)`. For
/// the tests that plant corrupt objects.
pub fn raw_request(endpoint: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let addr = endpoint.strip_prefix("http://").expect("http endpoint");
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Content-Type: application/octet-stream\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let lines = read_head(&mut r).unwrap().expect("an answer");
    let status = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
    let mut out = Vec::new();
    match header(&lines, "content-length") {
        Some(n) => {
            out.resize(n.parse().unwrap(), 0);
            r.read_exact(&mut out).unwrap();
        }
        None => {
            r.read_to_end(&mut out).unwrap();
        }
    }
    (status, out)
}
