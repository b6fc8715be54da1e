//! Every refusal lrsgate makes, and the one place that maps each to its HTTP status, stable
//! reason code (also the metric label and log field) and message.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::admin::ops::OpsError;
use crate::auth::verify::TokenError;
use crate::http_io::BodyReadError;
use crate::policy::{PolicyDenial, WriteDenial};
use crate::rate_limit::Limited;
use crate::request_id::RequestId;
use crate::session::store::{EndReason, FetchRefusal};
use crate::token_service::request::TokenRequestError;
use crate::xapi::alternate::AlternateError;
use crate::xapi::headers::HeaderError;
use crate::xapi::media_type::ContentTypeError;
use crate::xapi::multipart::MultipartError;
use crate::xapi::query::QueryError;
use crate::xapi::statement::BodyError;
use crate::xapi::strict_json::JsonError;

/// Which cap on open edge connections a connection is past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    Total,
    PerClient,
}

impl ConnectionLimit {
    pub fn code(self) -> &'static str {
        match self {
            ConnectionLimit::Total => "too_many_connections",
            ConnectionLimit::PerClient => "too_many_connections_per_client",
        }
    }

    /// The label of `lrsgate_edge_connections_refused_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionLimit::Total => "max_connections",
            ConnectionLimit::PerClient => "max_connections_per_client",
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UnknownTenant,
    /// The tenant is suspended: every request refused, tokens included.
    TenantSuspended,
    /// Over TLS, the Host names another tenant than the SNI.
    MisdirectedRequest,
    UnknownRoute,
    /// A path a server could read two ways (encoding, dot segments).
    BadPath,
    MethodNotAllowed,
    Query(QueryError),
    /// A malformed Alternate Request Syntax request.
    Alternate(AlternateError),
    /// The form's `Authorization` differs from the header's.
    AuthorizationConflict,
    /// The tenant refuses the Alternate Request Syntax.
    AlternateSyntaxRefused,
    /// A `more` continuation lrsgate did not issue, or one for another tenant.
    MoreInvalid,
    /// A `more` continuation issued to another token.
    MoreOtherToken,
    Token(TokenError),
    /// The token's session has ended (terminated + grace, the LMS's end, a revocation).
    SessionEnded(EndReason),
    /// A browser request from an `Origin` the tenant does not allow.
    CorsOriginRefused,
    /// A preflight asking for a method or header that is not allowed.
    CorsPreflightRefused,
    /// A cmi5 fetch URL that gave no token: answered 200 with the cmi5 error body (§8.2.3).
    Fetch(FetchRefusal),
    /// cmi5 delivery asked of a tenant without a public origin for fetch URLs.
    DeliveryUnavailable,
    /// The session store could not record what was asked (a shared store's outage).
    StoreUnavailable,
    ApiKeyMissing,
    ApiKeyInvalid,
    AdminKeyMissing,
    AdminKeyInvalid,
    /// An admin operation that failed (not found, conflict, invalid input, database).
    Admin(crate::admin::ops::OpsError),
    Policy(PolicyDenial),
    Write(WriteDenial),
    Body(BodyError),
    /// A malformed `multipart/mixed` statement request.
    Multipart(MultipartError),
    BodyTooLarge {
        limit: usize,
    },
    /// The client's body broke off or was badly framed.
    BodyUnreadable,
    /// The client did not send the whole body in time.
    BodyTimeout,
    /// A body on a request that takes none.
    UnexpectedBody,
    /// A Content-Type lrsgate does not accept for this body, or cannot read in one way.
    ContentType(ContentTypeError),
    /// Framing or forwarded request headers that a server could read another way.
    Header(HeaderError),
    TokenRequest(TokenRequestError),
    /// Over one of the tenant's rate limits.
    RateLimited(crate::rate_limit::Limited),
    /// A connection past the edge's caps on open connections (answered on the raw connection).
    TooManyConnections(ConnectionLimit),
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The LRS answered something that is not what the request asks for.
    UpstreamInvalid,
    Internal,
}

