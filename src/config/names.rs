//! The names a tenant is made of, each validated once by the same rule wherever it comes from:
//! the tenants file, the Postgres source and the admin API (and its CLI) all parse through these
//! types, so a value one of them accepts the others accept too, and the edge only ever matches
//! against values that passed here.

use std::fmt;
use std::net::Ipv6Addr;

/// Why a name was refused: what it should have been. The caller adds where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// A tenant id: 1 to 64 ASCII letters, digits, `-` and `_` (the `tenants.id` column's check).
/// It appears in URLs of the admin API, in sealed-secret contexts and in metric labels, so it
/// is kept to characters none of those need to escape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, NameError> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(TenantId(text.to_owned()))
        } else {
            Err(NameError(format!("\"{text}\" is not a tenant id (1-64 letters, digits, - and _)")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host a tenant is served at, in the form the edge looks up (`tenant::normalize_host` of a
/// `Host` header or an SNI name): lower case, no port. A DNS name or IPv4 address (labels of
/// letters, digits, `-` and `_`, each 1 to 63 bytes, 253 in all), or an IPv6 literal in
/// brackets (`[::1]`). No trimming or other repair: a value that is not already a host name is
/// refused with a reason, so what is stored is what was typed, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    pub const MAX_LEN: usize = 253;

    pub fn parse(text: &str) -> Result<Self, NameError> {
        let refuse = |why: &str| NameError(format!("\"{text}\" is not a host name ({why})"));
        let host = text.to_ascii_lowercase();
        if let Some(inner) = host.strip_prefix('[') {
            let literal = inner.strip_suffix(']').ok_or_else(|| refuse("an IPv6 literal ends with ']'"))?;
            literal.parse::<Ipv6Addr>().map_err(|_| refuse("not an IPv6 address inside the brackets"))?;
            return Ok(HostName(host));
        }
        if host.is_empty() || host.len() > Self::MAX_LEN {
            return Err(refuse("1 to 253 bytes"));
        }
        if host.contains(['/', ':', '@', '?', '#']) {
            return Err(refuse("no scheme, port or path"));
        }
        for label in host.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(refuse("each dot-separated label is 1 to 63 bytes"));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(refuse("letters, digits, '-', '_' and '.' only"));
            }
        }
        Ok(HostName(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl PartialEq<&str> for HostName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An LRS node's share of its tenant's requests, relative to the other nodes: 1 to 1000 (the
/// `upstream_nodes.weight` column's check). Zero would mean a node that is never chosen, which
/// is what removing it says plainly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeWeight(u16);

impl NodeWeight {
    pub const MAX: u16 = 1000;
    pub const ONE: NodeWeight = NodeWeight(1);

    pub fn new(weight: i64) -> Result<Self, NameError> {
        match u16::try_from(weight) {
            Ok(w @ 1..=Self::MAX) => Ok(NodeWeight(w)),
            _ => Err(NameError(format!("weight {weight} is not between 1 and {}", Self::MAX))),
        }
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for NodeWeight {
    fn default() -> Self {
        NodeWeight::ONE
    }
}

/// The user name of a tenant's LRS credential, sent as `Basic base64(user:password)`: RFC 7617
/// leaves no way to put a `:` in it, and control characters have no place in a credential.
/// Not empty: every LRS this project meets names its keys.
#[derive(Clone, PartialEq, Eq)]
pub struct LrsUserName(String);

impl LrsUserName {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text.is_empty() {
            return Err(NameError("an LRS user name is required".into()));
        }
        if text.contains(':') {
            return Err(NameError("a Basic user name cannot contain ':'".into()));
        }
        if text.chars().any(char::is_control) {
            return Err(NameError("an LRS user name cannot contain control characters".into()));
        }
        Ok(LrsUserName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Written out in full only where it is the operator's own view (the admin API); logs never
/// print a `TenantSpec`'s credential.
impl fmt::Debug for LrsUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LrsUserName(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        for ok in ["acme", "a", "Acme_2-x", &"a".repeat(64)] {
            assert_eq!(TenantId::parse(ok).map(|t| t.into_string()).as_deref(), Ok(ok), "{ok}");
        }
        for bad in ["", "ac me", "acme/1", "acmé", "a.b", &"a".repeat(65), "acme\n"] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_names() {
        let table = [
            ("lrs.example.com", Some("lrs.example.com")),
            ("LRS.Example.COM", Some("lrs.example.com")),
            ("acme.test", Some("acme.test")),
            ("127.0.0.1", Some("127.0.0.1")),
            ("localhost", Some("localhost")),
            ("under_score.test", Some("under_score.test")),
            ("[::1]", Some("[::1]")),
            ("[2001:DB8::1]", Some("[2001:db8::1]")),
            ("", None),
            (" acme.test", None),
            ("acme.test ", None),
            ("acme.test:8443", None),
            ("https://acme.test", None),
            ("acme.test/xapi", None),
            ("user@acme.test", None),
            ("acme..test", None),
            (".acme.test", None),
            ("acme.test.", None),
            ("[::1", None),
            ("[not-ipv6]", None),
            ("[::1]:80", None),
            ("::1", None),
            ("acmé.test", None),
            ("a\u{0}b", None),
        ];
        for (text, want) in table {
            assert_eq!(HostName::parse(text).ok().map(HostName::into_string).as_deref(), want, "{text:?}");
        }
        let long_label = format!("{}.test", "a".repeat(64));
        assert!(HostName::parse(&long_label).is_err());
        let long_name = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long_name.len(), 255);
        assert!(HostName::parse(&long_name).is_err());
        assert!(HostName::parse(&long_name[..253]).is_ok());
    }

    #[test]
    fn node_weights() {
        for (w, ok) in [(1, true), (1000, true), (0, false), (-1, false), (1001, false), (i64::MAX, false)] {
            assert_eq!(NodeWeight::new(w).is_ok(), ok, "{w}");
        }
        assert_eq!(NodeWeight::new(7).map(NodeWeight::get), Ok(7));
        assert_eq!(NodeWeight::default().get(), 1);
    }

    #[test]
    fn lrs_user_names() {
        for ok in ["lrs", "key-123", "name with space", "ünïcode"] {
            assert_eq!(LrsUserName::parse(ok).map(|u| u.as_str().to_owned()).as_deref(), Ok(ok));
        }
        for bad in ["", "a:b", ":", "a\nb", "a\u{7f}"] {
            assert!(LrsUserName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{:?}", LrsUserName::parse("secret-ish").ok()), "Some(LrsUserName(..))");
    }
}
