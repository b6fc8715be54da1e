//! lrsgate forwards only what it judged, in a normal form it produced itself: one table per
//! class of request that an LRS could read differently from lrsgate. Each refused row proves
//! that the LRS received nothing; each accepted row proves what exactly the LRS received.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::*;
use serde_json::json;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const AGENT: &str = r#"{"objectType":"Agent","account":{"homePage":"https://lms.example","name":"learner-1"}}"#;

fn state_base() -> String {
    format!("activityId={}&agent={}&registration={REGISTRATION}", enc(ACTIVITY), enc(AGENT))
}

fn doc(method: &str, target: &str, token: &str, body: &[u8]) -> Req {
    let mut r = Req::new(method, target).bearer(token).header("X-Experience-API-Version", "1.0.3");
    if method == "PUT" || method == "POST" {
        r = r.header("Content-Type", "application/json");
        r.body = body.to_vec();
    }
    r
}

fn lms_writes_launch_data(lrs: &StandIn) -> Vec<u8> {
    let body = br#"{"launchMode":"Normal","moveOn":"Completed"}"#.to_vec();
    let mut req = Req::new("PUT", &format!("/xapi/activities/state?{}&stateId=LMS.LaunchData", state_base()))
        .header("Content-Type", "application/json");
    req.body = body.clone();
    assert_eq!(lrs.direct(req).status, 204);
    body
}

#[test]
fn state_delete_with_an_empty_or_bare_state_id_is_refused() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let launch_data = lms_writes_launch_data(&lrs);
    let target = |suffix: &str| format!("/xapi/activities/state?{}{suffix}", state_base());
    let rows = vec![
        ("empty_state_id", doc("DELETE", &target("&stateId="), &token, b""), 400, "empty_parameter"),
        ("bare_state_id", doc("DELETE", &target("&stateId"), &token, b""), 400, "empty_parameter"),
        (
            "empty_state_id_first",
            doc("DELETE", &format!("/xapi/activities/state?stateId=&{}", state_base()), &token, b""),
            400,
            "empty_parameter",
        ),
        ("empty_agent", doc("GET", "/xapi/activities/state?agent=&stateId=x", &token, b""), 400, "empty_parameter"),
        (
            "empty_activity_id",
            doc("GET", &format!("/xapi/activities/state?activityId&agent={}", enc(AGENT)), &token, b""),
            400,
            "empty_parameter",
        ),
        (
            "empty_registration",
            doc("GET", &target("&stateId=x").replace(REGISTRATION, ""), &token, b""),
            400,
            "empty_parameter",
        ),
        (
            "empty_profile_id",
            doc("GET", &format!("/xapi/agents/profile?agent={}&profileId=", enc(AGENT)), &token, b""),
            400,
            "empty_parameter",
        ),
        ("empty_statement_id", doc("GET", "/xapi/statements?statementId=", &token, b""), 400, "empty_parameter"),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
    let r = gate.edge(&doc("GET", &target("&stateId=LMS.LaunchData"), &token, b""));
    assert_eq!(r.body, launch_data, "LaunchData is intact");
}

