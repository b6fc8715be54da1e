//! Scale of Postgres mode: load N tenants (default 100,000) from a real PostgreSQL that this
//! bench starts itself, and report
//! - the time of a full load (what `serve` does at start and after a reconnect),
//! - memory per tenant (RSS growth of this process over the load, divided by N),
//! - the delay from a one-tenant `UPDATE` to the new snapshot serving it (LISTEN/NOTIFY,
//!   per-tenant reload, persistent-map publish), over repeated updates,
//! - tenant lookup latency for *other* tenants, measured continuously on another thread, with
//!   and without those swaps (a spike would show in p99/max).
//!
//! Run: `TENANTS=100000 cargo bench --bench tenants_scale` (prints a table; writes
//! `bench/results/tenants_scale.json`). Needs Debian's `postgresql` server binaries.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The tests' throwaway cluster; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lrsgate::config::server::{DatabaseSettings, ServerConfig, ServerFile};
use lrsgate::secrets::{place, MasterKeys};
use lrsgate::tenant::postgres::{load_table, PostgresSource};
use lrsgate::tenant::TenantStore;
use pingora::services::background::BackgroundService;

const BATCH: usize = 5_000;
const UPDATES: usize = 30;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn insert_tenants(client: &tokio_postgres::Client, keys: &MasterKeys, n: usize) {
    // Bulk load: the NOTIFY triggers are skipped (no instance listens yet).
    client.batch_execute("SET session_replication_role = replica").await.unwrap();
    for start in (0..n).step_by(BATCH) {
        let ids: Vec<String> = (start..(start + BATCH).min(n)).map(|i| format!("t{i:06}")).collect();
        let hosts: Vec<String> = ids.iter().map(|id| format!("{id}.lrs.example")).collect();
        let urls: Vec<String> = ids.iter().map(|_| "http://127.0.0.1:9/xapi".to_owned()).collect();
        let users: Vec<String> = ids.iter().map(|_| "lrs".to_owned()).collect();
        let sealed = |place: fn(&str) -> String, secret: &str| -> (Vec<Vec<u8>>, Vec<String>) {
            ids.iter().map(|id| keys.seal(&place(id), secret.as_bytes())).unzip()
        };
        let (passwords, pkids) = sealed(place::lrs_password, "lrs-password");
        let (secrets, skids) = sealed(place::signing_secret, "a-signing-secret-of-at-least-32-bytes!!");
        let hashes: Vec<Vec<u8>> = ids.iter().map(|id| lrsgate::auth::apikey::hash_key(id).to_vec()).collect();
        client.execute("INSERT INTO tenants (id) SELECT * FROM unnest($1::text[])", &[&ids]).await.unwrap();
        client
            .execute(
                "INSERT INTO tenant_hosts (host, tenant_id) SELECT * FROM unnest($1::text[], $2::text[])",
                &[&hosts, &ids],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO upstream_nodes (tenant_id, url) SELECT * FROM unnest($1::text[], $2::text[])",
                &[&ids, &urls],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO lrs_credentials (tenant_id, username, password_enc, key_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])",
                &[&ids, &users, &passwords, &pkids],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO signing_keys (tenant_id, secret_enc, key_id) SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[])",
                &[&ids, &secrets, &skids],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO lms_api_keys (tenant_id, key_hash) SELECT * FROM unnest($1::text[], $2::bytea[])",
                &[&ids, &hashes],
            )
            .await
            .unwrap();
    }
    client.batch_execute("SET session_replication_role = origin; ANALYZE").await.unwrap();
}

/// Lookups of random other tenants on a thread until stopped: each one's latency in ns.
fn lookups(store: TenantStore, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f64>> {
    std::thread::spawn(move || {
        let hosts: Vec<String> = (0..1024).map(|i| format!("t{:06}.lrs.example", (i * 7919 + 13) % n)).collect();
        let mut samples = Vec::with_capacity(1 << 20);
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let host = &hosts[i % hosts.len()];
            let t = Instant::now();
            let found = store.load().resolve(host).is_some();
            samples.push(t.elapsed().as_nanos() as f64);
            assert!(found);
            i += 1;
        }
        samples
    })
}

fn summarise(mut samples: Vec<f64>) -> (f64, f64, f64, usize) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99), samples.last().copied().unwrap_or(f64::NAN), samples.len())
}

