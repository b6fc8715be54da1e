//! CORS per tenant, for AUs running in a browser on another origin (facts B7, A2).
//!
//! Deny by default: a tenant allows no origin until it lists some. A request that carries an
//! `Origin` the tenant does not allow is refused before anything else happens (so a page on
//! another site cannot spend a fetch URL or write with a stolen token through a browser);
//! requests without `Origin` (server-to-server, remote AUs) are judged as before. The LRS's own
//! CORS headers never reach the client: lrsgate's replace them on every response.
//! `Access-Control-Allow-Credentials` is never sent: AUs send their token in `Authorization`,
//! never in a cookie, so `*` stays safe where a tenant configures it.

use http::header::{HeaderName, HeaderValue};

/// Methods an xAPI preflight may ask for.
pub const XAPI_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD"];
/// Methods the fetch URL's preflight may ask for (cmi5 §8.2: POST only).
pub const FETCH_METHODS: &[&str] = &["POST"];
/// Request headers a preflight may ask for, lower case.
pub const ALLOWED_HEADERS: &[&str] =
    &["authorization", "content-type", "x-experience-api-version", "if-match", "if-none-match"];
const ALLOWED_HEADERS_VALUE: &str = "Authorization, Content-Type, X-Experience-API-Version, If-Match, If-None-Match";
/// Response headers an AU must read (`cmi5.js` reads the ETag).
pub const EXPOSED_HEADERS_VALUE: &str =
    "ETag, Last-Modified, X-Experience-API-Version, X-Experience-API-Consistent-Through";

/// The origins a tenant allows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// None (the default).
    #[default]
    None,
    /// Every origin (`*`), only where the tenant configured it.
    Any,
    /// These serialized origins (`https://content.example`, `http://127.0.0.1:8000`), exactly.
    List(Vec<String>),
}

/// A tenant's CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    pub origins: AllowedOrigins,
    /// How long a browser may cache a preflight answer. Default 600 s.
    pub max_age_seconds: u32,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        CorsPolicy { origins: AllowedOrigins::None, max_age_seconds: 600 }
    }
}

/// What `Access-Control-Allow-Origin` says for an allowed cross-origin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowOrigin {
    Any,
    /// The request's own origin, echoed.
    Origin(HeaderValue),
}

/// Why a CORS request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsRefusal {
    /// The `Origin` is not one the tenant allows.
    Origin,
    /// A preflight asked for a method or header that is not allowed.
    Preflight,
}

/// The CORS facts of one request, decided once in `request_filter` and applied to whatever
/// response it gets (our own refusals included, so an AU can read them).
#[derive(Debug, Clone, Default)]
pub struct CorsReply {
    /// `Some`: an allowed cross-origin request; these headers go on the response.
    pub allow: Option<AllowOrigin>,
    /// The tenant allows some origin, so responses vary by `Origin` (for caches).
    pub vary: bool,
}

impl CorsPolicy {
    /// Judge a request's `Origin`. `own_origin` is the tenant's public origin: a same-origin
    /// request (browsers send `Origin` on same-origin POSTs too) is allowed, needing no headers.
    pub fn judge(&self, origin: Option<&[u8]>, own_origin: Option<&str>) -> Result<CorsReply, CorsRefusal> {
        let vary = self.origins != AllowedOrigins::None;
        let Some(origin) = origin else { return Ok(CorsReply { allow: None, vary }) };
        if own_origin.is_some_and(|own| own.as_bytes() == origin) {
            return Ok(CorsReply { allow: None, vary });
        }
        let allow = match &self.origins {
            AllowedOrigins::Any => AllowOrigin::Any,
            AllowedOrigins::List(list) if list.iter().any(|o| o.as_bytes() == origin) => {
                AllowOrigin::Origin(HeaderValue::from_bytes(origin).map_err(|_| CorsRefusal::Origin)?)
            }
            _ => return Err(CorsRefusal::Origin),
        };
        Ok(CorsReply { allow: Some(allow), vary })
    }

    /// The headers of a successful preflight answer, or a refusal when it asks for a method
    /// outside `methods` or a header outside [`ALLOWED_HEADERS`]. `reply` comes from `judge`.
    pub fn preflight(
        &self,
        reply: &CorsReply,
        request_method: &[u8],
        request_headers: Option<&[u8]>,
        methods: &[&str],
    ) -> Result<Vec<(HeaderName, String)>, CorsRefusal> {
        if !methods.iter().any(|m| m.as_bytes() == request_method) {
            return Err(CorsRefusal::Preflight);
        }
        let asked = request_headers.map(|h| String::from_utf8_lossy(h).to_ascii_lowercase()).unwrap_or_default();
        let unknown_header = asked.split(',').map(str::trim).any(|h| !h.is_empty() && !ALLOWED_HEADERS.contains(&h));
        if unknown_header {
            return Err(CorsRefusal::Preflight);
        }
        let mut headers = Vec::with_capacity(5);
        if let Some(allow) = &reply.allow {
            headers.push((http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin_value(allow)));
        }
        headers.push((http::header::ACCESS_CONTROL_ALLOW_METHODS, methods.join(", ")));
        headers.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS_VALUE.to_owned()));
        headers.push((http::header::ACCESS_CONTROL_MAX_AGE, self.max_age_seconds.to_string()));
        Ok(headers)
    }
}