impl Denial {
    /// Status and stable reason code. The only place either is decided.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            Denial::UnknownTenant => (404, "unknown_tenant"),
            Denial::TenantSuspended => (403, "tenant_suspended"),
            Denial::MisdirectedRequest => (421, "misdirected_request"),
            Denial::UnknownRoute => (404, "unknown_route"),
            Denial::BadPath => (400, "bad_path"),
            Denial::MethodNotAllowed => (405, "method_not_allowed"),
            Denial::Query(QueryError::Unknown(_)) => (400, "unknown_parameter"),
            Denial::Query(QueryError::Duplicate(_)) => (400, "duplicate_parameter"),
            Denial::Query(QueryError::Empty(_)) => (400, "empty_parameter"),
            Denial::Query(QueryError::BadEncoding) => (400, "invalid_encoding"),
            Denial::Query(QueryError::TooLong) => (414, "query_too_long"),
            Denial::Alternate(AlternateError::BadMethod) => (400, "invalid_method"),
            Denial::Alternate(AlternateError::ExtraQueryParameter(_)) => (400, "unknown_parameter"),
            Denial::Alternate(AlternateError::DuplicateField(_)) => (400, "duplicate_parameter"),
            Denial::Alternate(AlternateError::BadHeaderValue(_)) => (400, "invalid_header"),
            Denial::Alternate(AlternateError::TooManyFields) => (400, "too_many_fields"),
            Denial::AuthorizationConflict => (401, "authorization_conflict"),
            Denial::AlternateSyntaxRefused => (400, "alternate_syntax_refused"),
            Denial::MoreInvalid => (400, "more_invalid"),
            Denial::MoreOtherToken => (403, "more_other_token"),
            Denial::Token(e) => (
                401,
                match e {
                    TokenError::Missing => "token_missing",
                    TokenError::Malformed => "token_malformed",
                    TokenError::AlgorithmRefused => "token_algorithm_refused",
                    TokenError::InvalidSignature => "token_invalid_signature",
                    TokenError::Expired => "token_expired",
                    TokenError::NotYetValid => "token_not_yet_valid",
                    TokenError::WrongTenant => "token_wrong_tenant",
                    TokenError::WrongIssuer => "token_wrong_issuer",
                    TokenError::BadPayload => "token_bad_payload",
                },
            ),
            Denial::SessionEnded(_) => (401, "session_ended"),
            Denial::CorsOriginRefused => (403, "cors_origin_refused"),
            Denial::CorsPreflightRefused => (403, "cors_preflight_refused"),
            Denial::Fetch(FetchRefusal::UsedOrExpired) => (200, "fetch_used_or_expired"),
            Denial::Fetch(FetchRefusal::Invalid) => (200, "fetch_invalid"),
            Denial::Fetch(FetchRefusal::Internal) => (200, "fetch_internal_error"),
            Denial::DeliveryUnavailable => (400, "delivery_unavailable"),
            Denial::StoreUnavailable => (503, "session_store_unavailable"),
            Denial::AdminKeyMissing => (401, "admin_key_missing"),
            Denial::AdminKeyInvalid => (401, "admin_key_invalid"),
            Denial::Admin(OpsError::NotFound(_)) => (404, "not_found"),
            Denial::Admin(OpsError::Conflict(_)) => (409, "conflict"),
            Denial::Admin(OpsError::Invalid(_)) => (400, "invalid_request"),
            Denial::Admin(OpsError::Database(_)) => (503, "database_unavailable"),
            Denial::ApiKeyMissing => (401, "api_key_missing"),
            Denial::ApiKeyInvalid => (401, "api_key_invalid"),
            Denial::Policy(p) | Denial::Write(WriteDenial { denial: p, .. }) => policy_parts(p),
            Denial::Body(BodyError::Json(JsonError::DuplicateKey(_))) => (400, "duplicate_key"),
            Denial::Body(BodyError::Json(JsonError::Syntax(_))) => (400, "malformed_json"),
            Denial::Body(_) => (400, "invalid_statement"),
            Denial::Multipart(MultipartError::MissingHash(_)) => (400, "attachment_hash_missing"),
            Denial::Multipart(MultipartError::NotBinary(_)) => (400, "attachment_not_binary"),
            Denial::Multipart(MultipartError::FirstPartCharset) => (415, "unsupported_charset"),
            Denial::Multipart(MultipartError::FirstPartEncoding) => (400, "statement_part_encoding"),
            Denial::Multipart(MultipartError::TooManyParts) => (400, "too_many_parts"),
            Denial::Multipart(
                MultipartError::Malformed | MultipartError::BadPartHeader | MultipartError::FirstPartNotJson,
            ) => (400, "malformed_multipart"),
            Denial::BodyTooLarge { .. } => (413, "body_too_large"),
            Denial::BodyUnreadable => (400, "body_unreadable"),
            Denial::BodyTimeout => (408, "body_timeout"),
            Denial::UnexpectedBody => (400, "unexpected_body"),
            Denial::ContentType(e) => match e {
                ContentTypeError::Invalid(_) | ContentTypeError::UnknownParameter(_) => (400, "invalid_content_type"),
                ContentTypeError::Unsupported => (400, "unsupported_content_type"),
                ContentTypeError::Charset => (415, "unsupported_charset"),
                ContentTypeError::Boundary => (400, "invalid_boundary"),
            },
            Denial::Header(e) => match e {
                HeaderError::Version => (400, "invalid_version"),
                HeaderError::Repeated(_) => (400, "repeated_header"),
                HeaderError::Invalid(_) => (400, "invalid_header"),
                HeaderError::ContentLength => (400, "invalid_content_length"),
                HeaderError::TransferEncoding => (400, "invalid_transfer_encoding"),
                HeaderError::ContentEncoding => (415, "unsupported_content_encoding"),
            },
            Denial::TokenRequest(e) => (
                400,
                match e {
                    TokenRequestError::Json(JsonError::DuplicateKey(_)) => "duplicate_key",
                    TokenRequestError::Json(JsonError::Syntax(_)) => "malformed_json",
                    TokenRequestError::Shape(_) => "invalid_request",
                    TokenRequestError::Actor(_) => "invalid_actor",
                    TokenRequestError::Registration => "invalid_registration",
                    TokenRequestError::ActivityId => "invalid_activity_id",
                    TokenRequestError::CourseId => "invalid_course_id",
                    TokenRequestError::UnknownScope(_) => "unknown_scope",
                    TokenRequestError::ReadOnlyScope(_) => "scope_not_writable",
                    TokenRequestError::Group(_) => "invalid_group",
                    TokenRequestError::Ttl => "invalid_ttl",
                    TokenRequestError::SessionId => "invalid_session_id",
                    TokenRequestError::PublisherId => "invalid_publisher_id",
                    TokenRequestError::CourseActivities => "invalid_course_activities",
                    TokenRequestError::ScopeNeeds(_) => "scope_incomplete",
                    TokenRequestError::Delivery => "invalid_delivery",
                    TokenRequestError::LaunchMode => "invalid_launch_mode",
                    TokenRequestError::EndReason => "invalid_reason",
                },
            ),
            Denial::RateLimited(limit) => (
                429,
                match limit {
                    Limited::Tenant => "tenant_rate_limited",
                    Limited::Token => "token_rate_limited",
                    Limited::ApiKey => "api_key_rate_limited",
                },
            ),
            Denial::TooManyConnections(limit) => (503, limit.code()),
            Denial::UpstreamUnavailable => (502, "upstream_unavailable"),
            Denial::UpstreamTimeout => (504, "upstream_timeout"),
            Denial::UpstreamInvalid => (502, "upstream_invalid_response"),
            Denial::Internal => (500, "internal_error"),
        }
    }

    /// The `Retry-After` a refusal carries: the AU may send it again shortly (the shared
    /// session store was away; a rate limit's one-second window turns over).
    pub fn retry_after(&self) -> Option<&'static str> {
        matches!(self, Denial::StoreUnavailable | Denial::RateLimited(_) | Denial::TooManyConnections(_)).then_some("1")
    }

    /// The refusal for a failed body read.
    pub fn from_body_read(e: BodyReadError, limit: usize) -> Denial {
        match e {
            BodyReadError::TooLarge => Denial::BodyTooLarge { limit },
            BodyReadError::TimedOut => Denial::BodyTimeout,
            BodyReadError::Downstream(_) => Denial::BodyUnreadable,
        }
    }

    /// The refusal for a failed exchange with the LRS.
    pub fn from_upstream_error(e: &pingora::Error) -> Denial {
        use pingora::ErrorType::{ConnectTimedout, ReadTimedout, WriteTimedout};
        match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => Denial::UpstreamTimeout,
            _ => Denial::UpstreamUnavailable,
        }
    }

    /// A human explanation. Never contains a token, credential or learner identity.
    pub fn message(&self) -> String {
        match self {
            Denial::UnknownTenant => "no tenant is served at this host".into(),
            Denial::TenantSuspended => "this tenant is suspended".into(),
            Denial::MisdirectedRequest => "the Host names another tenant than the TLS server name".into(),
            Denial::UnknownRoute => "no such xAPI resource".into(),
            Denial::BadPath => "the path has encoded characters, dot segments or empty segments".into(),
            Denial::MethodNotAllowed => "this method is not allowed on this resource".into(),
            Denial::Query(e) => e.to_string(),
            Denial::Alternate(e) => e.to_string(),
            Denial::AuthorizationConflict => "the form's Authorization differs from the header's".into(),
            Denial::AlternateSyntaxRefused => {
                "this LRS does not accept the Alternate Request Syntax (POST ?method=); send the request itself".into()
            }
            Denial::MoreInvalid => "this more link was not issued by lrsgate for this LRS".into(),
            Denial::MoreOtherToken => "this more link belongs to the token that started the query".into(),
            Denial::Token(e) => match e {
                TokenError::Missing => "a session token is required (Authorization: Bearer or Basic)".into(),
                TokenError::Malformed => "the Authorization header does not hold a well-formed token".into(),
                TokenError::AlgorithmRefused => "the token's algorithm is not accepted by this tenant".into(),
                TokenError::InvalidSignature => "the token's signature is not valid".into(),
                TokenError::Expired => "the token has expired".into(),
                TokenError::NotYetValid => "the token is not valid yet".into(),
                TokenError::WrongTenant => "the token was issued for another tenant".into(),
                TokenError::WrongIssuer => "the token was issued by someone else".into(),
                TokenError::BadPayload => "the token's claims are not a valid session".into(),
            },
            Denial::SessionEnded(reason) => match reason {
                EndReason::Terminated => {
                    "the session has ended: the AU sent terminated and the grace period is over".into()
                }
                EndReason::Abandoned => "the session has ended: the LMS abandoned it".into(),
                EndReason::Ended => "the session has ended: the LMS ended it".into(),
                EndReason::Revoked => "the session has been revoked".into(),
            },
            Denial::CorsOriginRefused => "requests from this origin are not allowed for this tenant".into(),
            Denial::CorsPreflightRefused => "the preflight asks for a method or header that is not allowed".into(),
            Denial::Fetch(refusal) => match refusal {
                FetchRefusal::UsedOrExpired => "this fetch URL was already used, or has expired".into(),
                FetchRefusal::Invalid => "this is not a valid fetch URL".into(),
                FetchRefusal::Internal => "the auth-token could not be made".into(),
            },
            Denial::DeliveryUnavailable => {
                "cmi5 delivery needs the tenant's public_origin (the edge's address content uses)".into()
            }
            Denial::StoreUnavailable => "session state could not be recorded; try again".into(),
            Denial::AdminKeyMissing => "an admin key is required (Authorization: Bearer <key>)".into(),
            Denial::AdminKeyInvalid => "the admin key is not valid".into(),
            Denial::Admin(e) => e.to_string(),
            Denial::ApiKeyMissing => "an LMS API key is required (Authorization: Bearer <key>)".into(),
            Denial::ApiKeyInvalid => "the LMS API key is not valid for this tenant".into(),
            Denial::Policy(p) => policy_message(p),
            Denial::Write(w) => format!("statement {}: {}", w.index, policy_message(&w.denial)),
            Denial::Body(e) => e.to_string(),
            Denial::Multipart(e) => e.to_string(),
            Denial::BodyTooLarge { limit } => format!("the request body is larger than {limit} bytes"),
            Denial::BodyUnreadable => "the request body could not be read".into(),
            Denial::BodyTimeout => "the request body did not arrive in time".into(),
            Denial::UnexpectedBody => "this request takes no body".into(),
            Denial::ContentType(e) => e.to_string(),
            Denial::Header(e) => e.to_string(),
            Denial::TokenRequest(e) => e.to_string(),
            Denial::RateLimited(limit) => match limit {
                Limited::Tenant => "this tenant is over its request rate; retry after a second".into(),
                Limited::Token => "this session token is over its request rate; retry after a second".into(),
                Limited::ApiKey => "this API key is over its request rate; retry after a second".into(),
            },
            Denial::TooManyConnections(ConnectionLimit::Total) => {
                "the edge holds as many connections as it takes; retry after a second".into()
            }
            Denial::TooManyConnections(ConnectionLimit::PerClient) => {
                "this client address holds as many connections as one may; retry after a second".into()
            }
            Denial::UpstreamUnavailable => "the LRS could not be reached".into(),
            Denial::UpstreamTimeout => "the LRS did not answer in time".into(),
            Denial::UpstreamInvalid => "the LRS's answer could not be judged".into(),
            Denial::Internal => "internal error".into(),
        }
    }

    /// The JSON error body: `{"error", "message", "request_id"}`, plus `statement_index` for
    /// batch refusals; for a fetch URL the body cmi5 defines, `{"error-code", "error-text"}`
    /// (§8.2.3), with the `request_id` beside them.
    pub fn body(&self, request_id: &RequestId) -> Vec<u8> {
        if let Denial::Fetch(refusal) = self {
            return json!({
                "error-code": refusal.error_code(),
                "error-text": self.message(),
                "request_id": request_id.as_str(),
            })
            .to_string()
            .into_bytes();
        }
        let (_, code) = self.status_and_code();
        let mut value = json!({ "error": code, "message": self.message(), "request_id": request_id.as_str() });
        let index = match self {
            Denial::Write(w) => Some(w.index),
            Denial::Body(BodyError::Statement { index, .. }) => Some(*index),
            _ => None,
        };
        if let (Some(index), Value::Object(obj)) = (index, &mut value) {
            obj.insert("statement_index".into(), json!(index));
        }
        value.to_string().into_bytes()
    }
}

