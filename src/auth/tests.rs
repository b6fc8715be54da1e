//! Verification rules, one row per rule.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::claims::{Permissions, SessionClaims};
use super::issue::sign;
use super::keys::TenantKeys;
use super::verify::{token_from_authorization, verify, TokenError};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn keys() -> TenantKeys {
    TenantKeys::hs256("acme", SECRET, "lrsgate", 30)
}

fn claims() -> SessionClaims {
    let now = jsonwebtoken::get_current_timestamp();
    SessionClaims {
        tenant_id: "acme".into(),
        actor: json!({"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "l1"}}),
        registration: "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11".into(),
        activity_id: "https://lms.example/au/1".into(),
        course_id: None,
        permissions: Permissions {
            write: "actor-activity-registration-scoped".into(),
            read: "actor-activity-registration-scoped".into(),
        },
        group: None,
        session_id: "s1".into(),
        publisher_id: None,
        course_activities: Vec::new(),
        launch_mode: None,
        jti: "j1".into(),
        iat: now,
        nbf: now,
        exp: now + 600,
        iss: "lrsgate".into(),
        aud: "acme".into(),
    }
}

fn signed(c: &SessionClaims) -> String {
    sign(c, &keys()).unwrap()
}

fn forge(header: serde_json::Value, c: &SessionClaims, sig: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap());
    format!("{h}.{p}.{sig}")
}

#[test]
fn verification_rules() {
    let other_tenant_keys = TenantKeys::hs256("other", b"another-secret-another-secret-xx", "lrsgate", 30);
    let mut expired = claims();
    expired.exp = expired.iat - 120;
    let mut within_skew = claims();
    within_skew.exp = within_skew.iat - 10;
    let mut future = claims();
    future.nbf += 3600;
    let mut other_aud = claims();
    other_aud.aud = "other".into();
    let mut other_tenant_id = claims();
    other_tenant_id.tenant_id = "other".into();
    let mut other_iss = claims();
    other_iss.iss = "someone".into();
    let mut unknown_scope = claims();
    unknown_scope.permissions.read = "all".into();
    let mut two_ifis = claims();
    two_ifis.actor = json!({"mbox": "mailto:a@x", "openid": "https://id/a"});
    let hs512 =
        jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
    let good = signed(&claims());
    let tampered = {
        let mut c = claims();
        c.actor = json!({"mbox": "mailto:someone-else@x"});
        let sig = good.rsplit('.').next().unwrap();
        forge(json!({"alg": "HS256", "typ": "JWT"}), &c, sig)
    };

    let table: Vec<(&str, String, Result<(), TokenError>)> = vec![
        ("valid_token_is_accepted", good.clone(), Ok(())),
        ("expired_token_is_refused", signed(&expired), Err(TokenError::Expired)),
        ("expiry_within_clock_skew_is_accepted", signed(&within_skew), Ok(())),
        ("token_not_yet_valid_is_refused", signed(&future), Err(TokenError::NotYetValid)),
        ("another_tenants_audience_is_refused", signed(&other_aud), Err(TokenError::WrongTenant)),
        ("another_tenant_id_is_refused", signed(&other_tenant_id), Err(TokenError::WrongTenant)),
        (
            "another_tenants_key_is_refused",
            sign(&claims(), &other_tenant_keys).unwrap(),
            Err(TokenError::InvalidSignature),
        ),
        ("another_issuer_is_refused", signed(&other_iss), Err(TokenError::WrongIssuer)),
        ("tampered_payload_is_refused", tampered, Err(TokenError::InvalidSignature)),
        ("alg_none_is_refused", forge(json!({"alg": "none"}), &claims(), ""), Err(TokenError::AlgorithmRefused)),
        ("alg_hs512_is_refused", hs512, Err(TokenError::AlgorithmRefused)),
        ("alg_rs256_is_refused", forge(json!({"alg": "RS256"}), &claims(), "c2ln"), Err(TokenError::AlgorithmRefused)),
        ("unknown_scope_is_refused", signed(&unknown_scope), Err(TokenError::BadPayload)),
        ("actor_with_two_ifis_is_refused", signed(&two_ifis), Err(TokenError::BadPayload)),
        ("two_segments_are_malformed", "a.b".into(), Err(TokenError::Malformed)),
        ("four_segments_are_malformed", format!("{good}.x"), Err(TokenError::Malformed)),
        ("non_base64_is_malformed", "!!.??.##".into(), Err(TokenError::Malformed)),
    ];
    for (rule, token, want) in table {
        assert_eq!(verify(&token, "acme", &keys(), &Default::default()).map(|_| ()), want, "{rule}");
    }
}

#[test]
fn claims_with_an_unknown_field_are_not_a_session() {
    let mut value = serde_json::to_value(claims()).unwrap();
    value["admin"] = json!(true);
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &value, &EncodingKey::from_secret(SECRET)).unwrap();
    assert_eq!(verify(&token, "acme", &keys(), &Default::default()).map(|_| ()), Err(TokenError::BadPayload));
}

#[test]
fn authorization_header_rules() {
    type Row<'a> = (&'a str, Option<&'a [u8]>, Result<&'a str, TokenError>);
    let table: Vec<Row> = vec![
        ("bearer_is_accepted", Some(b"Bearer abc.def.ghi"), Ok("abc.def.ghi")),
        ("basic_as_cmi5_sends_it_is_accepted", Some(b"Basic abc.def.ghi"), Ok("abc.def.ghi")),
        ("scheme_is_case_insensitive", Some(b"bEaReR abc.def.ghi"), Ok("abc.def.ghi")),
        ("missing_header_is_missing", None, Err(TokenError::Missing)),
        ("empty_credentials_are_missing", Some(b"Bearer "), Err(TokenError::Missing)),
        ("other_scheme_is_malformed", Some(b"Digest abc"), Err(TokenError::Malformed)),
        ("no_scheme_is_malformed", Some(b"abc.def.ghi"), Err(TokenError::Malformed)),
    ];
    for (rule, header, want) in table {
        assert_eq!(token_from_authorization(header), want, "{rule}");
    }
}

#[test]
fn the_verification_cache_answers_only_for_the_exact_token_and_still_checks_expiry() {
    use super::verify::VerifyCache;
    let cache = VerifyCache::default();
    let courses = crate::policy::CourseCatalog::new();
    let now = jsonwebtoken::get_current_timestamp();
    let token = signed(&claims());
    let first = cache.verify(&token, "acme", &keys(), &courses, now).unwrap();
    let again = cache.verify(&token, "acme", &keys(), &courses, now).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "the second call is answered from the cache");
    // Expiry is still checked on a hit: past exp + leeway (30 s) the cached token is refused.
    let exp = first.claims.exp;
    assert!(cache.verify(&token, "acme", &keys(), &courses, exp + 30).is_ok(), "within the leeway");
    assert_eq!(cache.verify(&token, "acme", &keys(), &courses, exp + 31).unwrap_err(), TokenError::Expired);
    // A token that differs by one byte is not a hit: it is verified, and refused.
    let mut bent = token.clone();
    let last = bent.pop().unwrap();
    bent.push(if last == 'A' { 'B' } else { 'A' });
    assert!(cache.verify(&bent, "acme", &keys(), &courses, now).is_err());
    // Another tenant's snapshot has its own cache: nothing is shared.
    let other = VerifyCache::default();
    let other_keys = TenantKeys::hs256("other", b"another-secret-another-secret-xx", "lrsgate", 30);
    assert_eq!(other.verify(&token, "other", &other_keys, &courses, now).unwrap_err(), TokenError::WrongTenant);
}
