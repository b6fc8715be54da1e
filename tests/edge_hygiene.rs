//! What clients without credentials can cost the edge: trickled request heads, slow bodies,
//! thousands of idle connections, declared bodies that never come, and connections past the
//! caps. Each runs while normal requests keep succeeding; memory is read from /proc.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

fn start(limits: &str, max_body_bytes: usize) -> (StandIn, Gate) {
    let lrs = StandIn::start_with(&["--no-record", "--max-statements", "0"]);
    let mut opts = GateOptions::new(&[lrs.port]);
    opts.limits = limits.to_owned();
    opts.max_body_bytes = max_body_bytes;
    (lrs, Gate::start(opts))
}

/// Normal requests from another thread while a test abuses the edge; every one must succeed.
struct Normal {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Normal {
    fn start(gate: &Gate) -> Normal {
        let (stop, ok) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (edge, token) = (gate.edge, gate.token());
        let (s, o) = (stop.clone(), ok.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match try_send(edge, &Req::statements(&token, statement().to_string().into_bytes())) {
                    Ok(r) if r.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("{} {}", r.status, r.text())),
                    Err(e) => failures.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            failures
        });
        Normal { stop, ok, thread }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.join().unwrap();
        assert!(failures.is_empty(), "normal requests failed meanwhile: {failures:?}");
        let ok = self.ok.load(Ordering::Relaxed);
        assert!(ok > 0, "no normal request got through");
        ok
    }
}

