//! Micro-benchmarks of lrsgate's own per-request work (criterion):
//! `cargo bench --bench micro` (add `-- --quick` for a short run).
//!
//! - strict parse + policy judgement of one 1 KB cmi5 statement, and of a batch of 100;
//! - HS256 session token verification, uncached (every call decodes and checks the signature)
//!   and cached (a session's later requests: lookup + expiry check);
//! - token issuance;
//! - tenant lookup by host in a 100,000-tenant snapshot (the table Postgres mode publishes);
//! - the forced-filter rewrite of a statements query;
//! - every parser of untrusted input on hostile inputs of growing size (`hostile/…`): the cost
//!   per KiB must stay flat.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

use lrsgate::auth::keys::TenantKeys;
use lrsgate::auth::verify::verify;
use lrsgate::policy::statements::{check_read, check_write};
use lrsgate::policy::{CourseCatalog, Grant, Scope, TenantRules};
use lrsgate::token_service::request::TokenRequest;
use lrsgate::xapi::agent::Ifi;
use lrsgate::xapi::query::{parse, STATEMENT_GET_PARAMS};
use lrsgate::xapi::statement::parse_body;

// The same allocator as the `lrsgate` binary, so the figures are the production ones.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REGISTRATION: &str = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11";
const ACTIVITY: &str = "https://lms.example/au/1";
const SESSION_ID: &str = "5f8e7c1e-1f3a-4c55-9d1c-7a0a7f9b9e11";

fn statement_1kb() -> Value {
    let mut s = json!({
        "id": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": ACTIVITY},
        "result": {"completion": true, "duration": "PT4M30S", "response": ""},
        "context": {
            "registration": REGISTRATION,
            "contextActivities": {"grouping": [{"id": "https://publisher.example/au/1"}],
                                  "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]},
            "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": SESSION_ID}
        },
        "timestamp": "2026-11-22T10:00:00.000Z"
    });
    let pad = 1024 - s.to_string().len();
    s["result"]["response"] = json!("x".repeat(pad));
    assert_eq!(s.to_string().len(), 1024);
    s
}

fn grant() -> Grant {
    Grant {
        actor: Ifi::Account { home_page: "https://lms.example".into(), name: "learner-1".into() },
        activity_id: ACTIVITY.into(),
        registration: REGISTRATION.parse().unwrap(),
        session_id: SESSION_ID.into(),
        publisher_id: Some("https://publisher.example/au/1".into()),
        group: None,
        course: None,
        write: Scope::ActorActivityRegistration,
        read: Scope::ActorActivityRegistration,
        launch_mode: None,
    }
}

fn validation(c: &mut Criterion) {
    let grant = grant();
    let rules = TenantRules::default();
    let one = statement_1kb().to_string().into_bytes();
    let batch = Value::from(vec![statement_1kb(); 100]).to_string().into_bytes();
    let mut group = c.benchmark_group("statement_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_1kb_statement", |b| {
        b.iter(|| check_write(&grant, &rules, &parse_body(black_box(&one)).unwrap()).unwrap())
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_of_100", |b| {
        b.iter(|| check_write(&grant, &rules, &parse_body(black_box(&batch)).unwrap()).unwrap())
    });
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let keys = TenantKeys::hs256("acme", b"bench-signing-secret-0123456789abcdef", "lrsgate", 30);
    let request = TokenRequest::parse(
        json!({"actor": {"account": {"homePage": "https://lms.example", "name": "learner-1"}},
               "registration": REGISTRATION, "activity_id": ACTIVITY})
        .to_string()
        .as_bytes(),
        &CourseCatalog::new(),
    )
    .unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = request.claims("acme", "lrsgate", now, 3600, 3600);
    let token = lrsgate::auth::issue::sign(&claims, &keys).unwrap();
    c.bench_function("token_verify_hs256_uncached", |b| {
        b.iter(|| verify(black_box(&token), "acme", &keys, &CourseCatalog::new()).unwrap())
    });
    let cache = lrsgate::auth::verify::VerifyCache::default();
    let courses = CourseCatalog::new();
    cache.verify(&token, "acme", &keys, &courses, now).unwrap();
    c.bench_function("token_verify_hs256_cached", |b| {
        b.iter(|| cache.verify(black_box(&token), "acme", &keys, &courses, now).unwrap())
    });
    c.bench_function("token_issue_hs256", |b| {
        b.iter(|| lrsgate::auth::issue::sign(&request.claims("acme", "lrsgate", now, 3600, 3600), &keys).unwrap())
    });
}

/// A 100,000-tenant table as a source publishes it (every tenant on one LRS node set).
fn tenant_lookup(c: &mut Criterion) {
    use std::sync::Arc;

    use lrsgate::config::server::{ServerConfig, ServerFile};
    use lrsgate::config::tenants::{validate, TenantsFile};
    use lrsgate::tenant::TenantTable;

    const TENANTS: usize = 100_000;
    let text: String = (0..TENANTS)
        .map(|i| {
            format!(
                "[[tenant]]\nid = \"t{i:06}\"\nhosts = [\"t{i:06}.lrs.example\"]\n[tenant.upstream]\n\
                 nodes = [\"http://127.0.0.1:9/xapi\"]\nusername = \"u\"\npassword = \"p\"\n\
                 [tenant.signing]\nsecret = \"bench-signing-secret-0123456789abcdef\"\n"
            )
        })
        .collect();
    let file = std::path::Path::new("bench.toml");
    let raw: TenantsFile = toml::from_str(&text).unwrap();
    let specs = validate(file, raw).unwrap();
    let server = ServerConfig::from_file(file, ServerFile::default()).unwrap();
    let balancers = lrsgate::server::balancers(&server);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = Arc::new(arc_swap::ArcSwap::from_pointee(
        runtime.block_on(TenantTable::build(specs, &server, &balancers)).unwrap(),
    ));
    let hosts: Vec<String> = (0..1024).map(|i| format!("t{:06}.lrs.example", (i * 7919) % TENANTS)).collect();
    let mut i = 0;
    c.bench_function("tenant_lookup_100k", |b| {
        b.iter(|| {
            i = (i + 1) % hosts.len();
            assert!(table.load().resolve(black_box(&hosts[i])).is_some());
        })
    });
}

