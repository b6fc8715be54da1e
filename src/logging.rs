//! Log lines: the process's log format (text or one JSON object per line), and the fields that
//! must not carry personal data.
//!
//! lrsgate's own lines carry structured fields (`log`'s key-values: `request_id`, `tenant`,
//! `reason`…). The text format appends them as `key=value`; the JSON format writes them as
//! members beside the stable `ts`, `level`, `target` and `message`.

use std::io::Write as _;

use log::kv::{Key, Value, VisitSource};
use sha2::{Digest, Sha256};

use crate::xapi::agent::Ifi;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Install the process's logger (`RUST_LOG` filters; default `info`).
pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let mut line = serde_json::Map::new();
            line.insert("ts".into(), buf.timestamp_millis().to_string().into());
            line.insert("level".into(), record.level().as_str().to_ascii_lowercase().into());
            line.insert("target".into(), record.target().into());
            line.insert("message".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut JsonFields(&mut line));
            let text = serde_json::Value::Object(line).to_string();
            writeln!(buf, "{text}")
        });
    }
    // A second init (tests, a library user's own logger) keeps the first.
    let _ = builder.try_init();
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'_>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        // The fixed members are never overwritten by a field of the same name.
        let name = key.as_str();
        if !matches!(name, "ts" | "level" | "target" | "message") {
            let json = match (value.to_u64(), value.to_bool()) {
                (Some(n), _) => n.into(),
                (None, Some(b)) => b.into(),
                _ => value.to_string().into(),
            };
            self.0.insert(name.to_owned(), json);
        }
        Ok(())
    }
}

/// A learner as it appears in logs and the audit trail: 16 hex digits of
/// SHA-256(salt | tenant | IFI). Stable for one salt and tenant (an operator can follow one
/// learner), meaningless without the salt, and different across tenants.
pub fn learner_hash(salt: &str, tenant: &str, actor: &Ifi) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(actor.stable_text().as_bytes());
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_salt_and_tenant_and_hides_the_email() {
        let a = Ifi::Mbox("mailto:ann@example.org".into());
        let h1 = learner_hash("s1", "t1", &a);
        assert_eq!(h1.len(), 16);
        assert_eq!(h1, learner_hash("s1", "t1", &a));
        assert_ne!(h1, learner_hash("s2", "t1", &a));
        assert_ne!(h1, learner_hash("s1", "t2", &a));
        assert!(!h1.contains("ann"));
    }

    #[test]
    fn log_formats_parse() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("JSON"), None);
    }
}
