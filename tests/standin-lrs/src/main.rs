//! A STAND-IN LRS for the quickstart, the tests and the bench. Not an LRS for production.
//!
//! It speaks just enough xAPI to be proxied (statements POST/PUT/GET, about), checks the Basic
//! credential it was given, and records every request exactly as received (method, target,
//! headers, body bytes) and every TCP connection, so tests can prove what reached the LRS and
//! that a refused request reached it not at all.
//!
//! Inspection endpoints (not recorded): `GET /_standin/requests`, `GET /_standin/stats`,
//! `POST /_standin/reset`. `connections` counts every accepted connection (health probes
//! included) except those opened to inspect the stand-in.
//!
//! Usage: `standin-lrs [--listen 127.0.0.1:9000] [--base /xapi] [--credential user:pass] [--no-record]
//! [--max-statements N] [--cors] [--read-status N]` (`--no-record` keeps no request log and, unless
//! `--max-statements` says otherwise, no statements: for load tests; `--cors` adds permissive CORS
//! headers to every answer, as some LRSs do, so tests can prove lrsgate replaces them;
//! `--read-status` answers successful statement reads with that status instead of 200, so tests
//! can prove lrsgate judges every 2xx and relays no redirect)
//!
//! `GET /_standin/received` lists the `X-Request-Id` of every request read, also of those a
//! fault kept from being handled.
//!
//! Faults, for tests of what lrsgate does with a misbehaving node: `POST /_standin/fault` with
//! a body of `none`, `close` (a connection is closed as soon as a request's head was read,
//! unanswered), `drop` (every connection is closed unread: a new one once its first bytes show
//! an xAPI request, an idle one at once; counted as `dropped` in the stats), `hang` (requests are read, never
//! answered), `status:N` (every xAPI request answered N, nothing stored) or `slow:MS` (answered
//! after MS milliseconds). Requests a fault kept from being handled are not recorded.
//!
//! Like an LRS, it answers 409 to a statement whose id it holds with other content.
//! Prints `standin-lrs listening on <addr>` once bound (port 0 picks a free port).

// Test infrastructure: a bad argument or a broken invariant ends it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

struct Recorded {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    statements: Vec<Value>,
    /// State and Agent Profile documents: key (resource and identifying parameters) → body.
    documents: HashMap<String, Vec<u8>>,
    /// Attachment parts of multipart writes (headers and content as sent), by their hash.
    attachments: HashMap<String, Vec<u8>>,
    /// The `X-Request-Id` of every request read, a fault's included (`GET /_standin/received`).
    received: Vec<String>,
}

struct Lrs {
    base: String,
    expected_authorization: Option<String>,
    record: bool,
    /// How many statements are kept for reads (later writes are answered, not stored).
    max_statements: usize,
    /// Permissive CORS headers on every answer.
    cors: bool,
    /// The status of successful statement reads (default 200).
    read_status: u16,
    connections: AtomicU64,
    /// Connections the `drop` fault closed unread.
    dropped: AtomicU64,
    request_count: AtomicU64,
    state: Mutex<State>,
    /// The fault, watched so idle connections see a `drop` at once.
    fault: tokio::sync::watch::Sender<Fault>,
}

/// How the stand-in misbehaves (`POST /_standin/fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Fault {
    #[default]
    None,
    Close,
    Drop,
    Hang,
    Status(u16),
    Slow(u64),
}

