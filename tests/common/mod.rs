//! Test harness: the real `lrsgate` binary with a temporary config, real `standin-lrs`
//! processes that record what they receive, and a small raw HTTP/1.1 client so tests control
//! exact bytes, framing and headers.

#![allow(dead_code)]

pub mod db;
pub mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

pub const SECRET_ACME: &str = "acme-signing-secret-0123456789abcdef";
pub const SECRET_OTHER: &str = "other-signing-secret-0123456789abcdef";
pub const LRS_USER: &str = "lrs-user";
pub const LRS_PASSWORD: &str = "lrs-password";
pub const API_KEY_ACME: &str = "lrsk_test_acme_key_0123456789";
pub const API_KEY_OTHER: &str = "lrsk_test_other_key_0123456789";
pub const ACTIVITY: &str = "https://lms.example/course/1/au/1";
pub const REGISTRATION: &str = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11";
/// The cmi5 session id the test LMS asks for; every statement of that session carries it.
pub const SESSION_ID: &str = "s-1";

/// A free loopback port for a server a test starts. Never one the OS could hand out on its own
/// (below the ephemeral range, 32768+), and never the same one twice in this test process, so two
/// tests running in parallel (or a client socket) cannot take a port between its check and the
/// server's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test process starts at its own offset; the test binaries themselves run one at a time.
    let _ = NEXT.compare_exchange(u32::MAX, (std::process::id() * 61) % SPAN, Ordering::AcqRel, Ordering::Acquire);
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::AcqRel) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The stand-in LRS binary, built once per test process beside this build's `lrsgate` (same
/// target directory and profile). It is a workspace member of its own (`tests/standin-lrs`),
/// and Cargo sets `CARGO_BIN_EXE_*` only for a package's own binaries.
pub fn standin_bin() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = std::path::Path::new(env!("CARGO_BIN_EXE_lrsgate")).parent().expect("a target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--locked", "-p", "standin-lrs", "--bin", "standin-lrs", "--profile", profile])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(profile_dir.parent().expect("a target directory"))
            .status()
            .expect("run cargo build for the stand-in LRS");
        assert!(status.success(), "building the stand-in LRS failed");
        profile_dir.join("standin-lrs")
    })
}

/// A running stand-in LRS.
pub struct StandIn {
    child: Child,
    pub port: u16,
}

impl StandIn {
    pub fn start() -> StandIn {
        StandIn::start_with(&[])
    }

