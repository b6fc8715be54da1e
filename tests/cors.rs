//! CORS per tenant through the real binary: preflights answered without a token, allowed
//! origins echoed on every kind of response (proxied, relayed large bodies, judged reads, our
//! own refusals, the fetch URL), the LRS's own CORS headers replaced, disallowed origins
//! refused before anything reaches the LRS, and none of it on the LMS-facing token service.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const ORIGIN: &str = "https://content.example";
const EXPOSED: &str = "ETag, Last-Modified, X-Experience-API-Version, X-Experience-API-Consistent-Through";

fn cors_gate(lrs: &StandIn, origins: &str) -> Gate {
    Gate::start(
        GateOptions::new(&[lrs.port])
            .acme_key("public_origin = \"https://lrs.acme.test\"")
            .acme(&format!("[tenant.cors]\nallowed_origins = [{origins}]\nmax_age_seconds = 120")),
    )
}

fn all<'a>(r: &'a Resp, name: &str) -> Vec<&'a str> {
    r.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

fn preflight(path: &str, method: &str, headers: &str) -> Req {
    Req::new("OPTIONS", path)
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
}

/// The CORS headers of an allowed cross-origin answer, exactly once each.
fn assert_cors_allowed(r: &Resp, origin: &str, what: &str) {
    assert_eq!(all(r, "Access-Control-Allow-Origin"), [origin], "{what}");
    assert_eq!(all(r, "Access-Control-Expose-Headers"), [EXPOSED], "{what}");
    assert!(all(r, "Access-Control-Allow-Credentials").is_empty(), "{what}: never with credentials");
    assert!(all(r, "Vary").iter().any(|v| v.contains("Origin")), "{what}: Vary: Origin");
}

#[test]
fn preflights_are_answered_without_a_token_and_never_reach_the_lrs() {
    let lrs = StandIn::start();
    let gate = cors_gate(&lrs, &format!("\"{ORIGIN}\""));
    let before = lrs.stats();
    let r = gate.edge(&preflight("/xapi/statements", "PUT", "authorization,content-type,x-experience-api-version"));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(all(&r, "Access-Control-Allow-Origin"), [ORIGIN]);
    assert_eq!(all(&r, "Access-Control-Allow-Methods"), ["GET, POST, PUT, DELETE, HEAD"]);
    assert_eq!(
        all(&r, "Access-Control-Allow-Headers"),
        ["Authorization, Content-Type, X-Experience-API-Version, If-Match, If-None-Match"]
    );
    assert_eq!(all(&r, "Access-Control-Max-Age"), ["120"]);
    assert_eq!(all(&r, "Vary"), ["Origin"]);
    let r = gate.edge(&preflight("/xapi//activities/state", "DELETE", "if-match"));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = gate.edge(&preflight("/cmi5/fetch/anything", "POST", ""));
    assert_eq!(r.status, 204);
    assert_eq!(all(&r, "Access-Control-Allow-Methods"), ["POST"]);
    assert_eq!(lrs.stats(), before);

    assert_refused_untouched(
        &gate,
        &lrs,
        vec![
            (
                "origin_not_allowed",
                preflight("/xapi/statements", "POST", "content-type").header("Origin", "https://evil.example"),
                403,
                "cors_origin_refused",
            ),
            ("method_not_allowed", preflight("/xapi/statements", "PATCH", ""), 403, "cors_preflight_refused"),
            ("header_not_allowed", preflight("/xapi/statements", "POST", "x-api-key"), 403, "cors_preflight_refused"),
            ("fetch_is_post_only", preflight("/cmi5/fetch/anything", "GET", ""), 403, "cors_preflight_refused"),
            ("plain_options_is_no_preflight", Req::new("OPTIONS", "/xapi/statements"), 405, "method_not_allowed"),
            ("unknown_route", preflight("/xapi/nothing", "GET", ""), 404, "unknown_route"),
        ],
    );
    let refused = gate.edge(&preflight("/xapi/statements", "POST", "").header("Origin", "https://evil.example"));
    assert!(all(&refused, "Access-Control-Allow-Origin").is_empty());
}