impl Fault {
    fn parse(text: &str) -> Option<Fault> {
        Some(match text.trim() {
            "none" => Fault::None,
            "close" => Fault::Close,
            "drop" => Fault::Drop,
            "hang" => Fault::Hang,
            other => match other.split_once(':')? {
                ("status", n) => Fault::Status(n.parse().ok()?),
                ("slow", ms) => Fault::Slow(ms.parse().ok()?),
                _ => return None,
            },
        })
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

struct Response {
    status: u16,
    body: Vec<u8>,
    /// `None`: application/json.
    content_type: Option<String>,
}

impl Response {
    fn json(status: u16, body: Vec<u8>) -> Response {
        Response { status, body, content_type: None }
    }
}

/// The boundary of the stand-in's `attachments=true` answers.
const ANSWER_BOUNDARY: &str = "standin-boundary";

fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:9000".to_owned();
    let mut base = "/xapi".to_owned();
    let mut credential = None;
    let mut record = true;
    let mut max_statements = None;
    let mut cors = false;
    let mut read_status = 200;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().expect("--listen needs an address"),
            "--base" => base = args.next().expect("--base needs a path"),
            "--credential" => credential = Some(args.next().expect("--credential needs user:pass")),
            "--no-record" => record = false,
            "--cors" => cors = true,
            "--read-status" => {
                read_status = args.next().and_then(|n| n.parse().ok()).expect("--read-status needs a status code")
            }
            "--max-statements" => {
                max_statements =
                    Some(args.next().and_then(|n| n.parse().ok()).expect("--max-statements needs a number"))
            }
            other => {
                eprintln!("unknown argument {other}; see the comment at the top of tests/standin-lrs/src/main.rs");
                std::process::exit(2);
            }
        }
    }
    let lrs = Arc::new(Lrs {
        base: base.trim_end_matches('/').to_owned(),
        expected_authorization: credential.map(|c| format!("Basic {}", STANDARD.encode(c))),
        record,
        max_statements: max_statements.unwrap_or(if record { usize::MAX } else { 0 }),
        cors,
        read_status,
        connections: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        request_count: AtomicU64::new(0),
        state: Mutex::new(State::default()),
        fault: tokio::sync::watch::Sender::new(Fault::None),
    });
    let threads = std::env::var("STANDIN_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&listen).await?;
        println!("standin-lrs listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            lrs.connections.fetch_add(1, Ordering::Relaxed);
            if lrs.fault() == Fault::Drop && !is_inspection(&stream).await {
                lrs.dropped.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let lrs = lrs.clone();
            tokio::spawn(async move {
                let _ = serve_connection(lrs, stream).await;
            });
        }
    })
}

async fn serve_connection(lrs: Arc<Lrs>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    let mut first = true;
    loop {
        // An idle connection waits for its next request, or for a `drop` fault: then it is
        // closed unread, as a node that drops its connections does.
        // Only the wait for a request's first byte is raced with the fault: a request being
        // read is read whole (cancelling `read_request` midway would lose bytes it drained).
        let mut fault = lrs.fault.subscribe();
        let next = loop {
            if !buf.is_empty() {
                break read_request(&mut stream, &mut buf).await;
            }
            tokio::select! {
                ready = stream.readable() => {
                    ready?;
                    break read_request(&mut stream, &mut buf).await;
                }
                _ = fault.changed() => {
                    if *fault.borrow_and_update() == Fault::Drop && !first {
                        lrs.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
            }
        };
        let Some(request) = next? else { return Ok(()) };
        let close = request.close;
        let is_head = request.method == "HEAD";
        if first && request.target.starts_with("/_standin/") {
            // A connection opened only to inspect the stand-in is not LRS traffic.
            lrs.connections.fetch_sub(1, Ordering::Relaxed);
        }
        first = false;
        if !request.target.starts_with("/_standin/") {
            if let Some((_, id)) = request.headers.iter().find(|(k, _)| k == "x-request-id") {
                lrs.state.lock().expect("stand-in state lock").received.push(id.clone());
            }
            match lrs.fault() {
                Fault::Close => return Ok(()),
                Fault::Hang => std::future::pending::<()>().await,
                Fault::Slow(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
                Fault::None | Fault::Drop | Fault::Status(_) => {}
            }
        }
        let response = match lrs.fault() {
            Fault::Status(status) if !request.target.starts_with("/_standin/") => {
                Response::json(status, b"{}".to_vec())
            }
            _ => handle(&lrs, request),
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nX-Experience-API-Version: 1.0.3\r\n{}{}\r\n",
            response.status,
            reason(response.status),
            response.content_type.as_deref().unwrap_or("application/json"),
            response.body.len(),
            if lrs.cors { "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\n" } else { "" },
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if !is_head {
            out.extend_from_slice(&response.body);
        }
        stream.write_all(&out).await?;
        if close {
            return Ok(());
        }
    }
}

/// Read one request (Content-Length or chunked body). `None` on a clean close.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head_len) = req.parse(buf).map_err(|_| bad("bad request head"))? {
            let method = req.method.unwrap_or("").to_owned();
            let target = req.path.unwrap_or("").to_owned();
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            let length: usize = header("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            buf.drain(..head_len);
            let body =
                if chunked { read_chunked(stream, buf).await? } else { read_exact_body(stream, buf, length).await? };
            return Ok(Some(Request { method, target, headers, body, close }));
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(bad("request head too large"));
        }
        if !fill(stream, buf).await? {
            return Ok(None);
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

async fn read_exact_body(stream: &mut TcpStream, buf: &mut Vec<u8>, length: usize) -> std::io::Result<Vec<u8>> {
    if length > MAX_BODY_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "body too large"));
    }
    while buf.len() < length {
        if !fill(stream, buf).await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.drain(..length).collect())
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
                break pos;
            }
            if !fill(stream, buf).await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        buf.drain(..line_end + 2);
        let mut chunk = read_exact_body(stream, buf, size + 2).await?;
        chunk.truncate(size);
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk);
    }
}

