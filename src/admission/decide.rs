//! The resource × method × scope judgement of an authenticated xAPI request.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::Method;

use super::front::{header_fields, RequestView};
use super::reads::ReadKind;
use crate::auth::cursor::CursorError;
use crate::auth::verify::Verified;
use crate::denial::Denial;
use crate::policy::documents::{
    self, Access, ACTIVITIES_PARAMS, ACTIVITY_PROFILE_PARAMS, AGENTS_PARAMS, AGENT_PROFILE_PARAMS, STATE_PARAMS,
};
use crate::policy::{self, Grant, LaunchMode, PolicyDenial};
use crate::request_id::RequestId;
use crate::tenant::Tenant;
use crate::upstream::forward::ForwardRequest;
use crate::xapi::alternate::{AlternateMethod, AlternateRequest};
use crate::xapi::headers::{ForwardHeaders, Framing};
use crate::xapi::media_type::{self, StatementBody};
use crate::xapi::multipart;
use crate::xapi::query::{self, STATEMENT_GET_PARAMS};
use crate::xapi::route::Resource;
use crate::xapi::statement::{parse_body, Statement};

/// The request as it is judged: the client's own, or the normal form of an Alternate Request
/// Syntax request (its method, query, headers and `content` decoded from the form).
#[derive(Debug, Clone)]
pub struct Judged<'a> {
    pub method: Method,
    pub resource: Resource,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a [u8]>,
    /// The request carries a body (judged well framed already).
    pub has_body: bool,
    /// The client headers the LRS receives, checked (read once: [`forward_headers`]).
    pub headers: &'a ForwardHeaders,
    pub request_id: RequestId,
}

/// The client headers the LRS receives: the request's, and an Alternate Request Syntax form's
/// header fields, checked.
pub fn forward_headers(view: &RequestView<'_>, alternate: Option<&AlternateRequest>) -> Result<ForwardHeaders, Denial> {
    let form_fields = alternate.into_iter().flat_map(|a| a.headers.iter().map(|(n, v)| (*n, v.as_bytes())));
    ForwardHeaders::read(header_fields(view.headers).chain(form_fields)).map_err(Denial::Header)
}

impl<'a> Judged<'a> {
    /// The judged form of `view`: itself, or the decoded Alternate Request Syntax `alternate`.
    pub fn new(
        view: &RequestView<'a>,
        resource: Resource,
        framing: Framing,
        alternate: Option<&'a AlternateRequest>,
        headers: &'a ForwardHeaders,
    ) -> Judged<'a> {
        match alternate {
            Some(a) => Judged {
                method: match a.method {
                    AlternateMethod::Get => Method::GET,
                    AlternateMethod::Put => Method::PUT,
                    AlternateMethod::Post => Method::POST,
                    AlternateMethod::Delete => Method::DELETE,
                },
                resource,
                path: view.path,
                query: Some(a.query.as_str()),
                content_type: a.header("Content-Type").map(str::as_bytes),
                has_body: !a.content.is_empty(),
                headers,
                request_id: view.request_id,
            },
            None => Judged {
                method: view.method.clone(),
                resource,
                path: view.path,
                query: view.query,
                content_type: view.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
                has_body: framing.has_body(),
                headers,
                request_id: view.request_id,
            },
        }
    }

    fn refuse_body(&self) -> Result<(), Denial> {
        if self.has_body {
            return Err(Denial::UnexpectedBody);
        }
        Ok(())
    }
}

/// What judging concluded.
#[derive(Debug)]
pub enum Step {
    /// The route needs the body, up to `limit` bytes; everything that could be refused without
    /// it was. Read it and decide again with it.
    ReadBody {
        limit: usize,
    },
    Admit(Box<Admitted>),
}

/// An admitted request: exactly what the LRS receives, and what its answer is judged by.
#[derive(Debug)]
pub struct Admitted {
    pub forward: ForwardRequest,
    /// The judged body, sent byte for byte.
    pub body: Option<Bytes>,
    /// A statement read: what the LRS returns is judged before the client sees any of it.
    pub read: Option<JudgedRead>,
    /// A cmi5 launch's statement write, in its launch mode: the session progress these
    /// statements make is reserved before forwarding, and kept once the LRS stored them.
    pub progress: Option<(LaunchMode, Vec<Statement>)>,
}

