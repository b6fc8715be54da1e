#!/usr/bin/env bash
# Quickstart: lrsgate on the embedded default (file mode, no database), in front of the
# STAND-IN LRS (a small recording test server, not a real LRS), with a token issued, a statement
# accepted and one refused. Leaves lrsgate running until Ctrl-C; with --check it asserts the
# results and stops (the test suite runs it that way).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh
lrsgate_install_deps

check=false
[ "${1:-}" = "--check" ] && check=true

cargo build --release --locked --bins
bin=target/release

# The embedded default reads its secrets from the environment (conf/tenants.toml).
random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export LRSGATE_DEMO_LRS_USER=demo-lrs
export LRSGATE_DEMO_LRS_PASSWORD="$(random)"
export LRSGATE_DEMO_SIGNING_SECRET="$(random)"
keys="$($bin/lrsgate apikey new)"
API_KEY="$(echo "$keys" | sed -n 2p | tr -d ' ')"
export LRSGATE_DEMO_API_KEY_HASH="$(echo "$keys" | sed -n 4p | tr -d ' ')"

pids=()
# lrsgate stops at once on SIGINT (SIGTERM would wait out its grace period); the stand-in, started
# in the background with SIGINT ignored by bash, stops on SIGTERM.
out="$(mktemp)"
cleanup() { kill -INT "${pids[1]:-}" 2>/dev/null || true; kill -TERM "${pids[0]:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -f "$out"; }
trap cleanup EXIT

echo "== starting the STAND-IN LRS on 127.0.0.1:9000 (for this demo only)"
$bin/standin-lrs --listen 127.0.0.1:9000 --credential "$LRSGATE_DEMO_LRS_USER:$LRSGATE_DEMO_LRS_PASSWORD" >/dev/null &
pids+=($!)
echo "== starting lrsgate with conf/lrsgate.toml (edge :8080, token service :8081, metrics :9090)"
RUST_LOG=${RUST_LOG:-info} $bin/lrsgate serve -c conf/lrsgate.toml &
pids+=($!)
for _ in $(seq 100); do curl -sf localhost:8080/healthz >/dev/null && curl -sf localhost:8081/healthz >/dev/null && break; sleep 0.1; done

show() { echo; echo "\$ $*" | sed "s/$API_KEY/\$API_KEY/g; s/${TOKEN:-no-token-yet}/\$TOKEN/g"; }

show curl -s -X POST localhost:8081/auth/token -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d '{"actor":{"account":{"homePage":"https://lms.example","name":"learner-1"}},"registration":"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11","activity_id":"https://lms.example/au/1","session_id":"session-1"}'
issued="$(curl -s -X POST localhost:8081/auth/token -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
  -d '{"actor":{"account":{"homePage":"https://lms.example","name":"learner-1"}},"registration":"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11","activity_id":"https://lms.example/au/1","session_id":"session-1"}')"
echo "$issued"
TOKEN="$(echo "$issued" | sed -E 's/.*"token":"([^"]+)".*/\1/')"

statement() { echo "{\"actor\":{\"account\":{\"homePage\":\"https://lms.example\",\"name\":\"$1\"}},\"verb\":{\"id\":\"http://adlnet.gov/expapi/verbs/completed\"},\"object\":{\"id\":\"https://lms.example/au/1\"},\"context\":{\"registration\":\"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11\",\"extensions\":{\"https://w3id.org/xapi/cmi5/context/extensions/sessionid\":\"session-1\"}}}"; }

post() {
  curl -s -o $out -w '%{http_code}' -X POST localhost:8080/xapi/statements \
    -H "Authorization: Basic $TOKEN" -H 'X-Experience-API-Version: 1.0.3' -H 'Content-Type: application/json' -d "$1"
}

echo; echo "== a statement by the token's learner is accepted and reaches the LRS"
show curl -s -X POST localhost:8080/xapi/statements -H "Authorization: Basic $TOKEN" -H 'X-Experience-API-Version: 1.0.3' -H 'Content-Type: application/json' -d "'$(statement learner-1)'"
accepted="$(post "$(statement learner-1)")"; echo "HTTP $accepted $(cat $out)"

echo; echo "== the same token writing as another learner is refused at the edge"
show curl -s -X POST localhost:8080/xapi/statements -H "Authorization: Basic $TOKEN" -H 'X-Experience-API-Version: 1.0.3' -H 'Content-Type: application/json' -d "'$(statement learner-2)'"
refused="$(post "$(statement learner-2)")"; echo "HTTP $refused $(cat $out)"

echo; echo "== a read sees only the token's learner, activity and registration"
show curl -s "localhost:8080/xapi/statements?limit=10" -H "Authorization: Bearer $TOKEN"
read_body="$(curl -s "localhost:8080/xapi/statements?limit=10" -H "Authorization: Bearer $TOKEN")"; echo "$read_body"

echo; echo "== a cmi5 launch: the LMS asks for a fetch URL; the AU POSTs it once for its auth-token"
launch='{"actor":{"account":{"homePage":"https://lms.example","name":"learner-1"}},"registration":"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11","activity_id":"https://lms.example/au/1","session_id":"session-2","delivery":"cmi5"}'
show curl -s -X POST localhost:8081/auth/token -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d "'$launch'"
launched="$(curl -s -X POST localhost:8081/auth/token -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d "$launch")"
echo "$launched"
FETCH_URL="$(echo "$launched" | sed -E 's/.*"fetch_url":"([^"]+)".*/\1/')"
show curl -s -X POST "$FETCH_URL"
fetched="$(curl -s -X POST "$FETCH_URL")"; echo "$fetched" | cut -c1-80; echo "…"
show curl -s -X POST "$FETCH_URL"
fetched_again="$(curl -s -X POST "$FETCH_URL")"; echo "$fetched_again"

echo; echo "== what the stand-in LRS received (note: its own credential, never the token)"
received="$(curl -s localhost:9000/_standin/requests)"
echo "$received" | sed -E 's/"body_base64":"[^"]*"/"body_base64":"…"/g' | cut -c1-600; echo

ok=true
[ "$accepted" = 200 ] || ok=false
[ "$refused" = 403 ] || ok=false
echo "$read_body" | grep -q '"learner-1"' || ok=false
echo "$received" | grep -q "$TOKEN" && ok=false
echo "$fetched" | grep -q '"auth-token"' || ok=false
echo "$fetched_again" | grep -q '"error-code":"1"' || ok=false
if $check; then
  $ok && echo "quickstart: 6 passed, 0 failed" || { echo "quickstart: FAILED"; exit 1; }
  exit 0
fi
$ok || echo "!! the demo did not go as expected; see above"
echo; echo "lrsgate is running on the embedded default. Metrics: curl localhost:9090/metrics. Ctrl-C stops it."
wait