#[test]
fn reserved_document_ids_are_refused_under_every_collation_variant() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]).acme("[tenant.policy]\nlearner_preferences_writes = true"));
    let token = gate.token();
    let state = |id: &str| format!("/xapi/activities/state?{}&stateId={}", state_base(), enc(id));
    let mut rows = Vec::new();
    for (variant, id) in [
        ("lower_case", "lms.launchdata"),
        ("upper_case", "LMS.LAUNCHDATA"),
        ("trailing_space", "LMS.LaunchData "),
        ("leading_space", " LMS.LaunchData"),
        ("full_width", "\u{FF2C}\u{FF2D}\u{FF33}.LaunchData"),
        ("accented", "LMS.L\u{00E1}unchData"),
        ("zero_width_space", "LMS.Launch\u{200B}Data"),
        ("trailing_nbsp", "LMS.LaunchData\u{00A0}"),
    ] {
        for method in ["PUT", "POST", "DELETE"] {
            rows.push((
                variant,
                doc(method, &state(id), &token, b"{\"launchMode\":\"Review\"}"),
                403,
                "launch_data_read_only",
            ));
        }
    }
    let prefs = |id: &str| format!("/xapi/agents/profile?agent={}&profileId={}", enc(AGENT), enc(id));
    for (variant, id) in
        [("prefs_lower_case", "cmi5learnerpreferences"), ("prefs_trailing_space", "cmi5LearnerPreferences ")]
    {
        rows.push((
            variant,
            doc("PUT", &prefs(id), &token, b"{}").header("If-None-Match", "*"),
            403,
            "profile_write_refused",
        ));
    }
    assert_refused_untouched(&gate, &lrs, rows);
    // The exact, allowed spellings still work.
    let r = gate.edge(&doc("PUT", &prefs("cmi5LearnerPreferences"), &token, b"{}").header("If-None-Match", "*"));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = gate.edge(&doc("PUT", &state("bookmark"), &token, b"{}"));
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn queries_reach_the_lrs_only_in_lrsgate_s_canonical_encoding() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let agent_canonical: String = {
        // What lrsgate writes for the learner: the canonical agent JSON, every reserved byte escaped.
        let r = gate.edge(&doc("GET", &format!("/xapi/activities/state?{}&stateId=x", state_base()), &token, b""));
        assert_eq!(r.status, 404, "{}", r.text());
        let target = lrs.last_request().target;
        target.split('&').find(|p| p.starts_with("agent=")).unwrap().to_owned()
    };
    assert!(!agent_canonical.contains('+') && !agent_canonical.contains('{'), "{agent_canonical}");
    let state = |extra: &str| format!("/xapi/activities/state?{}&{extra}", state_base());
    // (rule, the client's stateId spelling, what the LRS must receive)
    let rows = [
        ("semicolon_is_data_not_a_separator", "stateId=a;registration=x", "stateId=a%3Bregistration%3Dx"),
        ("plus_is_a_space", "stateId=a+b", "stateId=a%20b"),
        ("percent_20_is_a_space", "stateId=a%20b", "stateId=a%20b"),
        ("lower_case_escape", "stateId=a%2fb", "stateId=a%2Fb"),
        ("escaped_unreserved_is_decoded", "stateId=%61%62", "stateId=ab"),
        ("encoded_name", "%73tateId=ab", "stateId=ab"),
        ("raw_reserved_characters", "stateId=a:b@c/d?e", "stateId=a%3Ab%40c%2Fd%3Fe"),
        ("utf8", "stateId=%C3%A9", "stateId=%C3%A9"),
    ];
    for (rule, client, upstream) in rows {
        let r = gate.edge(&doc("PUT", &state(client), &token, b"{}"));
        assert_eq!(r.status, 204, "{rule}: {}", r.text());
        let got = lrs.last_request();
        let (path, query) = got.target.split_once('?').unwrap();
        assert_eq!(path, "/xapi/activities/state", "{rule}");
        let want = format!(
            "activityId={}&{agent_canonical}&registration={REGISTRATION}&{upstream}",
            lrsgate::xapi::query::encode(ACTIVITY)
        );
        assert_eq!(query, want, "{rule}");
    }
    let rows = vec![
        ("malformed_escape", doc("GET", &state("stateId=a%zz"), &token, b""), 400, "invalid_encoding"),
        ("truncated_escape", doc("GET", &state("stateId=a%2"), &token, b""), 400, "invalid_encoding"),
        ("nul", doc("GET", &state("stateId=a%00"), &token, b""), 400, "invalid_encoding"),
        ("overlong_utf8_slash", doc("GET", &state("stateId=%C0%AF"), &token, b""), 400, "invalid_encoding"),
        ("invalid_utf8", doc("GET", &state("stateId=%FF"), &token, b""), 400, "invalid_encoding"),
        ("control_character", doc("GET", &state("stateId=a%07"), &token, b""), 400, "invalid_encoding"),
        ("delete_character", doc("GET", &state("stateId=a%7F"), &token, b""), 400, "invalid_encoding"),
        (
            "encoded_duplicate_name",
            doc("GET", &state("stateId=a&%73tateId=b"), &token, b""),
            400,
            "duplicate_parameter",
        ),
        ("too_long", doc("GET", &state(&format!("stateId={}", "a".repeat(9000))), &token, b""), 414, "query_too_long"),
        ("unknown_format", doc("GET", "/xapi/statements?format=everything", &token, b""), 400, "invalid_parameter"),
        ("limit_not_a_number", doc("GET", "/xapi/statements?limit=1;drop", &token, b""), 400, "invalid_parameter"),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

/// The headers the LRS may receive from lrsgate, whatever the client sent.
const ALLOWED_UPSTREAM: [&str; 9] = [
    "host",
    "authorization",
    "content-type",
    "content-length",
    "x-experience-api-version",
    "if-match",
    "if-none-match",
    "accept-language",
    // lrsgate's own id for the request, never the client's.
    "x-request-id",
];

#[test]
fn request_headers_are_forwarded_by_allow_list_only() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let hostile = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Request-Id", "client-chosen-id"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-Original-URL", "/xapi/activities/state?stateId=LMS.LaunchData"),
        ("X-Rewrite-URL", "/xapi/activities/state"),
        ("X-Forwarded-Host", "other.lrs"),
        ("X-Forwarded-Prefix", "/admin"),
        ("Forwarded", "host=other.lrs"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("Cookie", "lms_session=1"),
        ("Origin-Override", "x"),
        ("Accept-Encoding", "gzip"),
        ("Accept-Language", "en-GB"),
        ("If-Match", "\"abc\""),
        ("Content-Type", "application/json; charset=UTF-8"),
    ];
    let statement_id = uuid::Uuid::new_v4().to_string();
    let mut s = statement();
    s["id"] = json!(statement_id);
    let mut requests = vec![
        ("statement_post", Req::statements(&token, s.to_string().into_bytes())),
        ("state_put", doc("PUT", &format!("/xapi/activities/state?{}&stateId=bookmark", state_base()), &token, b"{}")),
        ("state_get", doc("GET", &format!("/xapi/activities/state?{}&stateId=bookmark", state_base()), &token, b"")),
        ("statement_read", doc("GET", &format!("/xapi/statements?statementId={statement_id}"), &token, b"")),
    ];
    for (_, req) in &mut requests {
        for (name, value) in hostile {
            if name == "Content-Type" && req.method == "GET" {
                continue;
            }
            *req = req.clone().header(name, value);
        }
    }
    for (rule, req) in requests {
        let r = gate.edge(&req);
        assert!((200..300).contains(&r.status) || r.status == 412, "{rule}: {} {}", r.status, r.text());
        let got = lrs.last_request();
        for (name, _) in &got.headers {
            assert!(ALLOWED_UPSTREAM.contains(&name.as_str()), "{rule}: the LRS received {name}");
        }
        assert_eq!(got.method, req.method, "{rule}: the method of the request line, never an override");
        assert_eq!(got.header("x-experience-api-version"), Some("1.0.3"), "{rule}");
        assert_eq!(got.header("accept-language"), Some("en-GB"), "{rule}");
        // The id the client sees is the one the LRS got, and lrsgate made it.
        let id = r.header("x-request-id").unwrap_or_default();
        assert_eq!(id.len(), 32, "{rule}: {id:?}");
        assert_eq!(got.header("x-request-id"), Some(id), "{rule}");
        if req.method != "GET" {
            assert_eq!(got.header("content-type"), Some("application/json"), "{rule}: lrsgate's Content-Type");
        }
    }

    let statements =
        |name: &str, value: &str| Req::statements(&token, statement().to_string().into_bytes()).header(name, value);
    let rows = vec![
        ("unknown_version", statements("X-Experience-API-Version", "1.1.0"), 400, "invalid_version"),
        ("version_with_garbage", statements("X-Experience-API-Version", "1.0.3, 2.0.0"), 400, "invalid_version"),
        (
            "unquoted_etag",
            doc("GET", &format!("/xapi/activities/state?{}&stateId=x", state_base()), &token, b"")
                .header("If-None-Match", "abc"),
            400,
            "invalid_header",
        ),
        ("content_encoded_body", statements("Content-Encoding", "gzip"), 415, "unsupported_content_encoding"),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn malformed_framing_is_refused_before_any_upstream_connection() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let read = || doc("GET", "/xapi/statements?limit=1", &token, b"");
    let body = statement().to_string().into_bytes();
    let rows = vec![
        ("bodyless_non_numeric_length", read().header("Content-Length", "abc"), 400, "invalid_content_length"),
        ("bodyless_signed_length", read().header("Content-Length", "+0"), 400, "invalid_content_length"),
        ("bodyless_length_list", read().header("Content-Length", "0, 0"), 400, "invalid_content_length"),
        ("about_with_bad_length", Req::get("/xapi/about").header("Content-Length", "x"), 400, "invalid_content_length"),
        // The harness adds its own Content-Length after this one.
        (
            "repeated_length",
            Req::statements(&token, body.clone()).header("Content-Length", "1"),
            400,
            "invalid_content_length",
        ),
    ];
    for (rule, req, status, reason) in rows {
        let before = lrs.stats();
        let r = gate.edge(&req);
        assert_eq!(r.status, status, "{rule}: {}", r.text());
        // Pingora 0.9 itself refuses most of these while reading the head, with a bare 400,
        // before lrsgate sees the request; lrsgate refuses the ones it lets through.
        match r.header("content-type") {
            Some("application/json") => assert_eq!(r.reason(), reason, "{rule}"),
            _ => assert!(r.header("server") == Some("Pingora") && r.body.is_empty(), "{rule}: {:?}", r.headers),
        }
        assert_eq!(lrs.stats(), before, "{rule}: reached the LRS");
    }
    // On a keep-alive connection, bytes after a refused head are never read as a request.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let smuggled = format!(
            "GET /xapi/statements?limit=1 HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\n\
             X-Experience-API-Version: 1.0.3\r\n\r\n"
        );
        let head = format!(
            "GET /xapi/statements?limit=1 HTTP/1.1\r\nHost: acme.test\r\nContent-Length: 0x{:x}\r\n\r\n{smuggled}",
            smuggled.len()
        );
        let before = lrs.stats();
        stream.write_all(head.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one answer, then the connection is closed: {text}");
        assert_eq!(lrs.stats(), before, "the smuggled request never reached the LRS");
    }
    // Both Content-Length and chunked: Pingora reads the body as chunked (RFC 9112 6.3) and
    // drops the length before lrsgate sees the request; the LRS then gets exactly the body
    // lrsgate judged, under lrsgate's own framing.
    let short = body.len() - 10;
    let r = gate.edge(&Req::statements(&token, body.clone()).chunked().header("Content-Length", &short.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = lrs.last_request();
    assert_eq!(got.body, body);
    assert_eq!(got.header("content-length"), Some(body.len().to_string().as_str()));
    assert_eq!(got.header("transfer-encoding"), None);
}

#[test]
fn multipart_framing_is_parsed_strictly_and_forwarded_under_lrsgate_s_content_type() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let part = |boundary: &str, headers: &str, content: &str| format!("--{boundary}\r\n{headers}\r\n\r\n{content}\r\n");
    let s = statement().to_string();
    let mut other = statement();
    other["actor"]["account"]["name"] = json!("learner-2");
    let other = other.to_string();
    let close = |boundary: &str| format!("--{boundary}--\r\n");
    let send = |content_type: &str, body: String| {
        gate.edge(&Req::statements(&token, body.into_bytes()).header("Content-Type", content_type))
    };
    // Accepted: the LRS gets the body byte for byte, under the Content-Type lrsgate wrote.
    let accepted = [
        (
            "quoted_boundary_with_bchars",
            r#"multipart/mixed; boundary="a=b:c""#,
            "a=b:c",
            r#"multipart/mixed; boundary="a=b:c""#,
        ),
        ("upper_case_names", "Multipart/Mixed; BOUNDARY=xyz", "xyz", "multipart/mixed; boundary=xyz"),
        ("space_in_quoted_boundary", r#"multipart/mixed; boundary="x y""#, "x y", r#"multipart/mixed; boundary="x y""#),
    ];
    for (rule, content_type, boundary, upstream) in accepted {
        let body = format!("{}{}", part(boundary, "Content-Type: application/json", &s), close(boundary));
        let r = send(content_type, body.clone());
        assert_eq!(r.status, 200, "{rule}: {}", r.text());
        let got = lrs.last_request();
        assert_eq!(got.body, body.as_bytes(), "{rule}");
        assert_eq!(got.header("content-type"), Some(upstream), "{rule}");
    }
    let statements = |content_type: &str, body: String| {
        Req::statements(&token, body.into_bytes()).header("Content-Type", content_type)
    };
    let json_part = |b: &str| part(b, "Content-Type: application/json", &s);
    let rows = vec![
        // A naive split reads boundary `"a` and frames the other learner's part first.
        (
            "quoted_boundary_split_naively",
            statements(
                r#"multipart/mixed; boundary="a;b""#,
                format!(
                    "--\"a\r\nContent-Type: application/json\r\n\r\n{other}\r\n{}{}",
                    json_part("a;b"),
                    close("a;b")
                ),
            ),
            400,
            "invalid_boundary",
        ),
        (
            "repeated_boundary",
            statements("multipart/mixed; boundary=b1; boundary=b2", format!("{}{}", json_part("b1"), close("b1"))),
            400,
            "invalid_content_type",
        ),
        (
            "boundary_in_another_case_repeated",
            statements("multipart/mixed; boundary=b1; Boundary=b2", format!("{}{}", json_part("b1"), close("b1"))),
            400,
            "invalid_content_type",
        ),
        (
            "extra_parameter",
            statements("multipart/mixed; boundary=b1; type=x", format!("{}{}", json_part("b1"), close("b1"))),
            400,
            "invalid_content_type",
        ),
        (
            "statement_part_latin1",
            statements(
                "multipart/mixed; boundary=b1",
                format!("{}{}", part("b1", "Content-Type: application/json; charset=iso-8859-1", &s), close("b1")),
            ),
            415,
            "unsupported_charset",
        ),
        (
            "statement_part_base64",
            statements(
                "multipart/mixed; boundary=b1",
                format!(
                    "{}{}",
                    part(
                        "b1",
                        "Content-Type: application/json\r\nContent-Transfer-Encoding: base64",
                        &base64::engine::general_purpose::STANDARD.encode(&other)
                    ),
                    close("b1")
                ),
            ),
            400,
            "statement_part_encoding",
        ),
        (
            "boundary_inside_a_part",
            statements(
                "multipart/mixed; boundary=b1",
                format!(
                    "{}{}",
                    part("b1", "Content-Type: application/json", &s.replacen('{', "{\"x\":\"--b1\",", 1)),
                    close("b1")
                ),
            ),
            400,
            "malformed_multipart",
        ),
        (
            "two_content_types_in_a_part",
            statements(
                "multipart/mixed; boundary=b1",
                format!(
                    "{}{}",
                    part("b1", "Content-Type: text/plain\r\nContent-Type: application/json", &s),
                    close("b1")
                ),
            ),
            400,
            "malformed_multipart",
        ),
        ("json_in_latin1", statements("application/json; charset=latin1", s.clone()), 415, "unsupported_charset"),
        ("json_with_boundary", statements("application/json; boundary=x", s.clone()), 400, "invalid_content_type"),
        ("unterminated_quote", statements("multipart/mixed; boundary=\"b1", s.clone()), 400, "invalid_content_type"),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn an_unauthenticated_client_cannot_make_lrsgate_decode_a_large_form() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let huge: String = (0..60_000).map(|i| format!("f{i}=x")).collect::<Vec<_>>().join("&");
    let form = |body: &str| {
        let mut r = Req::post("/xapi/statements?method=GET", body.as_bytes().to_vec())
            .header("Content-Type", "application/x-www-form-urlencoded");
        r.body = body.as_bytes().to_vec();
        r
    };
    let rows = vec![
        // The header's token is checked first: a forged one is refused before the form is read.
        ("forged_header_token", form(&huge).bearer("not.a.token"), 401, "token_malformed"),
        // Without a header token, the form is decoded, but only up to its field cap.
        ("no_header_token_many_fields", form(&huge), 400, "too_many_fields"),
        ("valid_token_many_fields", form(&huge).bearer(&token), 400, "too_many_fields"),
        (
            "form_in_latin1",
            form("limit=1").bearer(&token).header("Content-Type", "application/x-www-form-urlencoded; charset=latin1"),
            415,
            "unsupported_charset",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn attachments_true_reads_with_a_preamble_round_trip() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let attachment = b"a certificate, signed".to_vec();
    let sha2 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&attachment))
    };
    let mut s = statement();
    let id = s["id"].as_str().unwrap().to_owned();
    s["attachments"] = json!([{"usageType": "https://example.com/usage/certificate", "display": {"en-US": "certificate"},
        "contentType": "text/plain", "length": attachment.len(), "sha2": sha2}]);
    let mut body = format!("--b1\r\nContent-Type: application/json\r\n\r\n{s}\r\n").into_bytes();
    body.extend_from_slice(
        format!("--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {sha2}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(&attachment);
    body.extend_from_slice(b"\r\n--b1--\r\n");
    let r = gate.edge(&Req::statements(&token, body).header("Content-Type", "multipart/mixed; boundary=b1"));
    assert_eq!(r.status, 200, "{}", r.text());

    // The stand-in answers as ADL's LRS does: a CRLF before the first boundary.
    let direct = lrs.direct(Req::get(&format!("/xapi/statements?statementId={id}&attachments=true")));
    assert!(direct.body.starts_with(b"\r\n--standin-boundary\r\n"), "{}", direct.text());

    for (rule, target) in [
        ("single", format!("/xapi/statements?statementId={id}&attachments=true")),
        ("list", "/xapi/statements?attachments=true".to_owned()),
    ] {
        let r = gate.edge(&doc("GET", &target, &token, b""));
        assert_eq!(r.status, 200, "{rule}: {}", r.text());
        let content_type = r.header("content-type").unwrap().to_owned();
        assert!(content_type.starts_with("multipart/mixed"), "{rule}: {content_type}");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(text.contains(&id), "{rule}: the statement is shown");
        assert!(
            r.body.windows(attachment.len()).any(|w| w == attachment.as_slice()),
            "{rule}: the attachment is shown"
        );
        let lrsgate_parts =
            lrsgate::xapi::multipart::parts(&r.body, content_type.split("boundary=").nth(1).unwrap().trim_matches('"'));
        assert_eq!(lrsgate_parts.map(|p| p.len()).ok(), Some(2), "{rule}: well framed for the client");
    }
}

#[test]
fn every_successful_answer_to_a_judged_read_is_judged_and_no_redirect_is_relayed() {
    for (lrs_status, client_status) in [(203u16, 203u16), (206, 206), (302, 502), (307, 502)] {
        let lrs = StandIn::start_with(&["--read-status", &lrs_status.to_string()]);
        let gate = Gate::start(GateOptions::new(&[lrs.port]));
        let token = gate.token();
        let own = statement();
        let mut other = statement();
        other["actor"]["account"]["name"] = json!("learner-2");
        for s in [&own, &other] {
            let r = lrs.direct(Req::post("/xapi/statements", s.to_string().into_bytes()).xapi_json());
            assert_eq!(r.status, 200, "{}", r.text());
        }
        let read = |target: String| gate.edge(&doc("GET", &target, &token, b""));
        let list = read("/xapi/statements".into());
        assert_eq!(list.status, client_status, "{lrs_status}: {}", list.text());
        let single = read(format!("/xapi/statements?statementId={}", other["id"].as_str().unwrap()));
        if client_status == 502 {
            assert_eq!(list.reason(), "upstream_invalid_response", "{lrs_status}");
            assert_eq!(single.reason(), "upstream_invalid_response", "{lrs_status}");
            assert!(list.header("location").is_none());
            continue;
        }
        let text = list.text();
        assert!(text.contains(own["id"].as_str().unwrap()), "{lrs_status}: the own statement is shown");
        assert!(!text.contains(other["id"].as_str().unwrap()), "{lrs_status}: another learner's is judged out");
        assert_eq!((single.status, single.reason().as_str()), (404, "statement_not_found"), "{lrs_status}");
    }
}
