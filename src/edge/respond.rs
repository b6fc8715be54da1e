//! Putting the edge's decided facts on Pingora's response headers.

use http::header::{HeaderName, VARY};
use pingora::http::ResponseHeader;

use crate::policy::cors::{CorsReply, EXPOSED_HEADERS_VALUE};

/// Put a request's CORS headers on a response, after removing any the LRS sent (they would
/// speak for origins the tenant never allowed, or duplicate ours).
pub fn apply_cors(reply: &CorsReply, resp: &mut ResponseHeader) {
    let theirs: Vec<HeaderName> =
        resp.headers.keys().filter(|name| name.as_str().starts_with("access-control-")).cloned().collect();
    for name in theirs {
        resp.remove_header(&name);
    }
    if let Some(origin) = reply.allow_origin() {
        let _ = resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let _ = resp.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED_HEADERS_VALUE);
    }
    let varies_by_origin = resp
        .headers
        .get_all(VARY)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|n| n.trim().eq_ignore_ascii_case("origin"))));
    if reply.vary && !varies_by_origin {
        let _ = resp.append_header(VARY, "Origin");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cors::AllowOrigin;
    use http::HeaderValue;

    #[test]
    fn apply_replaces_the_lrs_headers_and_varies_by_origin() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Access-Control-Allow-Origin", "*").unwrap();
        resp.append_header("Access-Control-Allow-Credentials", "true").unwrap();
        resp.append_header("ETag", "\"1\"").unwrap();
        let reply =
            CorsReply { allow: Some(AllowOrigin::Origin(HeaderValue::from_static("https://c.example"))), vary: true };
        apply_cors(&reply, &mut resp);
        let all = |n: &str| resp.headers.get_all(n).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(all("access-control-allow-origin"), ["https://c.example"]);
        assert!(all("access-control-allow-credentials").is_empty());
        assert_eq!(all("vary"), ["Origin"]);
        assert_eq!(all("etag"), ["\"1\""]);
        // Not a CORS request: the LRS's headers are still removed, and nothing is added.
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Access-Control-Allow-Origin", "*").unwrap();
        apply_cors(&CorsReply::default(), &mut resp);
        assert!(resp.headers.get("access-control-allow-origin").is_none() && resp.headers.get("vary").is_none());
    }
}
