//! The bench's floor: a plain Pingora reverse proxy with lrsgate's own server settings (the
//! same `ServerConf`, HTTP server options and edge listener, read from the same config file)
//! and no checks at all. It swaps in the LRS credential, as the nginx baseline does, and
//! passes everything else through. What lrsgate costs beyond it is lrsgate's own work.
//!
//!   passthrough CONFIG LISTEN UPSTREAM AUTHORIZATION
//!
//! Not a product: no tenant, no token, no limits. `bench/run.sh` builds and runs it.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, Session};
use pingora::proxy::ProxyHttp;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::Result;

struct Passthrough {
    upstream: String,
    authorization: String,
    keepalive_timeout_seconds: u64,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        session.set_keepalive(Some(self.keepalive_timeout_seconds));
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream.as_str(), false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut pingora::http::RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        upstream.insert_header(http::header::AUTHORIZATION, self.authorization.as_str())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, listen, upstream, authorization] = args.as_slice() else {
        eprintln!("usage: passthrough CONFIG LISTEN UPSTREAM AUTHORIZATION");
        std::process::exit(2);
    };
    let cfg = match lrsgate::config::server::ServerConfig::load(std::path::Path::new(config)) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut conf = lrsgate::server::pingora_conf(&cfg);
    // Its own files: it runs beside the lrsgate that reads the same config.
    conf.pid_file = format!("{}.passthrough", conf.pid_file);
    conf.upgrade_sock = format!("{}.passthrough", conf.upgrade_sock);
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let app = Passthrough {
        upstream: upstream.clone(),
        authorization: authorization.clone(),
        keepalive_timeout_seconds: cfg.connections.keepalive_timeout.as_secs(),
    };
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, app);
    proxy.server_options = Some(lrsgate::server::http_server_options(&cfg));
    let mut service = pingora::services::listening::Service::new("passthrough".to_owned(), proxy);
    service.add_listener(lrsgate::server::edge_listener(listen, &cfg));
    server.add_service(service);
    server.run_forever();
}
