//! Memory per unredeemed cmi5 launch in file mode's session store: 100,000 fetch codes issued
//! and never redeemed, live heap bytes measured while they can still be redeemed and after
//! their fetch TTL (tombstones only). `cargo bench --bench fetch_memory` (LAUNCHES=… to change).

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Counting allocations needs a GlobalAlloc wrapper, an unsafe trait: the one place it is allowed.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use lrsgate::auth::claims::{Permissions, SessionClaims};
use lrsgate::session::store::{FetchCode, FetchTicket, MemorySessions, SessionStore};

/// The binary's allocator, counting the bytes live on the heap (resident set size would not
/// show memory freed back to the allocator, which keeps its pages).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed) as u64
}

fn claims(i: usize) -> SessionClaims {
    SessionClaims {
        tenant_id: "acme".into(),
        actor: serde_json::json!({"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": format!("learner-{i}")}}),
        registration: uuid::Uuid::new_v4().to_string(),
        activity_id: "https://lms.example/course/1/au/1".into(),
        course_id: None,
        permissions: Permissions {
            write: "actor-activity-registration-scoped".into(),
            read: "actor-activity-registration-scoped".into(),
        },
        group: None,
        session_id: uuid::Uuid::new_v4().to_string(),
        publisher_id: Some("https://publisher.example/au/1".into()),
        course_activities: Vec::new(),
        launch_mode: Some("Normal".into()),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: 1_000,
        nbf: 1_000,
        exp: 1_000 + 28_800,
        iss: "lrsgate".into(),
        aud: "acme".into(),
    }
}

fn main() {
    let launches: usize = std::env::var("LAUNCHES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = MemorySessions::new(0);
    let before = heap_bytes();
    for i in 0..launches {
        let ticket = FetchTicket::new("acme".into(), claims(i), 1_300);
        runtime.block_on(store.put_fetch(&FetchCode::generate(), ticket, 1_000 + 28_800)).unwrap();
    }
    let live = heap_bytes().saturating_sub(before);
    // Past the fetch TTL (300 s), well before the sessions expire: tombstones only.
    store.sweep(1_301);
    // papaya frees replaced entries once no reader can still hold them; one more sweep lets it.
    store.sweep(1_302);
    let tombstoned = heap_bytes().saturating_sub(before);
    println!(
        "{{\"launches\": {launches}, \"heap_live_bytes_per_launch\": {}, \"heap_after_ttl_bytes_per_launch\": {}}}",
        live / launches as u64,
        tombstoned / launches as u64
    );
}