    /// A stand-in with extra arguments (`--cors`).
    pub fn start_with(extra: &[&str]) -> StandIn {
        let mut child = Command::new(standin_bin())
            .args(["--listen", "127.0.0.1:0", "--credential", &format!("{LRS_USER}:{LRS_PASSWORD}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start standin-lrs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).expect("stand-in port");
        StandIn { child, port }
    }

    pub fn stats(&self) -> (u64, u64) {
        let r = send(self.port, &Req::get("/_standin/stats"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        (v["connections"].as_u64().unwrap(), v["requests"].as_u64().unwrap())
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        let r = send(self.port, &Req::get("/_standin/requests"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| Recorded {
                method: r["method"].as_str().unwrap().to_owned(),
                target: r["target"].as_str().unwrap().to_owned(),
                headers: r["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().to_owned(), h[1].as_str().unwrap().to_owned()))
                    .collect(),
                body: STANDARD.decode(r["body_base64"].as_str().unwrap()).unwrap(),
            })
            .collect()
    }

    /// Send a request straight to the LRS with its own credential (as the LMS does).
    pub fn direct(&self, req: Req) -> Resp {
        let credential = STANDARD.encode(format!("{LRS_USER}:{LRS_PASSWORD}"));
        send(self.port, &req.header("Authorization", &format!("Basic {credential}")))
    }

    /// Connections the `drop` fault closed unread.
    pub fn dropped(&self) -> u64 {
        let r = send(self.port, &Req::get("/_standin/stats"));
        serde_json::from_slice::<Value>(&r.body).unwrap()["dropped"].as_u64().unwrap()
    }

    /// Make the stand-in misbehave (`none`, `close`, `drop`, `hang`, `status:N`, `slow:MS`).
    pub fn fault(&self, fault: &str) {
        let r = send(self.port, &Req::post("/_standin/fault", fault.as_bytes().to_vec()));
        assert_eq!(r.status, 204, "fault {fault}: {}", r.text());
    }

    /// The `X-Request-Id` of every request it read, a fault's included.
    pub fn received(&self) -> Vec<String> {
        serde_json::from_slice(&send(self.port, &Req::get("/_standin/received")).body).unwrap()
    }

    /// Send the stand-in a signal (`STOP`, `CONT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn last_request(&self) -> Recorded {
        self.requests().pop().expect("the LRS received a request")
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// One request as the stand-in LRS received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn query(&self) -> Vec<(String, String)> {
        let q = self.target.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }
}

/// A running lrsgate with two tenants: `acme` (hosts acme.test, localhost) on the given LRS
/// nodes, and `other` (other.test) on the first node.
pub struct Gate {
    child: Option<Child>,
    pub edge: u16,
    pub token: u16,
    pub metrics: u16,
    pub admin: u16,
    pub edge_tls: u16,
    pub dir: tempfile::TempDir,
    extra_env: Vec<(String, String)>,
}

pub struct GateOptions {
    pub nodes: Vec<u16>,
    pub max_body_bytes: usize,
    pub extra_env: Vec<(String, String)>,
    /// TOML appended to tenant `acme` (`[tenant.policy]`, `[[tenant.course]]`, …).
    pub acme_extra: String,
    /// Top-level keys of tenant `acme` (`public_origin = …`), placed before its tables.
    pub acme_keys: String,
    /// The LRS nodes' xAPI base path (default `/xapi`).
    pub lrs_base: String,
    /// The LRS credential tenant `acme` uses (default the stand-in's).
    pub lrs_credential: (String, String),
    /// Postgres mode: the database URL and master keys (the tenants file is then not used).
    pub database: Option<(String, String)>,
    /// More keys for the `[database]` section (`snapshot_cache = "…"`).
    pub database_extra: String,
    /// Open the edge's TLS listener too.
    pub edge_tls: bool,
    /// Files written beside the tenants file (name, content), such as course structures.
    pub files: Vec<(String, String)>,
    /// Sections appended to the server file (`[audit]`, `[metrics]`, `[logging]` …).
    pub server_extra: String,
    /// The server file's `[upstream]` keys (default: no active health checks to speak of).
    pub upstream: String,
    /// The server file's `[limits]` keys (default: a 2 s body read timeout).
    pub limits: String,
    /// More keys of tenant `acme`'s `[tenant.upstream]` (`health_check`, timeouts).
    pub acme_upstream: String,
    /// The server's `grace_period_seconds` (default 1: tests stop fast).
    pub grace_period_seconds: u64,
}

impl GateOptions {
    pub fn new(nodes: &[u16]) -> Self {
        GateOptions {
            nodes: nodes.to_vec(),
            max_body_bytes: 2 * 1024 * 1024,
            extra_env: Vec::new(),
            acme_extra: String::new(),
            acme_keys: String::new(),
            lrs_base: "/xapi".into(),
            lrs_credential: (LRS_USER.into(), LRS_PASSWORD.into()),
            database: None,
            database_extra: String::new(),
            edge_tls: false,
            files: Vec::new(),
            server_extra: String::new(),
            upstream: "health_check_interval_seconds = 3600".into(),
            limits: "body_read_timeout_seconds = 2".into(),
            acme_upstream: String::new(),
            grace_period_seconds: 1,
        }
    }

    pub fn server(mut self, toml: &str) -> Self {
        self.server_extra.push_str(toml);
        self.server_extra.push('\n');
        self
    }

    pub fn acme_key(mut self, toml: &str) -> Self {
        self.acme_keys.push_str(toml);
        self.acme_keys.push('\n');
        self
    }

    pub fn acme(mut self, toml: &str) -> Self {
        self.acme_extra.push_str(toml);
        self.acme_extra.push('\n');
        self
    }

    pub fn file(mut self, name: &str, content: &str) -> Self {
        self.files.push((name.into(), content.into()));
        self
    }
}

pub fn api_key_hash(key: &str) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

pub fn tenants_toml(nodes: &[u16], max_body_bytes: usize) -> String {
    tenants_toml_with(&GateOptions { max_body_bytes, ..GateOptions::new(nodes) })
}

/// The test tenants for `opts`: its nodes, base path and credential for tenant `acme`, with
/// `acme_keys` among its top-level keys and `acme_extra` appended to it.
pub fn tenants_toml_with(opts: &GateOptions) -> String {
    let (nodes, max_body_bytes, acme_keys, acme_extra) =
        (&opts.nodes, opts.max_body_bytes, &opts.acme_keys, &opts.acme_extra);
    let base = &opts.lrs_base;
    let node_list: Vec<String> = nodes.iter().map(|p| format!("\"http://127.0.0.1:{p}{base}\"")).collect();
    format!(
        r#"
[[tenant]]
id = "acme"
hosts = ["acme.test", "localhost"]
max_body_bytes = {max_body_bytes}
{acme_keys}
[tenant.upstream]
nodes = [{nodes}]
username = "{acme_user}"
password = "${{TEST_LRS_PASSWORD}}"
{acme_upstream}
[tenant.signing]
secret = "{SECRET_ACME}"
[tenant.tokens]
default_ttl_seconds = 600
max_ttl_seconds = 3600
[tenant.lms]
api_key_hashes = ["{acme_hash}"]
{acme_extra}
[[tenant]]
id = "other"
hosts = ["other.test"]
[tenant.upstream]
nodes = ["http://127.0.0.1:{first}/xapi"]
username = "{LRS_USER}"
password = "{LRS_PASSWORD}"
[tenant.signing]
secret = "{SECRET_OTHER}"
[tenant.lms]
api_key_hashes = ["{other_hash}"]
"#,
        nodes = node_list.join(", "),
        first = nodes[0],
        acme_hash = api_key_hash(API_KEY_ACME),
        acme_user = opts.lrs_credential.0,
        acme_upstream = opts.acme_upstream,
        other_hash = api_key_hash(API_KEY_OTHER),
    )
}

impl Gate {
    pub fn start(opts: GateOptions) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let (edge, token, metrics, admin, edge_tls) = (free_port(), free_port(), free_port(), free_port(), free_port());
        let database = match &opts.database {
            Some((url, keys)) => {
                format!("[database]\nurl = \"{url}\"\nmaster_keys = \"{keys}\"\n{}\n", opts.database_extra)
            }
            None => String::new(),
        };
        let tls = if opts.edge_tls { format!("edge_tls = \"127.0.0.1:{edge_tls}\"") } else { String::new() };
        std::fs::write(
            dir.path().join("lrsgate.toml"),
            format!(
                r#"
{database}
[listen]
edge = "127.0.0.1:{edge}"
{tls}
token_service = "127.0.0.1:{token}"
metrics = "127.0.0.1:{metrics}"
admin = "127.0.0.1:{admin}"
[limits]
{limits}
[upstream]
{upstream}
[server]
threads = 2
pid_file = "{pid}"
upgrade_sock = "{sock}"
grace_period_seconds = {grace}
graceful_shutdown_timeout_seconds = 1
{server_extra}
"#,
                grace = opts.grace_period_seconds,
                pid = dir.path().join("lrsgate.pid").display(),
                sock = dir.path().join("upgrade.sock").display(),
                server_extra = opts.server_extra,
                upstream = opts.upstream,
                limits = opts.limits,
            ),
        )
        .unwrap();
        for (name, content) in &opts.files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        std::fs::write(dir.path().join("tenants.toml"), tenants_toml_with(&opts)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lrsgate"));
        cmd.args(["serve", "-c"])
            .arg(dir.path().join("lrsgate.toml"))
            .env_remove("LRSGATE_CONFIG")
            .env("TEST_LRS_PASSWORD", &opts.lrs_credential.1)
            .env("RUST_LOG", "warn,lrsgate=info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("lrsgate.log")).unwrap()));
        for (k, v) in &opts.extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start lrsgate");
        let gate = Gate { child: Some(child), edge, token, metrics, admin, edge_tls, dir, extra_env: opts.extra_env };
        gate.wait_ready();
        gate
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = |port| try_send(port, &Req::get("/healthz")).is_ok_and(|r| r.status == 200);
            if up(self.edge) && up(self.token) {
                return;
            }
            assert!(Instant::now() < deadline, "lrsgate did not start; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run an `lrsgate` command (`migrate`, `tenant …`) against this gate's config; its JSON.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Value, String> {
        cli(&self.dir.path().join("lrsgate.toml"), args, env)
    }

    /// Graceful upgrade: start a new process with `--upgrade` on the same config, then SIGQUIT
    /// the old one, which hands its listening sockets over. Returns once the old process exited;
    /// the gate then refers to the new process.
    pub fn upgrade(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lrsgate"));
        cmd.args(["serve", "--upgrade", "-c"])
            .arg(self.dir.path().join("lrsgate.toml"))
            .env("TEST_LRS_PASSWORD", LRS_PASSWORD)
            .env("RUST_LOG", "warn,lrsgate=info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.dir.path().join("lrsgate-upgraded.log")).unwrap()));
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let new = cmd.spawn().expect("start the upgraded lrsgate");
        // The new process binds the upgrade socket once it is ready for the listeners; only then
        // may the old one hand them over (a slow start would otherwise outlast Pingora's retries).
        let sock = self.dir.path().join("upgrade.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "the upgraded process never opened its upgrade socket:\n{}",
                std::fs::read_to_string(self.dir.path().join("lrsgate-upgraded.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("QUIT");
        let mut old = self.child.replace(new).expect("a running gate");
        let deadline = Instant::now() + Duration::from_secs(30);
        while old.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the old process did not exit after SIGQUIT");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lrsgate.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `kill -9`: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Stop gracefully (SIGTERM) and wait for the exit.
    pub fn stop(&mut self) {
        self.signal("TERM");
        self.wait_exit();
    }

    /// Wait for the process to exit (after a signal sent by the test).
    pub fn wait_exit(&mut self) {
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "lrsgate did not stop after SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn tenants_file(&self) -> PathBuf {
        self.dir.path().join("tenants.toml")
    }

    /// Issue a token at the token service for `host`'s tenant.
    pub fn issue(&self, host: &str, api_key: &str, request: &Value) -> Resp {
        send(
            self.token,
            &Req::post("/auth/token", request.to_string().into_bytes())
                .host(host)
                .header("Authorization", &format!("Bearer {api_key}"))
                .header("Content-Type", "application/json"),
        )
    }

    /// A token for the default learner of tenant `acme`.
    pub fn token(&self) -> String {
        self.token_for(&token_request())
    }

    pub fn token_for(&self, request: &Value) -> String {
        let r = self.issue("acme.test", API_KEY_ACME, request);
        assert_eq!(r.status, 200, "token request failed: {}", r.text());
        r.json()["token"].as_str().unwrap().to_owned()
    }

    pub fn edge(&self, req: &Req) -> Resp {
        send(self.edge, req)
    }

    /// The value of a counter line on /metrics (0 when absent).
    pub fn metric(&self, line_prefix: &str) -> f64 {
        let r = send(self.metrics, &Req::get("/metrics"));
        r.text()
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Send a signal to the gate (e.g. "HUP").
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

/// Run an `lrsgate` command with `config`; its JSON output, or its error text.
pub fn cli(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Result<Value, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lrsgate"));
    cmd.arg("-c").arg(config).args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run lrsgate");
    if out.status.success() {
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Send every `(rule, request, status, reason)` row to the edge, assert each refusal (status,
/// reason code, version header), then assert that none of them reached the LRS.
pub fn assert_refused_untouched(gate: &Gate, lrs: &StandIn, rows: Vec<(&str, Req, u16, &str)>) {
    let before = lrs.stats();
    for (rule, req, status, reason) in rows {
        let r = gate.edge(&req);
        assert_eq!((r.status, r.reason().as_str()), (status, reason), "{rule}: {}", r.text());
        assert_eq!(r.header("X-Experience-API-Version"), Some("1.0.3"), "{rule}");
    }
    assert_eq!(lrs.stats(), before, "a refused request reached the LRS");
}

/// The default learner's token request.
pub fn token_request() -> Value {
    json!({
        "actor": {"objectType": "Agent", "name": "Learner One", "account": {"homePage": "https://lms.example", "name": "learner-1"}},
        "registration": REGISTRATION,
        "activity_id": ACTIVITY,
        "session_id": SESSION_ID,
    })
}

/// A cmi5-style statement by the default learner, in scope.
pub fn statement() -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": ACTIVITY},
        "result": {"completion": true, "duration": "PT4M30S"},
        "context": {
            "registration": REGISTRATION,
            "contextActivities": {"grouping": [{"id": "https://publisher.example/au/1"}]},
            "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": SESSION_ID}
        },
        "timestamp": "2026-11-22T10:00:00.000Z"
    })
}

/// A request to send.
#[derive(Clone)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with chunked framing instead of Content-Length.
    pub chunked: bool,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.into(),
            target: target.into(),
            headers: vec![("Host".into(), "acme.test".into())],
            body: Vec::new(),
            chunked: false,
        }
    }
    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }
    pub fn post(target: &str, body: Vec<u8>) -> Req {
        let mut r = Req::new("POST", target);
        r.body = body;
        r
    }
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn host(self, host: &str) -> Req {
        self.header("Host", host)
    }
    pub fn bearer(self, token: &str) -> Req {
        self.header("Authorization", &format!("Bearer {token}"))
    }
    /// The cmi5 way: `Basic <auth-token>`, the token exactly as fetched.
    pub fn basic(self, token: &str) -> Req {
        self.header("Authorization", &format!("Basic {token}"))
    }
    pub fn xapi_json(self) -> Req {
        self.header("Content-Type", "application/json").header("X-Experience-API-Version", "1.0.3")
    }
    pub fn chunked(mut self) -> Req {
        self.chunked = true;
        self
    }
    /// An xAPI statement POST with the default token headers.
    pub fn statements(token: &str, body: Vec<u8>) -> Req {
        Req::post("/xapi/statements", body).bearer(token).xapi_json()
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }
    /// The `error` reason code of one of our JSON refusals.
    pub fn reason(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

pub fn send(port: u16, req: &Req) -> Resp {
    try_send(port, req).unwrap_or_else(|e| panic!("request to port {port} failed: {e}"))
}

/// Send one request on a fresh connection (`Connection: close`) and read the whole response.
pub fn try_send(port: u16, req: &Req) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    if req.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else if !req.body.is_empty() || req.method == "POST" || req.method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", req.body.len()));
    } else {
        head.push_str("\r\n");
    }
    stream.write_all(head.as_bytes())?;
    if req.chunked {
        for chunk in req.body.chunks(10_000) {
            stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            stream.write_all(chunk)?;
            stream.write_all(b"\r\n")?;
        }
        stream.write_all(b"0\r\n\r\n")?;
    } else {
        // The server may refuse before reading the body and close; that is not a client error.
        let _ = stream.write_all(&req.body);
    }
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw, req.method == "HEAD")
}

fn parse_response(raw: &[u8], is_head: bool) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut offset = 0;
    // Skip interim 100 Continue responses.
    let (status, head_len, list) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = r.parse(&raw[offset..]).map_err(|_| bad("bad response"))? else {
            return Err(bad("incomplete response head"));
        };
        let status = r.code.unwrap_or(0);
        let list: Vec<(String, String)> =
            r.headers.iter().map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned())).collect();
        if status == 100 {
            offset += len;
            continue;
        }
        break (status, offset + len, list);
    };
    let rest = &raw[head_len..];
    let header = |n: &str| list.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let body = if is_head {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Resp { status, headers: list, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..pos]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[pos + 4 + size..];
    }
    out
}

/// `text` padded with trailing spaces (valid JSON whitespace) to exactly `len` bytes.
pub fn padded(text: &str, len: usize) -> Vec<u8> {
    assert!(text.len() <= len, "body already {} bytes, wanted {len}", text.len());
    let mut body = text.as_bytes().to_vec();
    body.resize(len, b' ');
    body
}