/// How the answer to an admitted statement read is judged.
#[derive(Debug, Clone)]
pub struct JudgedRead {
    pub grant: Grant,
    pub kind: ReadKind,
    /// A `more` continuation: the LRS's own path and query, opened from the cursor.
    pub more: Option<String>,
}

/// Judge `judged` for the verified token; `body` is `None` until [`Step::ReadBody`] asked for it.
pub fn decide(judged: &Judged<'_>, body: Option<&Bytes>, tenant: &Tenant, verified: &Verified) -> Result<Step, Denial> {
    let grant = &verified.grant;
    let rules = &tenant.rules;
    let raw_query = judged.query;
    let admit = |query: Option<String>, content_type: Option<String>, body: Option<Bytes>| Admitted {
        forward: ForwardRequest {
            method: judged.method.clone(),
            resource: judged.resource,
            query,
            headers: judged.headers.clone(),
            content_type,
            request_id: judged.request_id,
        },
        body,
        read: None,
        progress: None,
    };
    let admitted = match (judged.resource, &judged.method) {
        (Resource::Statements, &Method::GET | &Method::HEAD) => {
            let params = query::parse(raw_query, STATEMENT_GET_PARAMS).map_err(Denial::Query)?;
            let (kind, query) = if params.iter().any(|p| p.name == "statementId" || p.name == "voidedStatementId") {
                (ReadKind::Single, policy::statements::check_single_read(grant, &params).map_err(Denial::Policy)?)
            } else {
                (ReadKind::List, policy::statements::check_read(grant, &params).map_err(Denial::Policy)?)
            };
            judged.refuse_body()?;
            // What the LRS returns is judged too: the forced filters are not enough (a
            // statement targeting the learner's statements matches them, whoever wrote it).
            let mut admitted = admit(Some(query), None, None);
            admitted.read = Some(JudgedRead { grant: grant.clone(), kind, more: None });
            admitted
        }
        (Resource::Statements, &Method::POST) => {
            query::parse(raw_query, &[]).map_err(Denial::Query)?;
            let format = statement_format(judged)?;
            let Some(body) = body else { return Ok(Step::ReadBody { limit: tenant.max_body_bytes }) };
            let statements = judge_statements(grant, tenant, &format, body, None)?;
            let mut admitted = admit(None, Some(format.content_type()), Some(body.clone()));
            admitted.progress = statements;
            admitted
        }
        (Resource::Statements, &Method::PUT) => {
            let params = query::parse(raw_query, &["statementId"]).map_err(Denial::Query)?;
            let id = params.first().ok_or(Denial::Policy(PolicyDenial::MissingParameter("statementId")))?;
            let format = statement_format(judged)?;
            let Some(body) = body else { return Ok(Step::ReadBody { limit: tenant.max_body_bytes }) };
            let statements = judge_statements(grant, tenant, &format, body, Some(id.value.as_ref()))?;
            let mut query = query::QueryBuilder::new();
            query.push_all(&params);
            let mut admitted = admit(Some(query.finish()), Some(format.content_type()), Some(body.clone()));
            admitted.progress = statements;
            admitted
        }
        (Resource::Statements, _) => return Err(Denial::MethodNotAllowed),
        (Resource::ActivitiesState | Resource::AgentsProfile, method) => {
            let access = access_of(method)?;
            let query = if judged.resource == Resource::ActivitiesState {
                let params = query::parse(raw_query, STATE_PARAMS).map_err(Denial::Query)?;
                documents::check_state(grant, access, &params)
            } else {
                let params = query::parse(raw_query, AGENT_PROFILE_PARAMS).map_err(Denial::Query)?;
                documents::check_agent_profile(grant, rules, access, &params)
            };
            let query = Some(query.map_err(Denial::Policy)?);
            if access != Access::Write {
                judged.refuse_body()?;
                admit(query, None, None)
            } else {
                // Documents are of any type (Comm §2.2): the client's Content-Type is parsed and
                // written again, never forwarded as sent; JSON only in UTF-8.
                let content_type =
                    media_type::document_content_type(judged.content_type).map_err(Denial::ContentType)?;
                let Some(body) = body else { return Ok(Step::ReadBody { limit: tenant.max_body_bytes }) };
                admit(query, content_type, Some(body.clone()))
            }
        }
        (Resource::ActivitiesProfile, method) => {
            let access = access_of(method)?;
            let params = query::parse(raw_query, ACTIVITY_PROFILE_PARAMS).map_err(Denial::Query)?;
            let query = documents::check_activity_profile(grant, rules, access, &params).map_err(Denial::Policy)?;
            judged.refuse_body()?;
            admit(Some(query), None, None)
        }
        (Resource::Activities | Resource::Agents, &Method::GET | &Method::HEAD) => {
            let query = if judged.resource == Resource::Activities {
                documents::check_activities(grant, &query::parse(raw_query, ACTIVITIES_PARAMS).map_err(Denial::Query)?)
            } else {
                documents::check_agents(grant, &query::parse(raw_query, AGENTS_PARAMS).map_err(Denial::Query)?)
            };
            let query = Some(query.map_err(Denial::Policy)?);
            judged.refuse_body()?;
            admit(query, None, None)
        }
        (Resource::Activities | Resource::Agents, _) => return Err(Denial::MethodNotAllowed),
        (Resource::StatementsMore, &Method::GET | &Method::HEAD) => {
            query::parse(raw_query, &[]).map_err(Denial::Query)?;
            let sealed = judged.path.split_once("statements/more/").map_or("", |(_, c)| c);
            let more = tenant.keys.cursor.open_for(sealed, &verified.claims.jti).map_err(|e| match e {
                CursorError::Invalid => Denial::MoreInvalid,
                CursorError::OtherToken => Denial::MoreOtherToken,
            })?;
            grant.usable_scope(policy::Direction::Read).map_err(Denial::Policy)?;
            judged.refuse_body()?;
            let mut admitted = admit(None, None, None);
            admitted.read = Some(JudgedRead { grant: grant.clone(), kind: ReadKind::List, more: Some(more) });
            admitted
        }
        (Resource::StatementsMore, _) => return Err(Denial::MethodNotAllowed),
        // `/about` is answered before any credential (`front`).
        (Resource::About, _) => return Err(Denial::MethodNotAllowed),
    };
    Ok(Step::Admit(Box::new(admitted)))
}