/// Whether a new connection's first bytes are the test's own inspection (`/_standin/`), peeked
/// without reading them (waits up to 200 ms for them).
async fn is_inspection(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    let peeked = tokio::time::timeout(std::time::Duration::from_millis(200), stream.peek(&mut buf)).await;
    let Ok(Ok(n)) = peeked else { return false };
    let text = &buf[..n];
    text.starts_with(b"GET /_standin/") || text.starts_with(b"POST /_standin/")
}

impl Lrs {
    fn fault(&self) -> Fault {
        *self.fault.borrow()
    }
}

fn handle(lrs: &Lrs, req: Request) -> Response {
    let (path, query) = req.target.split_once('?').unwrap_or((req.target.as_str(), ""));
    match (req.method.as_str(), path) {
        ("GET", "/_standin/requests") => return inspect_requests(lrs),
        ("GET", "/_standin/stats") => {
            let body = json!({
                "connections": lrs.connections.load(Ordering::Relaxed),
                "dropped": lrs.dropped.load(Ordering::Relaxed),
                "requests": lrs.request_count.load(Ordering::Relaxed),
            });
            return Response::json(200, body.to_string().into_bytes());
        }
        ("GET", "/_standin/received") => {
            let state = lrs.state.lock().expect("stand-in state lock");
            return Response::json(200, serde_json::to_vec(&state.received).unwrap_or_default());
        }
        ("POST", "/_standin/fault") => {
            let Some(fault) = std::str::from_utf8(&req.body).ok().and_then(Fault::parse) else {
                return Response::json(400, br#"{"error":"unknown fault"}"#.to_vec());
            };
            lrs.fault.send_replace(fault);
            return Response::json(204, Vec::new());
        }
        ("POST", "/_standin/reset") => {
            let mut state = lrs.state.lock().expect("stand-in state lock");
            *state = State::default();
            lrs.request_count.store(0, Ordering::Relaxed);
            lrs.connections.store(0, Ordering::Relaxed);
            return Response::json(204, Vec::new());
        }
        _ => {}
    }
    lrs.request_count.fetch_add(1, Ordering::Relaxed);
    if lrs.record {
        lrs.state.lock().expect("stand-in state lock").requests.push(Recorded {
            method: req.method.clone(),
            target: req.target.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
        });
    }
    let authorization = req.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
    let resource = path.strip_prefix(lrs.base.as_str()).unwrap_or("");
    if resource == "/about" && req.method == "GET" {
        return Response::json(200, br#"{"version":["1.0.3"]}"#.to_vec());
    }
    if let Some(expected) = &lrs.expected_authorization {
        if authorization != Some(expected.as_str()) {
            return error(401, "stand-in LRS: wrong or missing LRS credential");
        }
    }
    match (req.method.as_str(), resource) {
        ("POST", "/statements") => {
            keep_attachments(lrs, &req);
            store_statements(lrs, statements_json(&req), None)
        }
        ("PUT", "/statements") => {
            keep_attachments(lrs, &req);
            let id = form_value(query, "statementId");
            match store_statements(lrs, statements_json(&req), id.as_deref()) {
                Response { status: 200, .. } => Response::json(204, Vec::new()),
                other => other,
            }
        }
        ("GET" | "HEAD", "/statements") => {
            let mut answer = query_statements(lrs, query);
            if answer.status == 200 && form_value(query, "attachments").as_deref() == Some("true") {
                answer = with_attachments(lrs, answer.body);
            }
            if answer.status == 200 {
                answer.status = lrs.read_status;
            }
            answer
        }
        (method, "/activities/state") => {
            document(lrs, method, query, "state", &["activityId", "agent", "registration"], "stateId", &req.body)
        }
        (method, "/agents/profile") => {
            document(lrs, method, query, "agent-profile", &["agent"], "profileId", &req.body)
        }
        _ => error(404, "stand-in LRS: no such resource"),
    }
}

/// The statements of a write: the body, or the first part of a multipart/mixed body.
fn statements_json(req: &Request) -> &[u8] {
    let content_type = req.headers.iter().find(|(k, _)| k == "content-type").map_or("", |(_, v)| v.as_str());
    let Some(boundary) = content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"')) else {
        return &req.body;
    };
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let Some(start) = find(&req.body, b"\r\n\r\n").map(|i| i + 4) else { return &req.body };
    let end = find(&req.body[start..], format!("\r\n--{boundary}").as_bytes()).map_or(req.body.len(), |e| start + e);
    &req.body[start..end]
}

/// Keep the attachment parts of a multipart write (a plain split on the delimiter: the stand-in
/// is not the judge of framing, lrsgate is).
fn keep_attachments(lrs: &Lrs, req: &Request) {
    let content_type = req.headers.iter().find(|(k, _)| k == "content-type").map_or("", |(_, v)| v.as_str());
    let Some(boundary) = content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"')) else { return };
    let body = String::from_utf8_lossy(&req.body).into_owned();
    let delimiter = format!("\r\n--{boundary}");
    let mut state = lrs.state.lock().expect("stand-in state lock");
    for part in body.split(&delimiter).skip(1) {
        let Some(part) = part.strip_prefix("\r\n") else { continue };
        let hash = part.lines().find_map(|l| l.strip_prefix("X-Experience-API-Hash:")).map(str::trim);
        if let Some(hash) = hash {
            state.attachments.insert(hash.to_owned(), part.as_bytes().to_vec());
        }
    }
}

/// A statement read with `attachments=true`, framed as ADL's LRS does it: a CRLF preamble, the
/// statements part, then the attachment parts the statements refer to.
fn with_attachments(lrs: &Lrs, statements_json: Vec<u8>) -> Response {
    let json: Value = serde_json::from_slice(&statements_json).unwrap_or(Value::Null);
    let listed: Vec<&Value> = match json.get("statements") {
        Some(Value::Array(list)) => list.iter().collect(),
        _ => vec![&json],
    };
    let hashes: Vec<String> = listed
        .iter()
        .flat_map(|s| s["attachments"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["sha2"].as_str().map(str::to_owned))
        .collect();
    let state = lrs.state.lock().expect("stand-in state lock");
    let mut body = format!("\r\n--{ANSWER_BOUNDARY}\r\nContent-Type: application/json\r\n\r\n").into_bytes();
    body.extend_from_slice(&statements_json);
    for hash in hashes {
        if let Some(part) = state.attachments.get(&hash) {
            body.extend_from_slice(format!("\r\n--{ANSWER_BOUNDARY}\r\n").as_bytes());
            body.extend_from_slice(part);
        }
    }
    body.extend_from_slice(format!("\r\n--{ANSWER_BOUNDARY}--\r\n").as_bytes());
    Response { status: 200, body, content_type: Some(format!("multipart/mixed; boundary={ANSWER_BOUNDARY}")) }
}

fn store_statements(lrs: &Lrs, body: &[u8], put_id: Option<&str>) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return error(400, "stand-in LRS: body is not JSON") };
    let list = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut ids = Vec::with_capacity(list.len());
    let mut state = lrs.state.lock().expect("stand-in state lock");
    // One conflicting statement refuses the batch, and nothing of it is stored.
    let conflict = list.iter().any(|statement| {
        let Some(id) = statement.get("id").and_then(Value::as_str).or(put_id) else { return false };
        state.statements.iter().any(|held| held["id"].as_str() == Some(id) && !same_statement(held, statement))
    });
    if conflict {
        return error(409, "stand-in LRS: a different statement with this id is stored");
    }
    for mut statement in list {
        let id = match (statement.get("id").and_then(Value::as_str), put_id) {
            (Some(id), _) => id.to_owned(),
            (None, Some(id)) => id.to_owned(),
            (None, None) => uuid::Uuid::new_v4().to_string(),
        };
        statement["id"] = Value::from(id.clone());
        if state.statements.len() < lrs.max_statements {
            state.statements.push(statement);
        }
        ids.push(id);
    }
    Response::json(200, Value::from(ids).to_string().into_bytes())
}