#[test]
fn allowed_origins_get_cors_headers_on_every_kind_of_answer_and_the_lrs_ones_are_replaced() {
    let lrs = StandIn::start_with(&["--cors"]);
    let gate = cors_gate(&lrs, &format!("\"{ORIGIN}\""));
    let token = gate.token();
    let from = |req: Req| gate.edge(&req.header("Origin", ORIGIN));

    let r = from(Req::statements(&token, statement().to_string().into_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cors_allowed(&r, ORIGIN, "proxied write");

    let large = padded(&statement().to_string(), 70 * 1024);
    let r = from(Req::statements(&token, large));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cors_allowed(&r, ORIGIN, "large body relayed by lrsgate");

    let r = from(Req::get("/xapi/statements?limit=2").bearer(&token).header("X-Experience-API-Version", "1.0.3"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cors_allowed(&r, ORIGIN, "judged statement read");

    let r = from(Req::get("/xapi/statements"));
    assert_eq!((r.status, r.reason().as_str()), (401, "token_missing"));
    assert_cors_allowed(&r, ORIGIN, "our own refusal");

    // Without an Origin, nothing CORS is added, and the LRS's own headers still never pass.
    let r = gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
    assert_eq!(r.status, 200);
    assert!(all(&r, "Access-Control-Allow-Origin").is_empty(), "the LRS's '*' must not pass: {:?}", r.headers);
    assert!(all(&r, "Access-Control-Allow-Credentials").is_empty());
    assert!(all(&r, "Vary").iter().any(|v| v.contains("Origin")), "caches must key on Origin");
}

#[test]
fn a_disallowed_origin_is_refused_before_the_lrs() {
    let lrs = StandIn::start();
    let gate = cors_gate(&lrs, &format!("\"{ORIGIN}\""));
    let token = gate.token();
    assert_refused_untouched(
        &gate,
        &lrs,
        vec![
            (
                "write_from_another_origin",
                Req::statements(&token, statement().to_string().into_bytes()).header("Origin", "https://evil.example"),
                403,
                "cors_origin_refused",
            ),
            (
                "read_from_an_opaque_origin",
                Req::get("/xapi/statements").bearer(&token).header("Origin", "null"),
                403,
                "cors_origin_refused",
            ),
        ],
    );
    // Same-origin requests (the tenant's public origin) need no CORS and are judged as usual.
    let r = gate
        .edge(&Req::statements(&token, statement().to_string().into_bytes()).header("Origin", "https://lrs.acme.test"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(all(&r, "Access-Control-Allow-Origin").is_empty());
}

#[test]
fn tenants_allow_no_origin_by_default_and_star_only_when_configured() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&gate.token()).header("Origin", ORIGIN));
    assert_eq!((r.status, r.reason().as_str()), (403, "cors_origin_refused"));
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&gate.token()));
    assert!(all(&r, "Vary").is_empty(), "no CORS configured, nothing varies by Origin");
    drop(gate);

    let gate = cors_gate(&lrs, "\"*\"");
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&gate.token()).header("Origin", "https://anyone.example"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cors_allowed(&r, "*", "star");
}

#[test]
fn the_fetch_url_serves_a_simple_cors_post_and_the_token_service_sends_no_cors() {
    let lrs = StandIn::start();
    let gate = cors_gate(&lrs, &format!("\"{ORIGIN}\""));
    let mut launch = token_request();
    launch["delivery"] = json!("cmi5");
    let issued = gate.issue("acme.test", API_KEY_ACME, &launch.clone());
    assert!(all(&issued, "Access-Control-Allow-Origin").is_empty());
    let path = issued.json()["fetch_url"].as_str().unwrap().strip_prefix("https://lrs.acme.test").unwrap().to_owned();
    let from_evil = gate.edge(&Req::post(&path, Vec::new()).header("Origin", "https://evil.example"));
    assert_eq!(from_evil.status, 200);
    assert_eq!(from_evil.json()["error-code"], "2", "a disallowed origin cannot spend the code");
    assert!(all(&from_evil, "Access-Control-Allow-Origin").is_empty());
    let r = gate.edge(&Req::post(&path, Vec::new()).header("Origin", ORIGIN));
    assert_eq!(r.status, 200);
    assert!(r.json()["auth-token"].is_string(), "{}", r.text());
    assert_cors_allowed(&r, ORIGIN, "fetch");

    // The LMS-facing token service: no CORS headers, no preflight.
    let r = gate.issue("acme.test", API_KEY_ACME, &token_request());
    assert!(r.headers.iter().all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control-")));
    let r = send(gate.token, &Req::new("OPTIONS", "/auth/token").header("Origin", ORIGIN));
    assert_eq!(r.status, 405);
    assert!(all(&r, "Access-Control-Allow-Origin").is_empty());
}
