//! Asking the audit trail: by tenant, time range, session, learner hash, reason and kind. The
//! same filter reads `audit_events` (admin API, CLI in Postgres mode) and an audit file (CLI in
//! file mode).

use serde_json::{json, Value};
use tokio_postgres::GenericClient;

use super::event::{AuditEvent, EventKind};

/// At most this many events per answer.
pub const MAX_LIMIT: i64 = 10_000;

/// A filter; every field optional, all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    pub session: Option<String>,
    pub learner: Option<String>,
    pub reason: Option<String>,
    pub kind: Option<EventKind>,
    /// Default 100, at most [`MAX_LIMIT`].
    pub limit: i64,
}

impl AuditQuery {
    /// From `name=value` pairs (the admin API's query, the CLI's flags). Unknown names and
    /// malformed values are refused with what was wrong.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<AuditQuery, String> {
        let mut q = AuditQuery { limit: 100, ..AuditQuery::default() };
        let mut seen = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name) {
                return Err(format!("{name} is given twice"));
            }
            seen.push(name);
            let text = || Some(value.to_owned());
            match name {
                "tenant" => q.tenant = text(),
                "session" => q.session = text(),
                "learner" => q.learner = text(),
                "reason" => q.reason = text(),
                "kind" => q.kind = Some(EventKind::parse(value).ok_or_else(|| format!("unknown kind {value:?}"))?),
                "from" => q.from_ms = Some(parse_time(value).ok_or_else(|| format!("from: {value:?} is not a time"))?),
                "to" => q.to_ms = Some(parse_time(value).ok_or_else(|| format!("to: {value:?} is not a time"))?),
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit must be 1..={MAX_LIMIT}"))?;
                }
                other => {
                    return Err(format!(
                        "unknown filter {other:?} (tenant, from, to, session, learner, reason, kind, limit)"
                    ))
                }
            }
        }
        Ok(q)
    }

    /// Whether `e` passes the filter.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        same(&self.tenant, &e.tenant)
            && same(&self.session, &e.session_id)
            && same(&self.learner, &e.learner)
            && same(&self.reason, &e.reason)
            && self.kind.is_none_or(|k| k == e.kind)
            && self.from_ms.is_none_or(|t| e.at_ms >= t)
            && self.to_ms.is_none_or(|t| e.at_ms < t)
    }

    /// The matching events from `audit_events`, oldest first.
    pub async fn run(&self, client: &impl GenericClient) -> Result<Vec<Value>, tokio_postgres::Error> {
        let kind = self.kind.map(EventKind::as_str);
        let rows = client
            .query(
                "SELECT id::text, (extract(epoch FROM at) * 1000)::int8, kind, service, tenant_id, reason, resource,
                        status, session_id, learner_hash, actor, request_id, detail
                 FROM audit_events
                 WHERE ($1::text IS NULL OR tenant_id = $1)
                   AND ($2::int8 IS NULL OR at >= to_timestamp($2 / 1000.0))
                   AND ($3::int8 IS NULL OR at < to_timestamp($3 / 1000.0))
                   AND ($4::text IS NULL OR session_id = $4)
                   AND ($5::text IS NULL OR learner_hash = $5)
                   AND ($6::text IS NULL OR reason = $6)
                   AND ($7::text IS NULL OR kind = $7)
                 ORDER BY at, id
                 LIMIT $8",
                &[
                    &self.tenant,
                    &self.from_ms,
                    &self.to_ms,
                    &self.session,
                    &self.learner,
                    &self.reason,
                    &kind,
                    &self.limit,
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let status: Option<i16> = r.get(7);
                let mut v = json!({
                    "id": r.get::<_, String>(0),
                    "at_ms": r.get::<_, i64>(1),
                    "kind": r.get::<_, String>(2),
                    "service": r.get::<_, String>(3),
                });
                let optional = [
                    ("tenant", 4),
                    ("reason", 5),
                    ("resource", 6),
                    ("session_id", 8),
                    ("learner", 9),
                    ("actor", 10),
                    ("request_id", 11),
                    ("detail", 12),
                ];
                for (name, col) in optional {
                    if let Some(text) = r.get::<_, Option<String>>(col) {
                        v[name] = json!(text);
                    }
                }
                if let Some(status) = status {
                    v["status"] = json!(status);
                }
                v
            })
            .collect())
    }
}

/// Unix seconds (`1764633600`) or an RFC 3339 UTC time (`2026-12-02T01:00:00Z`, fraction
/// allowed) as Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num =
        |r: std::ops::Range<usize>| text.get(r).filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let rest = &text[19..];
    let (millis, zone) = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let ms = frac[..digits.min(3)].parse::<i64>().ok()? * 10_i64.pow(3 - digits.min(3) as u32);
            (ms, &frac[digits..])
        }
        None => (0, rest),
    };
    if zone != "Z" {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Service;

    #[test]
    fn times_parse_as_seconds_or_rfc3339_utc() {
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_time("2026-12-31T23:59:59.5Z"), Some(1_798_761_599_500));
        assert_eq!(parse_time("2026-12-31T23:59:59+01:00"), None);
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn filters_are_strict_and_match_exactly() {
        assert!(AuditQuery::from_pairs([("tenant", "a"), ("tenant", "b")]).is_err());
        assert!(AuditQuery::from_pairs([("tennant", "a")]).is_err());
        assert!(AuditQuery::from_pairs([("limit", "0")]).is_err());
        assert!(AuditQuery::from_pairs([("kind", "nope")]).is_err());
        let q = AuditQuery::from_pairs([("tenant", "acme"), ("reason", "token_missing"), ("from", "10")]).unwrap();
        assert_eq!(q.limit, 100);
        let e = AuditEvent::new(EventKind::RequestRefused, Service::Edge).tenant("acme").reason("token_missing");
        assert!(q.matches(&e));
        assert!(!q.matches(&e.clone().reason("token_expired")));
        assert!(!q.matches(&AuditEvent { tenant: Some("acme2".into()), ..e.clone() }));
        assert!(!q.matches(&AuditEvent { at_ms: 9_999, ..e }));
    }
}