/// Whether a held statement and a sent one are the same (the held one has its `id` set).
fn same_statement(held: &Value, sent: &Value) -> bool {
    let mut sent = sent.clone();
    if let (Some(obj), Some(id)) = (sent.as_object_mut(), held.get("id")) {
        obj.insert("id".into(), id.clone());
    }
    *held == sent
}

fn query_statements(lrs: &Lrs, query: &str) -> Response {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if let Some(id) = params.get("statementId").or_else(|| params.get("voidedStatementId")) {
        let state = lrs.state.lock().expect("stand-in state lock");
        return match state.statements.iter().find(|s| s["id"].as_str() == Some(id)) {
            Some(statement) => Response::json(200, statement.to_string().into_bytes()),
            None => error(404, "stand-in LRS: no such statement"),
        };
    }
    let agent: Option<Value> = params.get("agent").and_then(|a| serde_json::from_str(a).ok());
    let limit: usize = params.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let state = lrs.state.lock().expect("stand-in state lock");
    let matching: Vec<&Value> = state
        .statements
        .iter()
        .filter(|s| params.get("registration").is_none_or(|r| s["context"]["registration"].as_str() == Some(r)))
        .filter(|s| params.get("activity").is_none_or(|a| s["object"]["id"].as_str() == Some(a)))
        .filter(|s| agent.as_ref().is_none_or(|a| same_ifi(a, &s["actor"])))
        .collect();
    // xAPI Comm §2.1.3 s3: a statement targeting a matching statement (StatementRef) matches
    // too, whoever its actor; real LRSs return those, and so does the stand-in.
    let mut matching = matching;
    let targeted: Vec<&Value> = state
        .statements
        .iter()
        .filter(|s| s["object"]["objectType"] == "StatementRef")
        .filter(|s| matching.iter().any(|m| m["id"] == s["object"]["id"]))
        .collect();
    matching.extend(targeted);
    // Paging like an LRS: `more` is this LRS's own path with the query and where to go on.
    let offset: usize = params.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let end = offset.saturating_add(limit).min(matching.len());
    let more = if end < matching.len() {
        let rest: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().filter(|(k, _)| k.as_str() != "offset"))
            .append_pair("offset", &end.to_string())
            .finish();
        format!("{}/statements?{rest}", lrs.base)
    } else {
        String::new()
    };
    let page = &matching[offset.min(end)..end];
    let body = json!({ "statements": page, "more": more });
    Response::json(200, body.to_string().into_bytes())
}