fn query(c: &mut Criterion) {
    let grant = grant();
    let raw = "limit=10&since=2026-01-01T00%3A00%3A00Z";
    c.bench_function("statements_query_forced_filters", |b| {
        b.iter(|| check_read(&grant, &parse(Some(black_box(raw)), STATEMENT_GET_PARAMS).unwrap()).unwrap())
    });
}

/// Every parser of untrusted input on hostile bodies of growing size, reported as throughput:
/// a linear parser shows the same bytes/s (the same cost per KiB) at every size.
/// - the Alternate Request Syntax form: 31 fields and a `content` that is all percent-escapes;
/// - the query: a maximal query (8 KiB) of percent-escapes, at three sizes;
/// - multipart: a statement part, then an attachment made of near-delimiters (`\r\n--` without
///   the boundary), the worst case of a naive delimiter scan;
/// - JSON: one object with as many distinct keys as fit (the duplicate-key check).
fn hostile(c: &mut Criterion) {
    let mut group = c.benchmark_group("hostile");
    for kib in [64usize, 512, 4096] {
        let size = kib * 1024;
        group.throughput(Throughput::Bytes(size as u64));

        let mut form: String = (0..31).map(|i| format!("f{i}=x&")).collect();
        form.push_str("content=");
        while form.len() < size {
            form.push_str("%41");
        }
        group.bench_function(format!("alternate_form_{kib}KiB"), |b| {
            b.iter(|| lrsgate::xapi::alternate::decode(Some("method=PUT"), black_box(form.as_bytes())).unwrap())
        });

        let boundary = "b1";
        let mut body = format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nX-Experience-API-Hash: abc\r\nContent-Transfer-Encoding: binary\r\n\r\n").into_bytes();
        while body.len() < size {
            body.extend_from_slice(b"\r\n-x");
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        group.bench_function(format!("multipart_{kib}KiB"), |b| {
            b.iter(|| lrsgate::xapi::multipart::parts(black_box(&body), boundary).unwrap().len())
        });

        let mut json = String::from("{");
        let mut i = 0;
        while json.len() < size {
            json.push_str(&format!("\"k{i}\":0,"));
            i += 1;
        }
        json.push_str("\"end\":0}");
        group.bench_function(format!("json_object_keys_{kib}KiB"), |b| {
            b.iter(|| lrsgate::xapi::strict_json::parse_borrowed(black_box(json.as_bytes())).unwrap())
        });
    }
    for bytes in [1024usize, 4096, lrsgate::xapi::query::MAX_QUERY_BYTES] {
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut raw = String::from("stateId=");
        while raw.len() + 3 <= bytes {
            raw.push_str("%41");
        }
        group.bench_function(format!("query_{bytes}B"), |b| {
            b.iter(|| parse(Some(black_box(&raw)), lrsgate::policy::documents::STATE_PARAMS).unwrap())
        });
    }
    group.finish();
}

/// What the audit trail costs a request (building a refusal's event and handing it over) and
/// what the writer does per event (its JSON line); and the rate limiter's check.
fn operations(c: &mut Criterion) {
    use lrsgate::audit::{Audit, AuditEvent, EventKind, Service};
    let (audit, mut rx) = Audit::channel(1 << 20);
    let actor = lrsgate::xapi::agent::Ifi::Mbox("mailto:ann@example.org".into());
    let mut sent = 0usize;
    c.bench_function("audit_record_refusal", |b| {
        b.iter(|| {
            let mut event = AuditEvent::new(EventKind::RequestRefused, Service::Edge)
                .reason("scope_denies")
                .tenant("acme")
                .request(lrsgate::request_id::RequestId::next())
                .learner(lrsgate::logging::learner_hash("salt", "acme", &actor));
            event.status = Some(403);
            audit.record(event);
            sent += 1;
            // Keep the queue from filling; the drain is cheap next to the record.
            if sent.is_multiple_of(4096) {
                while rx.try_recv().is_ok() {}
            }
        })
    });
    let event = AuditEvent::new(EventKind::RequestRefused, Service::Edge).reason("scope_denies").tenant("acme");
    c.bench_function("audit_event_json_line", |b| b.iter(|| std::hint::black_box(event.to_json())));
    let limiter = lrsgate::rate_limit::RateLimiter::new(std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1)));
    let limits = lrsgate::rate_limit::RateLimits {
        edge_per_tenant: Some(u32::MAX),
        edge_per_token: Some(u32::MAX),
        ..Default::default()
    };
    c.bench_function("rate_limit_edge_check", |b| b.iter(|| limiter.edge(&limits, "acme", "jti-0123456789")));
}

criterion_group!(benches, validation, tokens, tenant_lookup, query, hostile, operations);
criterion_main!(benches);
