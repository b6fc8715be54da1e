//! A migrated throwaway Postgres for Postgres-mode tests: the cluster, a CLI config beside it,
//! tenants made with the real CLI, and gates in Postgres mode.

use serde_json::Value;

use super::pg::PgCluster;
use super::*;

/// A throwaway cluster, migrated, with a CLI config beside it.
pub struct Db {
    pub pg: PgCluster,
    pub keys: String,
    /// A config for the CLI, beside the cluster.
    pub config: std::path::PathBuf,
}

impl Db {
    pub fn start() -> Db {
        let pg = PgCluster::start();
        let keys = format!("{},{}", master_key("k2"), master_key("k1"));
        let config = pg.path().join("cli.toml");
        std::fs::write(&config, format!("[database]\nurl = \"{}\"\nmaster_keys = \"{keys}\"\n", pg.url())).unwrap();
        let db = Db { pg, keys, config };
        assert_eq!(db.cli(&["migrate"]).unwrap()["applied"], serde_json::json!([1, 2, 3, 4, 5]));
        assert_eq!(db.cli(&["migrate"]).unwrap()["applied"], serde_json::json!([]), "idempotent");
        db
    }

    pub fn cli(&self, args: &[&str]) -> Result<Value, String> {
        cli(&self.config, args, &[("LRSGATE_LRS_PASSWORD", LRS_PASSWORD)])
    }

    /// Tenant `id` on `hosts`, its LRS the stand-in at `port`, with an API key; returns the key.
    pub fn tenant(&self, id: &str, hosts: &[&str], port: u16) -> String {
        self.tenant_with(id, hosts, port, &[])
    }

    /// [`Db::tenant`] with more `tenant create` arguments (`--public-origin …`).
    pub fn tenant_with(&self, id: &str, hosts: &[&str], port: u16, extra: &[&str]) -> String {
        let upstream = format!("http://127.0.0.1:{port}/xapi");
        let mut args = vec!["tenant", "create", id, "--upstream", &upstream, "--lrs-username", LRS_USER];
        args.extend(extra);
        for h in hosts {
            args.extend(["--host", h]);
        }
        let view = self.cli(&args).unwrap();
        assert_eq!(view["status"], "active");
        let key = self.cli(&["apikey", "create", id, "--description", "test LMS"]).unwrap();
        key["key"].as_str().unwrap().to_owned()
    }

    pub fn gate(&self, lrs: &StandIn, tls: bool) -> Gate {
        self.gate_with(lrs, tls, "")
    }

    /// A gate with more keys in its `[database]` section.
    pub fn gate_with(&self, lrs: &StandIn, tls: bool, database_extra: &str) -> Gate {
        let mut opts = self.options(lrs);
        opts.database_extra = database_extra.to_owned();
        opts.edge_tls = tls;
        Gate::start(opts)
    }

    /// Gate options in Postgres mode on this database.
    pub fn options(&self, lrs: &StandIn) -> GateOptions {
        let mut opts = GateOptions::new(&[lrs.port]);
        opts.database = Some((self.pg.url(), self.keys.clone()));
        opts
    }
}

pub fn master_key(id: &str) -> String {
    lrsgate::secrets::MasterKeys::generate_entry(id)
}
