//! The systemd unit's own lines, run as systemd would run them (there is no systemd PID 1
//! here): `ExecStartPre`/`ExecStart` in daemon mode, `ExecReload` for a graceful upgrade
//! (lines in order, the first failure ends the reload), `$MAINPID` tracked through `PIDFile=`
//! (re-read once the old main process exited), and a stop by `KillSignal=SIGTERM`. Only the
//! install paths are replaced by this test's own.
//!
//! Under load: no request fails through an upgrade, nor through an upgrade whose new binary
//! fails to start (the old process keeps serving); a stop lets a slow in-flight request finish
//! and then ends without waiting out the grace period.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const UNIT: &str = include_str!("../systemd/lrsgate.service");

/// The unit's command lines, with this test's paths for the installed binary and config.
struct Unit {
    start_pre: Vec<String>,
    start: Vec<String>,
    reload: Vec<String>,
    /// The unit's `Environment=` settings.
    environment: Vec<(String, String)>,
    pid_file: PathBuf,
}

impl Unit {
    fn parse(bin: &Path, config: &Path, pid_file: &Path) -> Unit {
        let lines = |key: &str| -> Vec<String> {
            UNIT.lines()
                .filter_map(|l| l.strip_prefix(key))
                .map(|l| {
                    l.replace("/usr/local/bin/lrsgate", &bin.display().to_string())
                        .replace("/etc/lrsgate/lrsgate.toml", &config.display().to_string())
                })
                .collect()
        };
        let unit_pid_file = lines("PIDFile=").pop().expect("the unit names its PIDFile");
        assert_eq!(unit_pid_file, "/run/lrsgate/lrsgate.pid");
        assert!(
            include_str!("../systemd/lrsgate.toml").contains(&format!("pid_file = \"{unit_pid_file}\"")),
            "the unit's PIDFile and systemd/lrsgate.toml's pid_file agree"
        );
        let unit = Unit {
            start_pre: lines("ExecStartPre="),
            start: lines("ExecStart="),
            reload: lines("ExecReload="),
            environment: lines("Environment=")
                .iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect(),
            pid_file: pid_file.to_owned(),
        };
        assert!(UNIT.contains("Type=forking"), "daemon mode needs Type=forking");
        assert_eq!(unit.start.len(), 1);
        assert!(unit.reload.iter().any(|l| l.contains("--upgrade")), "reload is the graceful upgrade");
        unit
    }

    /// Run lines in order as systemd does: `$MAINPID` expanded, the first failure stops them.
    fn run(&self, lines: &[String], main_pid: Option<u32>, log: &Path) -> Result<(), String> {
        for line in lines {
            let line = line.replace("$MAINPID", &main_pid.map(|p| p.to_string()).unwrap_or_default());
            let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
            let status = Command::new("sh")
                .args(["-c", &line])
                .env("TEST_LRS_PASSWORD", LRS_PASSWORD)
                .envs(self.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .status()
                .unwrap();
            if !status.success() {
                return Err(format!("{line}: {status}"));
            }
        }
        Ok(())
    }

    fn main_pid(&self) -> u32 {
        std::fs::read_to_string(&self.pid_file).unwrap().trim().parse().unwrap()
    }
}

fn alive(pid: u32) -> bool {
    Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success())
}

fn wait_exit(pid: u32, within: Duration) -> Duration {
    let started = Instant::now();
    while alive(pid) {
        assert!(started.elapsed() < within, "process {pid} did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Kills whatever the pid file names when the test ends, however it ends.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).stderr(std::process::Stdio::null()).status();
        }
    }
}

