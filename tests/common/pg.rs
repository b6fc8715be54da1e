//! A throwaway PostgreSQL cluster for tests and benches: `initdb` + `pg_ctl` (Debian's
//! `postgresql` binaries) in a temp dir on a free loopback port, which a test can stop and start
//! again to prove outages. As root (CI), the server runs as the `postgres` user, since PostgreSQL
//! refuses to run as root. Self-contained: `bench/tenants_scale.rs` includes it too.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A free port below the OS's ephemeral range (32768+) and apart from the ports the test
/// harness gives servers (20000-31999), so nothing else takes it before the cluster binds it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id() % 2_000, Ordering::AcqRel, Ordering::Acquire);
    loop {
        let port = (15_000 + NEXT.fetch_add(1, Ordering::AcqRel) % 2_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct PgCluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// Extra `-c` settings for every start.
    extra: String,
}

/// The directory holding `initdb`, `pg_ctl` and `psql`.
fn bin_dir() -> PathBuf {
    let debian = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|dirs| {
        let mut versions: Vec<PathBuf> =
            dirs.flatten().map(|d| d.path().join("bin")).filter(|b| b.join("initdb").exists()).collect();
        versions.sort();
        versions.pop()
    });
    debian.expect("PostgreSQL server binaries (Debian package postgresql; tests/deps.sh installs it)")
}

fn is_root() -> bool {
    // `id -u` prints 0 for root.
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl PgCluster {
    /// A new cluster, started, with a superuser `lrsgate` (trust auth, loopback and socket only).
    pub fn start() -> PgCluster {
        Self::start_with(&[])
    }

    /// A new cluster with extra server settings (`-c name=value` pairs).
    pub fn start_with(settings: &[&str]) -> PgCluster {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(ok.success(), "chown to postgres failed (does the postgres user exist?)");
        }
        let extra = settings.iter().map(|s| format!(" -c {s}")).collect();
        let cluster = PgCluster { port: free_port(), dir, bin: bin_dir(), as_postgres, extra };
        let data = cluster.data();
        let out = cluster.run("initdb", &["-D", &data, "-U", "lrsgate", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        cluster.start_server(true);
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn socket_dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path()).output().unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }

    /// Start the server; `tcp` false: reachable only through its Unix socket (lrsgate, which
    /// connects over TCP, cannot reach it, while the test still can).
    pub fn start_server(&self, tcp: bool) {
        let listen = if tcp { "127.0.0.1" } else { "" };
        let opts = format!(
            "-p {} -k {} -c listen_addresses='{listen}' -c fsync=off{}",
            self.port,
            self.socket_dir(),
            self.extra
        );
        let log = self.dir.path().join("pg.log").display().to_string();
        let out = self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]);
        assert!(out.status.success(), "pg_ctl start failed: {}\n{}", String::from_utf8_lossy(&out.stderr), self.log());
    }

    pub fn stop_server(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pg.log")).unwrap_or_default()
    }

    /// The URL lrsgate uses (TCP).
    pub fn url(&self) -> String {
        format!("postgres://lrsgate@127.0.0.1:{}/postgres", self.port)
    }

    /// Run SQL through the Unix socket (works while TCP is closed); panics on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"))
    }

    /// Run SQL; its output, or the error psql printed. The SQL goes in on stdin, not as an
    /// argument: a test's bulk INSERT can outgrow the kernel's 128 KiB limit on one argument.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let mut psql = Command::new(self.bin.join("psql"))
            .args(["-h", &self.socket_dir(), "-p", &self.port.to_string(), "-U", "lrsgate", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        // Written from a thread: psql answers while it reads, and a full stdout pipe would
        // otherwise stall both sides.
        let mut stdin = psql.stdin.take().expect("psql stdin");
        let input = sql.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = psql.wait_with_output().expect("wait for psql");
        let _ = writer.join();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}