fn access_of(method: &Method) -> Result<Access, Denial> {
    match *method {
        Method::GET | Method::HEAD => Ok(Access::Read),
        Method::PUT | Method::POST => Ok(Access::Write),
        Method::DELETE => Ok(Access::Delete),
        _ => Err(Denial::MethodNotAllowed),
    }
}

/// How a statement write's body is framed (from which lrsgate writes the Content-Type).
fn statement_format(judged: &Judged<'_>) -> Result<StatementBody, Denial> {
    media_type::statement_body(judged.content_type.unwrap_or_default()).map_err(Denial::ContentType)
}

/// Parse and judge a statement write body. For a cmi5 launch under the tenant's session rules,
/// its launch mode and the statements whose progress must be reserved.
fn judge_statements(
    grant: &Grant,
    tenant: &Tenant,
    format: &StatementBody,
    body: &Bytes,
    put_id: Option<&str>,
) -> Result<Option<(LaunchMode, Vec<Statement>)>, Denial> {
    // With attachments, the statements are the first part; the body is forwarded whole.
    let json = match format {
        StatementBody::Multipart { boundary } => {
            multipart::statement_part(body, boundary).map_err(Denial::Multipart)?
        }
        StatementBody::Json => &body[..],
    };
    let statements = parse_body(json).map_err(Denial::Body)?;
    if let Some(id) = put_id {
        let is_array = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        policy::statements::check_put_id(id, &statements, is_array).map_err(Denial::Policy)?;
    }
    policy::statements::check_write(grant, &tenant.rules, &statements).map_err(Denial::Write)?;
    Ok(grant.launch_mode.filter(|_| tenant.rules.cmi5_session_rules).map(|mode| (mode, statements)))
}

#[cfg(test)]
mod tests {
    //! The dispatch as a table: every resource × method with the default scope, then every
    //! scope in each direction on each resource's reads and writes.

    use super::*;
    use crate::auth::claims::{Permissions, SessionClaims};
    use crate::policy::grant::{test_grant, TEST_SESSION_ID};
    use crate::policy::Scope;

