//! The strict statement parser and the write policy behind it: any bytes, no panic; and what
//! parses is judged without panicking under every scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::policy::statements::{check_write, returned_in_scope};
use lrsgate::policy::{Grant, Scope, TenantRules};
use lrsgate::xapi::agent::Ifi;
use lrsgate::xapi::statement::parse_body;

fuzz_target!(|data: &[u8]| {
    let Ok(statements) = parse_body(data) else { return };
    for scope in Scope::ALL {
        let grant = Grant {
            actor: Ifi::Mbox("mailto:learner@lms.example".into()),
            activity_id: "https://lms.example/au/1".into(),
            registration: uuid::Uuid::nil(),
            session_id: "s-1".into(),
            publisher_id: Some("https://publisher.example/au/1".into()),
            group: Some(Ifi::Mbox("mailto:team@lms.example".into())),
            course: None,
            write: if scope.allows_writes() { scope } else { Scope::Nothing },
            read: scope,
            launch_mode: None,
        };
        let _ = check_write(&grant, &TenantRules::default(), &statements);
        for s in &statements {
            let _ = returned_in_scope(&grant, s);
        }
    }
});
