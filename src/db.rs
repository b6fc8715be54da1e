//! Postgres plumbing for Postgres mode: the connection pool (loads, the admin API, the CLI), the
//! migrations runner, and the dedicated LISTEN connections (the tenant source's and the
//! session events follower's).

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::server::DatabaseSettings;

/// The migrations, in order: (version, file name, SQL). Each runs once, in its own transaction.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_tenants.sql", include_str!("../migrations/0001_tenants.sql")),
    (2, "0002_sessions.sql", include_str!("../migrations/0002_sessions.sql")),
    (3, "0003_operations.sql", include_str!("../migrations/0003_operations.sql")),
    (4, "0004_upstream.sql", include_str!("../migrations/0004_upstream.sql")),
    (5, "0005_host_names.sql", include_str!("../migrations/0005_host_names.sql")),
];

/// Serialises concurrent `migrate` runs (an arbitrary, fixed advisory lock key).
const MIGRATION_LOCK: i64 = 0x6c72_7367_6174_6501;

/// A pool of `settings.pool_size` connections, opened lazily.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, String> {
    let config: tokio_postgres::Config =
        settings.url.parse().map_err(|e| format!("database.url does not parse: {e}"))?;
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| format!("database pool: {e}"))
}

/// Apply the migrations not yet applied; returns the versions applied now. Idempotent.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, String> {
    let tx = client.transaction().await.map_err(|e| format!("migrate: {e}"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(|e| format!("migrate: {e}"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS lrsgate_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| format!("migrate: {e}"))?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM lrsgate_migrations", &[])
        .await
        .map_err(|e| format!("migrate: {e}"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute("INSERT INTO lrsgate_migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .map_err(|e| format!("migration {name}: {e}"))?;
        applied.push(*version);
    }
    tx.commit().await.map_err(|e| format!("migrate: {e}"))?;
    Ok(applied)
}

/// One connection outside the pool (the CLI, `migrate`), its driver spawned on this runtime.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.map_err(|e| format!("cannot connect to the database: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::warn!("database connection ended: {e}");
        }
    });
    Ok(client)
}

/// A dedicated connection that LISTENs on `channel`: its client and the payloads of its
/// notifications. The connection is driven by its own task (spawning the connection future
/// alone would drop notifications), stopped when the returned [`Listening`] is dropped; the
/// receiver closes when the connection ends.
pub async fn listen(
    url: &str,
    channel: &str,
) -> Result<(tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<String>, Listening), String> {
    let (client, mut connection) =
        tokio_postgres::connect(url, NoTls).await.map_err(|e| format!("cannot connect: {e}"))?;
    let (tx, notified) = tokio::sync::mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log::warn!("LISTEN connection failed: {e}");
                    return;
                }
                None => return,
            }
        }
    });
    let listening = Listening(driver);
    client.batch_execute(&format!("LISTEN {channel}")).await.map_err(|e| format!("LISTEN failed: {e}"))?;
    Ok((client, notified, listening))
}

/// Stops a LISTEN connection's driver when dropped.
pub struct Listening(tokio::task::JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}