fn policy_parts(p: &PolicyDenial) -> (u16, &'static str) {
    match p {
        PolicyDenial::ScopeDenies => (403, "scope_denies"),
        PolicyDenial::NotSupported(_) => (403, "not_supported"),
        PolicyDenial::CourseUnknown => (403, "course_unknown"),
        PolicyDenial::ActorMismatch => (403, "actor_mismatch"),
        PolicyDenial::ActivityMismatch => (403, "activity_mismatch"),
        PolicyDenial::RegistrationMismatch => (403, "registration_mismatch"),
        PolicyDenial::SessionIdMismatch => (403, "session_id_mismatch"),
        PolicyDenial::PublisherIdMissing => (403, "publisher_id_missing"),
        PolicyDenial::LmsOnlyVerb => (403, "lms_only_verb"),
        PolicyDenial::RelatedNotAllowed(_) => (403, "related_not_allowed"),
        PolicyDenial::VoidingRefused => (403, "voiding_refused"),
        PolicyDenial::AuthorityRefused => (403, "authority_refused"),
        PolicyDenial::QueryOutOfScope(_) => (403, "query_out_of_scope"),
        PolicyDenial::InvalidParameter(_) => (400, "invalid_parameter"),
        PolicyDenial::MissingParameter(_) => (400, "missing_parameter"),
        PolicyDenial::StatementIdMismatch => (400, "statement_id_mismatch"),
        PolicyDenial::NotOneStatement => (400, "not_one_statement"),
        PolicyDenial::LaunchDataReadOnly => (403, "launch_data_read_only"),
        PolicyDenial::BulkDeleteRefused => (403, "bulk_delete_refused"),
        PolicyDenial::ProfileWriteRefused => (403, "profile_write_refused"),
        PolicyDenial::NotOneStatementQuery => (400, "invalid_parameter"),
        PolicyDenial::StatementNotFound => (404, "statement_not_found"),
        PolicyDenial::Cmi5NotInitialized => (403, "cmi5_not_initialized"),
        PolicyDenial::Cmi5AfterTerminated => (403, "cmi5_after_terminated"),
        PolicyDenial::Cmi5VerbRepeated => (403, "cmi5_verb_repeated"),
        PolicyDenial::Cmi5PassedAndFailed => (403, "cmi5_passed_and_failed"),
        PolicyDenial::Cmi5LaunchMode => (403, "cmi5_launch_mode"),
        PolicyDenial::Cmi5VerbUnknown => (403, "cmi5_verb_unknown"),
    }
}