fn main() {
    let n: usize = std::env::var("TENANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench -- --list`: nothing to run here
    }
    let pg = pg::PgCluster::start_with(&["shared_buffers=256MB", "max_wal_size=2GB"]);
    let keys = MasterKeys::parse(&MasterKeys::generate_entry("bench")).unwrap();
    let db = DatabaseSettings { url: pg.url(), pool_size: 2, master_keys: keys.clone(), snapshot_cache: None };
    let server = ServerConfig::from_file(Path::new("bench.toml"), ServerFile::default()).unwrap();
    let health = lrsgate::server::balancers(&server);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let client = rt.block_on(async {
        let mut client = lrsgate::db::connect(&db.url).await.unwrap();
        lrsgate::db::migrate(&mut client).await.unwrap();
        let t = Instant::now();
        insert_tenants(&client, &keys, n).await;
        eprintln!("inserted {n} tenants in {:.1} s", t.elapsed().as_secs_f64());
        client
    });

    let rss_before = rss_bytes();
    let t = Instant::now();
    let table = rt.block_on(load_table(&server, &db, &health)).unwrap();
    let load_seconds = t.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    assert_eq!(table.tenant_count(), n, "every tenant loaded");
    let bytes_per_tenant = rss_after.saturating_sub(rss_before) as f64 / n as f64;
    eprintln!("loaded {n} tenants in {load_seconds:.2} s, {bytes_per_tenant:.0} B per tenant (RSS)");

    let store: TenantStore = Arc::new(ArcSwap::from_pointee(table));
    let source = Arc::new(PostgresSource {
        server,
        db: db.clone(),
        store: store.clone(),
        health,
        pool: lrsgate::db::pool(&db).unwrap(),
        synced_at: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        cache: None,
        audit: lrsgate::audit::Audit::disabled(),
    });
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    {
        let source = source.clone();
        rt.spawn(async move { source.start(shutdown_rx).await });
    }
    // Wait until the source listens (its resync after LISTEN finds nothing changed).
    rt.block_on(async {
        while source.synced_at.load(Ordering::Acquire) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // Baseline lookups, then lookups during one-tenant updates.
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = lookups(store.clone(), n, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let baseline = summarise(baseline.join().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let during = lookups(store.clone(), n, stop.clone());
    let mut delays = Vec::with_capacity(UPDATES);
    for i in 0..UPDATES {
        let id = format!("t{:06}", (i * 3301 + 17) % n);
        let before = store.load().get(&id).map(|t| t.fingerprint).unwrap();
        let t = Instant::now();
        rt.block_on(
            client.execute("UPDATE upstream_nodes SET weight = weight % 1000 + 1 WHERE tenant_id = $1", &[&id]),
        )
        .unwrap();
        while store.load().get(&id).map(|t| t.fingerprint) == Some(before) {
            assert!(t.elapsed() < Duration::from_secs(10), "update of {id} never served");
            std::thread::sleep(Duration::from_micros(200));
        }
        delays.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let during = summarise(during.join().unwrap());
    let _ = shutdown_tx.send(true);
    delays.sort_by(f64::total_cmp);
    let (d50, d99, dmax) = (percentile(&delays, 0.5), percentile(&delays, 0.99), delays[delays.len() - 1]);

    println!("\n## Postgres mode at {n} tenants (one process, 2 worker threads, PostgreSQL on the same box)\n");
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| full load (read, open secrets, validate, build, publish) | {load_seconds:.2} s ({:.1} µs/tenant) | |",
        load_seconds * 1e6 / n as f64
    );
    println!("| memory per tenant (RSS growth / tenants) | {bytes_per_tenant:.0} B | ≤ 2,048 B |");
    println!("| one-tenant UPDATE → snapshot serving it, p50 / p99 / max of {UPDATES} | {d50:.1} / {d99:.1} / {dmax:.1} ms | ≤ 100 ms |");
    println!(
        "| lookup of other tenants, no swaps: p50 / p99 / max ({} samples) | {:.0} / {:.0} / {:.0} ns | < 100 ns p50 |",
        baseline.3, baseline.0, baseline.1, baseline.2
    );
    println!(
        "| lookup of other tenants, during swaps: p50 / p99 / max ({} samples) | {:.0} / {:.0} / {:.0} ns | no p99 spike |",
        during.3, during.0, during.1, during.2
    );
    println!("| p99 during swaps ÷ p99 without | {:.2}× | ≈ 1× |", during.1 / baseline.1);
    let json = serde_json::json!({
        "tenants": n,
        "load_seconds": load_seconds,
        "bytes_per_tenant": bytes_per_tenant,
        "update_to_serve_ms": {"p50": d50, "p99": d99, "max": dmax, "samples": delays},
        "lookup_ns_baseline": {"p50": baseline.0, "p99": baseline.1, "max": baseline.2, "samples": baseline.3},
        "lookup_ns_during_swaps": {"p50": during.0, "p99": during.1, "max": during.2, "samples": during.3},
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tenants_scale.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    drop(pg);
}