/// Whether the server closed `stream` (read returns end of file or an error) within `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an answer (e.g. 408) before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn trickled_request_heads_are_cut_at_the_head_deadline() {
    let (_lrs, gate) = start("request_head_timeout_seconds = 2\nbody_read_timeout_seconds = 2", 1 << 20);
    let normal = Normal::start(&gate);
    // 200 slowloris connections: one byte of a head every 300 ms, never the blank line.
    let mut conns: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(("127.0.0.1", gate.edge)).unwrap()).collect();
    let head = b"GET /xapi/statements HTTP/1.1\r\nHost: acme.test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    // Four seconds of trickling: twice the deadline.
    for written in 0..14 {
        for c in conns.iter_mut() {
            let _ = c.write_all(&head[written..written + 1]);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let cut = gate.metric("lrsgate_edge_connections_refused_total{reason=\"head_timeout\"}");
    assert!(cut >= 200.0, "{cut} of 200 trickling connections cut at the head deadline");
    let open = conns.iter_mut().map(|c| closed_by_server(c, Duration::from_secs(1))).filter(|closed| !closed).count();
    assert_eq!(open, 0, "{open} of 200 trickling connections still open after their head deadline");
    let ok = normal.finish();
    eprintln!("slowloris: 200 trickling connections closed at the 2 s head deadline; {ok} normal requests, 0 failed");
}

#[test]
fn a_slow_body_is_cut_at_the_body_deadline() {
    let (_lrs, gate) = start("request_head_timeout_seconds = 2\nbody_read_timeout_seconds = 2", 1 << 20);
    let normal = Normal::start(&gate);
    let token = gate.token();
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
            let head = format!(
                "POST /xapi/statements HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\n\
                 X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            );
            c.write_all(head.as_bytes()).unwrap();
            c
        })
        .collect();
    for _ in 0..10 {
        for c in slow.iter_mut() {
            let _ = c.write_all(b" ");
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    for c in slow.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "a slow body was not refused in time: {answer:?}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
    normal.finish();
}

#[test]
fn ten_thousand_idle_connections_cost_bounded_memory_and_block_nothing() {
    let (_lrs, gate) = start("max_connections_per_client = 20000\nbody_read_timeout_seconds = 2", 1 << 20);
    // Warm up: the first requests allocate what every later one reuses.
    let normal = Normal::start(&gate);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(gate.pid());
    // Each connection makes one request and then idles in keep-alive.
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: acme.test\r\n\r\n").unwrap();
        idle.push(c);
    }
    let mut buf = [0u8; 256];
    for c in idle.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(gate.pid());
    let per_connection = (after.saturating_sub(before)) * 1024 / 10_000;
    let ok = normal.finish();
    eprintln!(
        "idle: 10,000 keep-alive connections: RSS {before} KiB -> {after} KiB, {per_connection} bytes each; \
         {ok} normal requests meanwhile, 0 failed"
    );
    // An idle connection waits in the listener with no read buffer and no request future
    // (Pingora's own keep-alive wait held about 90 KB).
    assert!(per_connection <= 16 * 1024, "{per_connection} bytes per idle connection");
    drop(idle);
}

#[test]
fn declared_bodies_that_never_come_cost_what_arrived_not_what_was_declared() {
    let (_lrs, gate) = start("body_read_timeout_seconds = 20\nrequest_head_timeout_seconds = 20", 8 << 20);
    let token = gate.token();
    let normal = Normal::start(&gate);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(gate.pid());
    // 200 connections each declaring a 4 MB statement batch, sending 64 KiB of it, then stalling.
    let chunk = vec![b' '; 64 * 1024];
    let conns: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
            let head = format!(
                "POST /xapi/statements HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\n\
                 X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n["
            );
            c.write_all(head.as_bytes()).unwrap();
            c.write_all(&chunk).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(gate.pid());
    let per_connection = after.saturating_sub(before) * 1024 / 200;
    let ok = normal.finish();
    eprintln!(
        "declared 4 MB, sent 64 KiB, stalled: 200 connections: RSS {before} KiB -> {after} KiB, {per_connection} \
         bytes each; {ok} normal requests, 0 failed"
    );
    // What arrived (64 KiB) and Pingora's buffers, not the 4 MB declared.
    assert!(per_connection < 1024 * 1024, "{per_connection} bytes per stalled 4 MB declaration");
    drop(conns);
}

#[test]
fn connections_past_the_caps_get_a_503_and_are_closed() {
    let (_lrs, gate) = start("max_connections_per_client = 20\nbody_read_timeout_seconds = 2", 1 << 20);
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(("127.0.0.1", gate.edge)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = try_send(gate.edge, &Req::get("/healthz")).unwrap();
    assert_eq!((r.status, r.reason()), (503, "too_many_connections_per_client".to_owned()), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.header("x-request-id").is_some());
    assert!(gate.metric("lrsgate_edge_connections_refused_total{reason=\"max_connections_per_client\"}") >= 1.0);
    drop(held);
    // Once they are gone, the client is served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while try_send(gate.edge, &Req::get("/healthz")).map(|r| r.status).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "the client stayed refused after its connections closed");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (_lrs, gate) = start("max_connections = 10\nbody_read_timeout_seconds = 2", 1 << 20);
    let held: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(("127.0.0.1", gate.edge)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = try_send(gate.edge, &Req::get("/healthz")).unwrap();
    assert_eq!((r.status, r.reason()), (503, "too_many_connections".to_owned()), "{}", r.text());
    drop(held);
}

/// One whole HTTP/1 answer from `stream` (head and a Content-Length body), as text.
fn read_answer(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                let answer = String::from_utf8_lossy(&got[..end + 4 + len]).into_owned();
                got.drain(..end + 4 + len);
                assert!(got.is_empty(), "bytes after the answer: {:?}", String::from_utf8_lossy(&got));
                return answer;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a whole answer: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_kept_alive_connection_serves_heads_of_any_size_and_split_anywhere() {
    let (_lrs, gate) = start("body_read_timeout_seconds = 5", 1 << 20);
    let token = gate.token();
    let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
    // Heads below, at and past the first read's 4 KiB, each in one write, then one split
    // byte by byte, then a statement POST with its body: each on the same connection.
    for pad in [0usize, 3900, 4096, 9000] {
        let head = format!("GET /healthz?pad={} HTTP/1.1\r\nHost: acme.test\r\n\r\n", "p".repeat(pad));
        c.write_all(head.as_bytes()).unwrap();
        let answer = read_answer(&mut c);
        assert!(answer.starts_with("HTTP/1.1 200"), "pad {pad}: {answer}");
    }
    for b in b"GET /healthz HTTP/1.1\r\nHost: acme.test\r\n\r\n" {
        c.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(read_answer(&mut c).starts_with("HTTP/1.1 200"));
    let body = statement().to_string();
    let post = format!(
        "POST /xapi/statements HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\n\
         X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(post.as_bytes()).unwrap();
    let answer = read_answer(&mut c);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn idle_connections_close_at_the_keepalive_timeout_and_after_the_request_limit() {
    let (_lrs, gate) = start("keepalive_timeout_seconds = 2\nkeepalive_requests = 3", 1 << 20);
    // Idle after one request: open at 1 s, closed by the server soon after 2 s.
    let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: acme.test\r\n\r\n").unwrap();
    assert!(read_answer(&mut c).starts_with("HTTP/1.1 200"));
    assert!(!closed_by_server(&mut c, Duration::from_millis(1000)), "closed before the keep-alive timeout");
    assert!(closed_by_server(&mut c, Duration::from_secs(5)), "still open well past the keep-alive timeout");
    // A connection that never sends a byte is closed at the same timeout.
    let mut silent = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(6)), "a silent connection stayed open");
    // The third request on one connection is its last.
    let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
    for i in 1..=3 {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: acme.test\r\n\r\n").unwrap();
        let answer = read_answer(&mut c);
        assert!(answer.starts_with("HTTP/1.1 200"), "request {i}: {answer}");
    }
    assert!(closed_by_server(&mut c, Duration::from_secs(1)), "open after the request limit");
}

#[test]
fn a_stop_closes_idle_connections_at_once_while_a_request_finishes() {
    let lrs = StandIn::start_with(&["--no-record", "--max-statements", "0"]);
    let mut opts = GateOptions::new(&[lrs.port]);
    opts.limits = "keepalive_timeout_seconds = 300".to_owned();
    // Long enough for the slow request: the stop waits for it, not for the idle connections.
    opts.grace_period_seconds = 30;
    let mut gate = Gate::start(opts);
    let token = gate.token();
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: acme.test\r\n\r\n").unwrap();
            assert!(read_answer(&mut c).starts_with("HTTP/1.1 200"));
            c
        })
        .collect();
    // A slow write keeps the process serving through the stop.
    lrs.fault("slow:3000");
    let edge = gate.edge;
    let slow =
        std::thread::spawn(move || try_send(edge, &Req::statements(&token, statement().to_string().into_bytes())));
    // Accepted before the stop, its first request not sent yet.
    let mut fresh = TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    gate.signal("TERM");
    for c in idle.iter_mut() {
        assert!(closed_by_server(c, Duration::from_secs(1)), "an idle connection stayed open after the stop began");
    }
    // Its first request is still answered, and it is told the connection ends.
    fresh.write_all(b"GET /healthz HTTP/1.1\r\nHost: acme.test\r\n\r\n").unwrap();
    let answer = read_answer(&mut fresh).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(!slow.is_finished(), "the idle connections were closed only once the slow request ended");
    assert!(gate.is_running(), "the process exited before its in-flight request finished");
    let answer = slow.join().unwrap().expect("the in-flight request was answered");
    assert_eq!(answer.status, 200, "{}", answer.text());
    gate.wait_exit();
}