    const ACTIVITY: &str = "https://lms.example/au/1";
    const REGISTRATION: &str = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11";
    const AGENT: &str =
        "%7B%22account%22%3A%7B%22homePage%22%3A%22https%3A%2F%2Flms.example%22%2C%22name%22%3A%22learner-1%22%7D%7D";
    const STATEMENT_ID: &str = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee";

    fn tenant() -> Tenant {
        Tenant::for_tests("acme", "acme.test")
    }

    fn verified(write: Scope, read: Scope) -> Verified {
        let grant = Grant { write, read, ..test_grant(ACTIVITY) };
        let claims = SessionClaims {
            tenant_id: "acme".into(),
            actor: serde_json::json!({"account": {"homePage": "https://lms.example", "name": "learner-1"}}),
            registration: REGISTRATION.into(),
            activity_id: ACTIVITY.into(),
            course_id: None,
            permissions: Permissions { write: write.as_str().into(), read: read.as_str().into() },
            group: None,
            session_id: TEST_SESSION_ID.into(),
            publisher_id: None,
            course_activities: Vec::new(),
            launch_mode: None,
            jti: "jti-1".into(),
            iat: 0,
            nbf: 0,
            exp: u64::MAX,
            iss: "lrsgate".into(),
            aud: "acme".into(),
        };
        Verified { claims, grant }
    }

