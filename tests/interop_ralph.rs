//! Interop with a real LRS: Ralph (PyPI `ralph-malph`, file-system backend), started by the
//! test on a free loopback port. Token → statement POSTs → GET with forced filters → `more`
//! paging through lrsgate, and what Ralph stored.
//!
//! Ignored in a plain `cargo test` (it needs Ralph installed); `tests/run.sh` installs Ralph
//! into `target/ralph-venv` and runs it with `--ignored`, `LRSGATE_RALPH_VENV` naming the
//! virtualenv. Without that variable the test fails rather than pretending to pass.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

const RALPH_USER: &str = "lrsgate";
const RALPH_PASSWORD: &str = "ralph-password-for-lrsgate";

struct Ralph {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
}

impl Drop for Ralph {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ralph {
    fn start(venv: &Path) -> Ralph {
        let data = tempfile::tempdir().unwrap();
        let env = |cmd: &mut Command| {
            cmd.env("RALPH_APP_DIR", data.path())
                .env("RALPH_AUTH_FILE", data.path().join("auth.json"))
                .env("RALPH_RUNSERVER_BACKEND", "fs")
                .env("RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH", data.path());
        };
        // lrsgate's LRS credential, with Ralph's own tool: an `all`-scoped user whose agent is
        // the authority Ralph writes into every statement it stores.
        let mut auth = Command::new(venv.join("bin/ralph"));
        auth.args([
            "auth",
            "-u",
            RALPH_USER,
            "-p",
            RALPH_PASSWORD,
            "-s",
            "all",
            "-M",
            "mailto:lrsgate@lrs.example",
            "-w",
        ]);
        env(&mut auth);
        let out = auth.output().expect("run `ralph auth`");
        assert!(out.status.success(), "ralph auth failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ralph_server.py");
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg(server).arg(port.to_string()).current_dir(data.path()).stdout(Stdio::null()).stderr(Stdio::inherit());
        env(&mut cmd);
        let ralph = Ralph { child: cmd.spawn().expect("start Ralph"), port, data };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ralph.get("/xAPI/statements?limit=1").map(|r| r.status) != Some(200) {
            assert!(Instant::now() < deadline, "Ralph did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        ralph
    }

    fn request(&self, req: Req) -> Option<Resp> {
        let credential = STANDARD.encode(format!("{RALPH_USER}:{RALPH_PASSWORD}"));
        let req = req
            .host(&format!("127.0.0.1:{}", self.port))
            .header("Authorization", &format!("Basic {credential}"))
            .header("X-Experience-API-Version", "1.0.3");
        try_send(self.port, &req).ok()
    }

    fn get(&self, target: &str) -> Option<Resp> {
        self.request(Req::get(target))
    }

    /// What Ralph's file backend holds, one statement per line, as Ralph wrote it.
    fn stored(&self) -> Vec<Value> {
        let file: PathBuf = self.data.path().join("fs_lrs.jsonl");
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("LRSGATE_RALPH_VENV").expect(
        "LRSGATE_RALPH_VENV must name a virtualenv with ralph-malph (tests/run.sh installs one into target/ralph-venv)",
    ))
}

/// The default learner's statement number `n`, written by hand with unusual (valid) spacing,
/// key order and escapes, so what reaches the LRS can be compared with what the client sent.
fn hand_written(n: u32) -> (String, Vec<u8>) {
    let id = uuid::Uuid::new_v4().to_string();
    let body = format!(
        "{{ \"verb\" : {{\"id\":\"http://adlnet.gov/expapi/verbs/experienced\", \"display\":{{\"en-US\":\"experienced \\u00e9tape {n}\"}}}},\n  \
         \"id\":\"{id}\", \"actor\":{{\"objectType\":\"Agent\",\"account\":{{\"name\":\"learner-1\",\"homePage\":\"https://lms.example\"}}}},\n  \
         \"object\":{{\"id\":\"{ACTIVITY}\",\"objectType\":\"Activity\"}},\n  \
         \"context\":{{\"registration\":\"{REGISTRATION}\",\"extensions\":{{\"https://w3id.org/xapi/cmi5/context/extensions/sessionid\":\"{SESSION_ID}\"}}}},\n  \
         \"timestamp\":\"2026-11-30T10:0{n}:00.000Z\" }}"
    );
    (id, body.into_bytes())
}

#[test]
#[ignore = "needs a real Ralph LRS: run by tests/run.sh with LRSGATE_RALPH_VENV"]
fn statements_reach_a_real_ralph_lrs_through_lrsgate_and_page_back_judged() {
    let ralph = Ralph::start(&venv());
    let mut opts = GateOptions::new(&[ralph.port]);
    opts.lrs_base = "/xAPI".into();
    opts.lrs_credential = (RALPH_USER.into(), RALPH_PASSWORD.into());
    let gate = Gate::start(opts);
    // Reads forced to the learner (`agent`) only: Ralph 5.1's file backend never matches an
    // `activity` or `verb` filter (it compares the pydantic IRI it parsed with the stored
    // string), so the default scope's forced `activity` would read nothing from it. Writes keep
    // the default scope.
    let mut request = token_request();
    request["permissions"] =
        json!({"write": "actor-activity-registration-scoped", "read": "actor-cross-course-certification"});
    let token = gate.token_for(&request);
    let xapi = |req: Req| req.basic(&token).header("X-Experience-API-Version", "1.0.3");

    // Writes: three in scope, byte for byte; one as another learner, refused before Ralph.
    let mut sent = Vec::new();
    for n in 1..=3 {
        let (id, body) = hand_written(n);
        let r =
            gate.edge(&xapi(Req::post("/xapi/statements", body.clone()).header("Content-Type", "application/json")));
        assert_eq!(r.status, 200, "statement {n}: {}", r.text());
        assert_eq!(r.json(), json!([id]), "Ralph's answer is relayed");
        sent.push((id, body));
    }
    let mut impostor = statement();
    impostor["actor"]["account"]["name"] = json!("learner-2");
    let r = gate.edge(&xapi(
        Req::post("/xapi/statements", impostor.to_string().into_bytes()).header("Content-Type", "application/json"),
    ));
    assert_eq!((r.status, r.reason().as_str()), (403, "actor_mismatch"));

    // Ralph holds exactly the three, each with every value the client sent (Ralph adds only what
    // an LRS sets: stored, authority).
    let stored = ralph.stored();
    assert_eq!(stored.len(), 3, "{stored:?}");
    for ((id, body), held) in sent.iter().zip(&stored) {
        let client: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(held["id"], json!(id));
        for (key, value) in client.as_object().unwrap() {
            assert_eq!(&held[key], value, "Ralph stored {key} as the client sent it");
        }
        assert_eq!(held["authority"]["mbox"], "mailto:lrsgate@lrs.example", "written with lrsgate's LRS credential");
    }

    // Another learner's statement, written to Ralph directly, in the same activity and registration.
    let mut other = statement();
    other["actor"]["account"]["name"] = json!("learner-2");
    let r = ralph.request(
        Req::post("/xAPI/statements", other.to_string().into_bytes()).header("Content-Type", "application/json"),
    );
    assert_eq!(r.map(|r| r.status), Some(200));

    // Reads with the forced filters, paged through lrsgate's sealed `more` links.
    let mut seen = Vec::new();
    let mut target = "/xapi/statements?limit=2".to_owned();
    for page in 0.. {
        assert!(page < 5, "paging does not end");
        let r = gate.edge(&xapi(Req::get(&target)));
        assert_eq!(r.status, 200, "page {page}: {}", r.text());
        let body = r.json();
        for s in body["statements"].as_array().unwrap() {
            assert_eq!(s["actor"]["account"]["name"], "learner-1", "only the learner's statements: {s}");
            seen.push(s["id"].as_str().unwrap().to_owned());
        }
        let more = body["more"].as_str().unwrap_or_default();
        if more.is_empty() {
            break;
        }
        assert!(more.starts_with("/xapi/statements/more/"), "the link points at lrsgate, not Ralph: {more}");
        assert!(!more.contains("xAPI"), "Ralph's own path is sealed, not shown: {more}");
        target = more.to_owned();
    }
    let mut want: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want, "every page judged, every statement of the learner seen once");

    // A `more` link works only for the token that started the query.
    let first = gate.edge(&xapi(Req::get("/xapi/statements?limit=2"))).json();
    let more = first["more"].as_str().unwrap().to_owned();
    let r = gate.edge(&Req::get(&more).bearer(&gate.token_for(&request)).header("X-Experience-API-Version", "1.0.3"));
    assert_eq!((r.status, r.reason().as_str()), (403, "more_other_token"));
    // A client filter outside the scope is refused before Ralph.
    let other_agent = r#"{"account":{"homePage":"https://lms.example","name":"learner-2"}}"#;
    let target = format!("/xapi/statements?agent={}", url_encode(other_agent));
    let r = gate.edge(&xapi(Req::get(&target)));
    assert_eq!((r.status, r.reason().as_str()), (403, "query_out_of_scope"));
}

fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