/// Clients that keep sending (a fresh connection each time): token requests and state reads.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(edge: u16, token_port: u16, token: &str) -> Load {
        let failed: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let threads = (0..4)
            .map(|n| {
                let (stop, sent, failed, token) = (stop.clone(), sent.clone(), Arc::clone(&failed), token.to_owned());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let (port, req, expect) = if n % 2 == 0 {
                            let req = Req::post("/auth/token", token_request().to_string().into_bytes())
                                .header("Authorization", &format!("Bearer {API_KEY_ACME}"))
                                .header("Content-Type", "application/json");
                            (token_port, req, 200)
                        } else {
                            (edge, Req::statements(&token, statement().to_string().into_bytes()), 200)
                        };
                        sent.fetch_add(1, Ordering::Relaxed);
                        match try_send(port, &req) {
                            Ok(r) if r.status == expect => {}
                            Ok(r) => failed.lock().unwrap().push(format!("{} {}", r.status, r.text())),
                            Err(e) => failed.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load { stop, sent, failed, threads }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (self.sent.load(Ordering::Relaxed), Arc::try_unwrap(self.failed).unwrap().into_inner().unwrap())
    }
}

#[test]
fn the_units_own_lines_upgrade_under_load_survive_a_failed_upgrade_and_stop_early() {
    let lrs = StandIn::start_with(&["--no-record", "--max-statements", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let (edge, token_port, metrics) = (free_port(), free_port(), free_port());
    let config = dir.path().join("lrsgate.toml");
    let pid_file = dir.path().join("lrsgate.pid");
    std::fs::write(
        &config,
        format!(
            "[listen]\nedge = \"127.0.0.1:{edge}\"\ntoken_service = \"127.0.0.1:{token_port}\"\n\
             metrics = \"127.0.0.1:{metrics}\"\n[upstream]\nhealth_check_interval_seconds = 3600\n\
             [server]\nthreads = 2\npid_file = \"{}\"\nupgrade_sock = \"{}\"\n\
             grace_period_seconds = 60\ngraceful_shutdown_timeout_seconds = 5\n",
            pid_file.display(),
            dir.path().join("upgrade.sock").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("tenants.toml"), tenants_toml_with(&GateOptions::new(&[lrs.port]))).unwrap();
    // "Installed" binary: a link that an upgrade replaces.
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let bin = dir.path().join("bin/lrsgate");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lrsgate"), &bin).unwrap();
    let unit = Unit::parse(&bin, &config, &pid_file);
    let log = dir.path().join("journal.log");
    let journal = || std::fs::read_to_string(&log).unwrap_or_default();
    let _reaper = Reaper(pid_file.clone());

    unit.run(&unit.start_pre, None, &log).unwrap_or_else(|e| panic!("{e}\n{}", journal()));
    unit.run(&unit.start, None, &log).unwrap_or_else(|e| panic!("{e}\n{}", journal()));
    // ExecStart returned: the daemon said it is ready and wrote its pid.
    let first = unit.main_pid();
    assert!(alive(first));
    // The daemon says it is ready once its bootstrap ran; its listeners bind right after.
    for port in [edge, token_port] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = loop {
            match try_send(port, &Req::get("/readyz")) {
                Ok(r) => break r,
                Err(e) => assert!(Instant::now() < deadline, "port {port} never listened: {e}\n{}", journal()),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!((ready.status, ready.json()["status"].as_str()), (200, Some("ready")));
    }

    let token = {
        let r = try_send(
            token_port,
            &Req::post("/auth/token", token_request().to_string().into_bytes())
                .header("Authorization", &format!("Bearer {API_KEY_ACME}"))
                .header("Content-Type", "application/json"),
        )
        .unwrap();
        r.json()["token"].as_str().unwrap().to_owned()
    };
    let load = Load::start(edge, token_port, &token);
    std::thread::sleep(Duration::from_millis(500));

    // 1. `systemctl reload`: the upgrade.
    unit.run(&unit.reload, Some(first), &log).unwrap_or_else(|e| panic!("reload failed: {e}\n{}", journal()));
    wait_exit(first, Duration::from_secs(30));
    let second = unit.main_pid();
    assert_ne!(second, first, "the pid file names the new process");
    assert!(alive(second));
    std::thread::sleep(Duration::from_millis(500));

    // 2. A reload whose new binary fails to start: the reload fails, the old process serves on.
    let broken = dir.path().join("bin/lrsgate-broken");
    std::fs::write(
        &broken,
        format!(
            "#!/bin/sh\ncase \"$1\" in check-config) exec {} \"$@\";; esac\n\
             echo 'simulated: the new binary cannot start' >&2\nexit 70\n",
            env!("CARGO_BIN_EXE_lrsgate")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&broken, &bin).unwrap();
    let failed = unit.run(&unit.reload, Some(second), &log);
    assert!(failed.is_err(), "a reload with a broken binary succeeded");
    assert!(journal().contains("simulated: the new binary cannot start"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(second), "the running process stopped after a failed upgrade");
    assert_eq!(unit.main_pid(), second);

    // 3. A config the new process refuses: refused before any socket is touched.
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lrsgate"), dir.path().join("bin/lrsgate.good")).unwrap();
    std::fs::rename(dir.path().join("bin/lrsgate.good"), &bin).unwrap();
    let tenants = dir.path().join("tenants.toml");
    let good_tenants = std::fs::read_to_string(&tenants).unwrap();
    std::fs::write(&tenants, good_tenants.replace("[tenant.tokens]", "[tenant.tokens]\nrefresh = true")).unwrap();
    assert!(unit.run(&unit.reload, Some(second), &log).is_err(), "a reload with a bad config succeeded");
    std::fs::write(&tenants, good_tenants).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(second));

    let (sent, failures) = load.finish();
    assert!(failures.is_empty(), "{} of {sent} requests failed across the upgrades: {failures:?}", failures.len());
    assert!(sent > 100, "the load ran ({sent} requests)");
    eprintln!("systemd unit: {sent} requests through one upgrade and two refused ones, 0 failed");

    // 4. `systemctl stop`: SIGTERM. A slow request in flight finishes; then the process exits
    // without waiting out its 60 s grace period.
    lrs.fault("slow:1500");
    let in_flight = std::thread::spawn(move || {
        try_send(edge, &Req::statements(&token, statement().to_string().into_bytes())).map(|r| r.status)
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill").args(["-TERM", &second.to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(in_flight.join().unwrap().ok(), Some(200), "the request in flight at the stop was cut off");
    // Well inside the grace period (60 s): the stop ended once nothing was in flight.
    let took = wait_exit(second, Duration::from_secs(30));
    assert!(journal().contains("graceful stop: nothing left in flight"), "{}", journal());
    eprintln!("systemd unit: stop with a request in flight took {took:?} (grace period 60 s)");
}