    fn statement(id: &str) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "id": id,
                "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced", "display": {"en-US": "experienced"}},
                "object": {"objectType": "Activity", "id": ACTIVITY},
                "context": {
                    "registration": REGISTRATION,
                    "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": TEST_SESSION_ID}
                }
            })
            .to_string(),
        )
    }

    /// What a row expects.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Want {
        /// Admitted with no body and nothing to judge on the way back.
        Forward,
        /// Admitted; the LRS's answer is judged (statement reads).
        Judge,
        /// The body is asked for; with it, admitted carrying it byte for byte.
        Body,
        /// Refused with this status (before any body for a document, after it for statements).
        Refused(u16),
    }
    use Want::*;

    struct Row {
        resource: Resource,
        method: Method,
        path: String,
        query: Option<String>,
        content_type: Option<&'static str>,
        body: Option<Bytes>,
    }

    fn row(resource: Resource, method: Method, query: &str) -> Row {
        let path = match resource {
            Resource::StatementsMore => "/xapi/statements/more/sealed".to_owned(),
            r => format!("/xapi/{}", r.upstream_suffix()),
        };
        let query = (!query.is_empty()).then(|| query.to_owned());
        Row { resource, method, path, query, content_type: None, body: None }
    }

    fn with_body(mut r: Row, content_type: &'static str, body: Bytes) -> Row {
        r.content_type = Some(content_type);
        r.body = Some(body);
        r
    }

    /// Runs `decide` the way the edge does: once without the body, then with it if asked.
    fn outcome(r: &Row, tenant: &Tenant, verified: &Verified) -> Result<Want, u16> {
        let judged = Judged {
            method: r.method.clone(),
            resource: r.resource,
            path: &r.path,
            query: r.query.as_deref(),
            content_type: r.content_type.map(str::as_bytes),
            has_body: r.body.is_some(),
            headers: &ForwardHeaders::default(),
            request_id: RequestId::next(),
        };
        let refused = |d: Denial| d.status_and_code().0;
        match decide(&judged, None, tenant, verified).map_err(refused)? {
            Step::Admit(a) => {
                assert!(a.body.is_none(), "admitted a body it never asked for");
                assert_eq!(a.forward.method, r.method);
                assert_eq!(a.forward.resource, r.resource);
                Ok(if a.read.is_some() { Judge } else { Forward })
            }
            Step::ReadBody { limit } => {
                assert_eq!(limit, tenant.max_body_bytes);
                let body = r.body.clone().expect("asked for a body the request does not have");
                match decide(&judged, Some(&body), tenant, verified).map_err(refused)? {
                    Step::Admit(a) => {
                        assert_eq!(a.body.as_ref(), Some(&body), "the judged body is forwarded as sent");
                        Ok(Body)
                    }
                    Step::ReadBody { .. } => panic!("asked for the body twice"),
                }
            }
        }
    }

    fn check(rows: &[(Row, Want)], tenant: &Tenant, verified: &Verified, label: &str) {
        for (r, want) in rows {
            let got = outcome(r, tenant, verified).unwrap_or_else(Refused);
            assert_eq!(got, *want, "{label}: {} {}?{}", r.method, r.path, r.query.as_deref().unwrap_or(""));
        }
    }

    fn state_query() -> String {
        format!("activityId={}&agent={AGENT}&registration={REGISTRATION}&stateId=s1", urlencode(ACTIVITY))
    }

    fn urlencode(s: &str) -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    /// Every resource × method with the default scope, and the rules that need no scope.
    #[test]
    fn every_resource_and_method_with_the_default_scope() {
        let tenant = tenant();
        let verified = verified(Scope::ActorActivityRegistration, Scope::ActorActivityRegistration);
        let list = format!("agent={AGENT}&activity={}&registration={REGISTRATION}", urlencode(ACTIVITY));
        let state = state_query();
        let activity_profile = format!("activityId={}&profileId=p1", urlencode(ACTIVITY));
        let agent_profile = format!("agent={AGENT}&profileId=p1");
        let activities = format!("activityId={}", urlencode(ACTIVITY));
        let agents = format!("agent={AGENT}");
        let json = "application/json";
        let doc = || Bytes::from_static(b"{\"x\":1}");
        let sealed = tenant.keys.cursor.seal("jti-1", "/xapi/statements?limit=10&more=2");
        let mut more = row(Resource::StatementsMore, Method::GET, "");
        more.path = format!("/xapi/statements/more/{sealed}");
        let mut more_head = row(Resource::StatementsMore, Method::HEAD, "");
        more_head.path = more.path.clone();
        let mut other_tokens = row(Resource::StatementsMore, Method::GET, "");
        other_tokens.path = format!("/xapi/statements/more/{}", tenant.keys.cursor.seal("jti-2", "/xapi/statements"));
        use Resource::*;
        let rows = vec![
            // About is answered before any credential; nothing reaches `decide` for it.
            (row(About, Method::GET, ""), Refused(405)),
            (row(Statements, Method::GET, &list), Judge),
            (row(Statements, Method::HEAD, &list), Judge),
            (row(Statements, Method::GET, &format!("statementId={STATEMENT_ID}")), Judge),
            (row(Statements, Method::GET, &format!("voidedStatementId={STATEMENT_ID}")), Judge),
            (row(Statements, Method::GET, "nosuch=1"), Refused(400)),
            (with_body(row(Statements, Method::GET, &list), json, doc()), Refused(400)),
            (with_body(row(Statements, Method::POST, ""), json, statement(STATEMENT_ID)), Body),
            (with_body(row(Statements, Method::POST, "statementId=x"), json, statement(STATEMENT_ID)), Refused(400)),
            (with_body(row(Statements, Method::POST, ""), "text/plain", statement(STATEMENT_ID)), Refused(400)),
            (with_body(row(Statements, Method::POST, ""), json, Bytes::from_static(b"{")), Refused(400)),
            (
                with_body(
                    row(Statements, Method::PUT, &format!("statementId={STATEMENT_ID}")),
                    json,
                    statement(STATEMENT_ID),
                ),
                Body,
            ),
            (
                with_body(
                    row(Statements, Method::PUT, &format!("statementId={STATEMENT_ID}")),
                    json,
                    statement("0b1f7c4e-08ad-4a9f-9c6c-1d0e8c7a5b21"),
                ),
                Refused(400),
            ),
            (with_body(row(Statements, Method::PUT, ""), json, statement(STATEMENT_ID)), Refused(400)),
            (row(Statements, Method::DELETE, ""), Refused(405)),
            (row(Statements, Method::PATCH, ""), Refused(405)),
            (more, Judge),
            (more_head, Judge),
            (row(StatementsMore, Method::GET, ""), Refused(400)),
            (other_tokens, Refused(403)),
            (row(StatementsMore, Method::POST, ""), Refused(405)),
            (row(ActivitiesState, Method::GET, &state), Forward),
            (row(ActivitiesState, Method::HEAD, &state), Forward),
            (with_body(row(ActivitiesState, Method::PUT, &state), json, doc()), Body),
            (with_body(row(ActivitiesState, Method::POST, &state), json, doc()), Body),
            (
                with_body(row(ActivitiesState, Method::PUT, &state), "application/json; charset=latin1", doc()),
                Refused(415),
            ),
            (row(ActivitiesState, Method::DELETE, &state), Forward),
            (with_body(row(ActivitiesState, Method::GET, &state), json, doc()), Refused(400)),
            (row(ActivitiesState, Method::PATCH, &state), Refused(405)),
            (row(ActivitiesProfile, Method::GET, &activity_profile), Forward),
            (with_body(row(ActivitiesProfile, Method::PUT, &activity_profile), json, doc()), Refused(403)),
            (row(ActivitiesProfile, Method::DELETE, &activity_profile), Refused(403)),
            (row(ActivitiesProfile, Method::PATCH, &activity_profile), Refused(405)),
            (row(Activities, Method::GET, &activities), Forward),
            (row(Activities, Method::HEAD, &activities), Forward),
            (row(Activities, Method::POST, &activities), Refused(405)),
            (row(AgentsProfile, Method::GET, &agent_profile), Forward),
            (with_body(row(AgentsProfile, Method::PUT, &agent_profile), json, doc()), Refused(403)),
            (row(AgentsProfile, Method::DELETE, &agent_profile), Refused(403)),
            (row(AgentsProfile, Method::OPTIONS, &agent_profile), Refused(405)),
            (row(Agents, Method::GET, &agents), Forward),
            (row(Agents, Method::GET, ""), Refused(400)),
            (row(Agents, Method::PUT, &agents), Refused(405)),
        ];
        check(&rows, &tenant, &verified, "default scope");
    }

    /// A direction whose scope is `false` refuses every request in it on every resource; every
    /// other scope reaches the policy and is judged there (its own tables).
    #[test]
    fn every_scope_on_each_resources_reads_and_writes() {
        let tenant = tenant();
        let state = state_query();
        let list = format!("agent={AGENT}&activity={}&registration={REGISTRATION}", urlencode(ACTIVITY));
        let json = "application/json";
        let reads = || {
            vec![
                row(Resource::Statements, Method::GET, &list),
                row(Resource::Statements, Method::GET, &format!("statementId={STATEMENT_ID}")),
                row(Resource::ActivitiesState, Method::GET, &state),
                row(
                    Resource::ActivitiesProfile,
                    Method::GET,
                    &format!("activityId={}&profileId=p", urlencode(ACTIVITY)),
                ),
                row(Resource::Activities, Method::GET, &format!("activityId={}", urlencode(ACTIVITY))),
                row(Resource::AgentsProfile, Method::GET, &format!("agent={AGENT}&profileId=p")),
                row(Resource::Agents, Method::GET, &format!("agent={AGENT}")),
            ]
        };
        let writes = || {
            vec![
                with_body(row(Resource::Statements, Method::POST, ""), json, statement(STATEMENT_ID)),
                with_body(row(Resource::ActivitiesState, Method::PUT, &state), json, Bytes::from_static(b"{}")),
                row(Resource::ActivitiesState, Method::DELETE, &state),
            ]
        };
        for scope in Scope::ALL {
            let as_read = verified(Scope::ActorActivityRegistration, scope);
            let as_write = verified(scope, Scope::ActorActivityRegistration);
            for (rows, verified, direction) in [(reads(), &as_read, "read"), (writes(), &as_write, "write")] {
                for r in &rows {
                    let got = outcome(r, &tenant, verified).unwrap_or_else(Refused);
                    let label = format!("{direction} scope {scope}: {} {}", r.method, r.path);
                    if scope == Scope::Nothing {
                        assert_eq!(got, Refused(403), "{label}");
                    } else {
                        // Judged by the policy for that scope: admitted, or refused as out of
                        // scope, never anything else (a malformed request, an internal error).
                        assert!(matches!(got, Forward | Judge | Body | Refused(403)), "{label}: {got:?}");
                    }
                }
            }
        }
        // The default scope admits every one of them, so the rows above can fail.
        let default = verified(Scope::ActorActivityRegistration, Scope::ActorActivityRegistration);
        for r in reads().iter().chain(writes().iter()) {
            let got = outcome(r, &tenant, &default).unwrap_or_else(Refused);
            assert!(matches!(got, Forward | Judge | Body), "{} {}: {got:?}", r.method, r.path);
        }
    }
}