fn policy_message(p: &PolicyDenial) -> String {
    let mut s = String::new();
    let _ = match p {
        PolicyDenial::ScopeDenies => write!(s, "the token's scope allows nothing here"),
        PolicyDenial::NotSupported(what) => write!(s, "{what} is not supported by lrsgate yet"),
        PolicyDenial::CourseUnknown => write!(s, "the course scope needs the course's activities, which are unknown"),
        PolicyDenial::ActorMismatch => write!(s, "the actor is not the token's learner (or team)"),
        PolicyDenial::ActivityMismatch => write!(s, "the object is not an activity of the token's scope"),
        PolicyDenial::RegistrationMismatch => write!(s, "context.registration is missing or not the token's"),
        PolicyDenial::SessionIdMismatch => {
            write!(s, "the cmi5 session id extension (context.extensions) is missing or not the token's session")
        }
        PolicyDenial::PublisherIdMissing => {
            write!(s, "context.contextActivities.grouping must hold the AU's publisher id (cmi5 9.6.2.3)")
        }
        PolicyDenial::LmsOnlyVerb => write!(s, "launched, abandoned, waived and satisfied are sent by the LMS only"),
        PolicyDenial::RelatedNotAllowed(param) => write!(s, "{param}=true is outside the token's read scope"),
        PolicyDenial::VoidingRefused => write!(s, "voiding statements may not be sent with a session token"),
        PolicyDenial::AuthorityRefused => write!(s, "authority is set by the LRS, not the client"),
        PolicyDenial::QueryOutOfScope(param) => write!(s, "the {param} filter is outside the token's scope"),
        PolicyDenial::InvalidParameter(param) => write!(s, "the {param} parameter is malformed"),
        PolicyDenial::MissingParameter(param) => write!(s, "the {param} parameter is required"),
        PolicyDenial::StatementIdMismatch => write!(s, "the body's id differs from the statementId parameter"),
        PolicyDenial::NotOneStatement => write!(s, "PUT stores exactly one statement"),
        PolicyDenial::LaunchDataReadOnly => write!(s, "LMS.LaunchData is written by the LMS only"),
        PolicyDenial::BulkDeleteRefused => write!(s, "a State DELETE must name one stateId"),
        PolicyDenial::ProfileWriteRefused => write!(s, "this profile document may not be written with a session token"),
        PolicyDenial::NotOneStatementQuery => write!(s, "statementId cannot be combined with list filters"),
        PolicyDenial::StatementNotFound => write!(s, "no such statement"),
        PolicyDenial::Cmi5NotInitialized => write!(s, "the session's first statement must be the cmi5 initialized"),
        PolicyDenial::Cmi5AfterTerminated => write!(s, "the session has sent terminated; nothing may follow it"),
        PolicyDenial::Cmi5VerbRepeated => write!(s, "this cmi5-defined verb was already sent in this session"),
        PolicyDenial::Cmi5PassedAndFailed => write!(s, "a session cannot both pass and fail"),
        PolicyDenial::Cmi5LaunchMode => {
            write!(s, "in Browse and Review launch mode only initialized and terminated may be sent")
        }
        PolicyDenial::Cmi5VerbUnknown => write!(s, "the cmi5 category is only for the AU's cmi5 verbs"),
    };
    s
}