fn allow_origin_value(allow: &AllowOrigin) -> String {
    match allow {
        AllowOrigin::Any => "*".to_owned(),
        AllowOrigin::Origin(origin) => String::from_utf8_lossy(origin.as_bytes()).into_owned(),
    }
}

impl CorsReply {
    /// The value of `Access-Control-Allow-Origin` for an allowed cross-origin request.
    pub fn allow_origin(&self) -> Option<String> {
        self.allow.as_ref().map(allow_origin_value)
    }
}

/// Parse a configured origin (`https://Content.Example:443/` → `https://content.example`): an
/// http(s) URL with a host and nothing after it but an optional `/`. `None` when it is not one.
pub fn parse_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !text.ends_with("//");
    plain.then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(origins: &[&str]) -> CorsPolicy {
        CorsPolicy {
            origins: AllowedOrigins::List(origins.iter().map(|o| o.to_string()).collect()),
            ..CorsPolicy::default()
        }
    }

    #[test]
    fn origin_rules() {
        let own = Some("https://lrs.example");
        type Row<'a> = (&'a str, CorsPolicy, Option<&'a str>, Result<Option<&'a str>, CorsRefusal>);
        let table: Vec<Row<'_>> = vec![
            ("no_origin_is_not_cors", CorsPolicy::default(), None, Ok(None)),
            (
                "default_allows_no_origin",
                CorsPolicy::default(),
                Some("https://content.example"),
                Err(CorsRefusal::Origin),
            ),
            (
                "listed_origin_is_echoed",
                listed(&["https://content.example"]),
                Some("https://content.example"),
                Ok(Some("https://content.example")),
            ),
            (
                "origins_compare_exactly",
                listed(&["https://content.example"]),
                Some("https://content.example.evil"),
                Err(CorsRefusal::Origin),
            ),
            (
                "scheme_is_part_of_the_origin",
                listed(&["https://content.example"]),
                Some("http://content.example"),
                Err(CorsRefusal::Origin),
            ),
            (
                "port_is_part_of_the_origin",
                listed(&["https://c.example"]),
                Some("https://c.example:8443"),
                Err(CorsRefusal::Origin),
            ),
            ("null_origin_is_refused", listed(&["https://c.example"]), Some("null"), Err(CorsRefusal::Origin)),
            (
                "star_allows_any_origin",
                CorsPolicy { origins: AllowedOrigins::Any, ..CorsPolicy::default() },
                Some("https://anyone.example"),
                Ok(Some("*")),
            ),
            ("same_origin_needs_no_headers", CorsPolicy::default(), Some("https://lrs.example"), Ok(None)),
        ];
        for (rule, policy, origin, want) in table {
            let got = policy.judge(origin.map(str::as_bytes), own).map(|r| r.allow.map(|a| allow_origin_value(&a)));
            assert_eq!(got, want.map(|o| o.map(str::to_owned)), "{rule}");
        }
    }

    #[test]
    fn preflight_rules() {
        let policy = listed(&["https://c.example"]);
        let reply = policy.judge(Some(b"https://c.example"), None).unwrap();
        let ok = policy
            .preflight(&reply, b"PUT", Some(b"authorization, Content-Type,X-Experience-API-Version"), XAPI_METHODS)
            .unwrap();
        let get = |name: HeaderName| ok.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get(http::header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://c.example"));
        assert_eq!(get(http::header::ACCESS_CONTROL_ALLOW_METHODS), Some("GET, POST, PUT, DELETE, HEAD"));
        assert_eq!(get(http::header::ACCESS_CONTROL_MAX_AGE), Some("600"));
        assert!(get(http::header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap().contains("If-None-Match"));
        assert_eq!(policy.preflight(&reply, b"PATCH", None, XAPI_METHODS), Err(CorsRefusal::Preflight));
        assert_eq!(policy.preflight(&reply, b"PUT", Some(b"x-api-key"), XAPI_METHODS), Err(CorsRefusal::Preflight));
        assert_eq!(policy.preflight(&reply, b"GET", None, FETCH_METHODS), Err(CorsRefusal::Preflight));
        assert!(policy.preflight(&reply, b"POST", None, FETCH_METHODS).is_ok());
    }

    #[test]
    fn configured_origins_are_normalised_or_refused() {
        assert_eq!(parse_origin("https://Content.Example:443/").as_deref(), Some("https://content.example"));
        assert_eq!(parse_origin("http://127.0.0.1:8000").as_deref(), Some("http://127.0.0.1:8000"));
        for bad in ["https://c.example/path", "ftp://c.example", "https://u:p@c.example", "c.example", "null", "*"] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }
}