/// A document resource: single document by id, or the list of ids when the id is absent.
fn document(lrs: &Lrs, method: &str, query: &str, kind: &str, scope: &[&str], id_param: &str, body: &[u8]) -> Response {
    let mut params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    // One spelling per agent (key order, spacing), as an LRS compares agents by value.
    if let Some(agent) = params.get_mut("agent") {
        if let Ok(value) = serde_json::from_str::<Value>(agent) {
            *agent = value.to_string();
        }
    }
    let prefix =
        scope.iter().fold(kind.to_owned(), |k, p| format!("{k}|{}", params.get(*p).map_or("", String::as_str)));
    let id = params.get(id_param);
    let mut state = lrs.state.lock().expect("stand-in state lock");
    match (method, id) {
        ("GET" | "HEAD", Some(id)) => match state.documents.get(&format!("{prefix}|{id}")) {
            Some(doc) => Response::json(200, doc.clone()),
            None => error(404, "stand-in LRS: no such document"),
        },
        ("GET" | "HEAD", None) => {
            let ids: Vec<&str> = state.documents.keys().filter_map(|k| k.strip_prefix(&format!("{prefix}|"))).collect();
            Response::json(200, Value::from(ids).to_string().into_bytes())
        }
        ("PUT" | "POST", Some(id)) => {
            state.documents.insert(format!("{prefix}|{id}"), body.to_vec());
            Response::json(204, Vec::new())
        }
        ("DELETE", Some(id)) => {
            state.documents.remove(&format!("{prefix}|{id}"));
            Response::json(204, Vec::new())
        }
        ("DELETE", None) => {
            state.documents.retain(|k, _| !k.starts_with(&format!("{prefix}|")));
            Response::json(204, Vec::new())
        }
        _ => error(400, "stand-in LRS: unsupported document request"),
    }
}

fn same_ifi(a: &Value, b: &Value) -> bool {
    ["mbox", "mbox_sha1sum", "openid", "account"].iter().any(|k| a.get(k).is_some() && a.get(k) == b.get(k))
}

fn inspect_requests(lrs: &Lrs) -> Response {
    let state = lrs.state.lock().expect("stand-in state lock");
    let list: Vec<Value> = state
        .requests
        .iter()
        .map(|r| {
            json!({
                "method": r.method,
                "target": r.target,
                "headers": r.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                "body_base64": STANDARD.encode(&r.body),
            })
        })
        .collect();
    Response::json(200, Value::from(list).to_string().into_bytes())
}

fn form_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, json!({ "error": message }).to_string().into_bytes())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Status",
    }
}