/// Write `denial` as our JSON error, its header finished by `finish_header` (CORS). The
/// connection is closed afterwards when the request body was not read, so a refused upload is
/// never drained.
pub async fn write_denial(
    session: &mut pingora::protocols::http::ServerSession,
    denial: &Denial,
    request_id: &RequestId,
    body_unread: bool,
    finish_header: &(dyn Fn(&mut pingora::http::ResponseHeader) + Sync),
) -> pingora::Result<()> {
    let (status, _) = denial.status_and_code();
    crate::http_io::write_json(session, status, denial.body(request_id), request_id, body_unread, finish_header).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_per_status_family_and_bodies_are_json() {
        let samples = [
            Denial::UnknownTenant,
            Denial::Token(TokenError::Expired),
            Denial::Policy(PolicyDenial::ActorMismatch),
            Denial::Write(WriteDenial { index: 3, denial: PolicyDenial::ActivityMismatch }),
            Denial::BodyTooLarge { limit: 10 },
            Denial::SessionEnded(EndReason::Abandoned),
        ];
        for d in samples {
            let v: Value = serde_json::from_slice(&d.body(&RequestId::next())).unwrap();
            assert_eq!(v["error"], d.status_and_code().1);
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        let v: Value = serde_json::from_slice(
            &Denial::Write(WriteDenial { index: 3, denial: PolicyDenial::ActivityMismatch }).body(&RequestId::next()),
        )
        .unwrap();
        assert_eq!(v["statement_index"], 3);
    }

    #[test]
    fn fetch_refusals_are_200_with_the_cmi5_body() {
        for (refusal, code) in
            [(FetchRefusal::UsedOrExpired, "1"), (FetchRefusal::Invalid, "2"), (FetchRefusal::Internal, "3")]
        {
            let d = Denial::Fetch(refusal);
            assert_eq!(d.status_and_code().0, 200);
            let v: Value = serde_json::from_slice(&d.body(&RequestId::next())).unwrap();
            assert_eq!(v["error-code"], code);
            assert!(v["error-text"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(v.get("auth-token").is_none());
        }
    }
}
