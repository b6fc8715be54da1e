#!/usr/bin/env bash
# First throughput figure: a validated 1 KB cmi5 statement POST through lrsgate, against two
# baselines measured in the same run: the stand-in LRS directly, and nginx as a plain reverse
# proxy (keep-alive upstream, no checks) (issue "bench harness" grows this into the
# full suite). Load generator: wrk (Debian) with bench/xapi.lua.
#
#   bash bench/post_1kb.sh [seconds=10] [connections=32] [rounds=3]
#
# SCENARIOS="post get" (the default) also measures GET /xapi/statements?limit=10 (ten stored
# statements; lrsgate forces the scope's filters and judges the list it returns); SCENARIOS=post
# runs the write scenario alone.
#
# Pinning: wrk on CPU 0; the stand-in LRS and lrsgate on CPU 1 (when the machine has 2+ CPUs),
# so the direct baseline and the proxied run get the same server core and lrsgate's cost shows
# as lost throughput on it. Also reports lrsgate's CPU time per request from /proc/<pid>/stat.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh
lrsgate_install_deps
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq wrk nginx-light >/dev/null
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

secs=${1:-10}; conns=${2:-32}; rounds=${3:-3}
cargo build --release --locked --bins -q
bin=target/release
# LRSGATE_BIN=<path> measures another lrsgate build (e.g. for an A/B) against the same baselines.
gate_bin="${LRSGATE_BIN:-$bin/lrsgate}"
work="$(mktemp -d)"
pids=()
cleanup() {
  kill -INT "${pids[1]:-}" 2>/dev/null || true
  kill -TERM "${pids[0]:-}" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

server_cpu=""; client_cpu=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then server_cpu="taskset -c 1"; client_cpu="taskset -c 0"; fi

lrs_port=19000; edge_port=18080; token_port=18081; metrics_port=19090; nginx_port=18090
cat > "$work/lrsgate.toml" <<CONF
[listen]
edge = "127.0.0.1:$edge_port"
token_service = "127.0.0.1:$token_port"
metrics = "127.0.0.1:$metrics_port"
[upstream]
health_check_interval_seconds = 3600
[server]
threads = 1
pid_file = "$work/lrsgate.pid"
upgrade_sock = "$work/upgrade.sock"
CONF
keys="$($bin/lrsgate apikey new)"; api_key="$(echo "$keys" | sed -n 2p | tr -d ' ')"
cat > "$work/tenants.toml" <<CONF
[[tenant]]
id = "bench"
hosts = ["localhost"]
[tenant.upstream]
nodes = ["http://127.0.0.1:$lrs_port/xapi"]
username = "bench"
password = "bench-lrs-password"
[tenant.signing]
secret = "bench-signing-secret-0123456789abcdef"
[tenant.lms]
api_key_hashes = ["$(echo "$keys" | sed -n 4p | tr -d ' ')"]
CONF

STANDIN_THREADS=1 $server_cpu $bin/standin-lrs --listen 127.0.0.1:$lrs_port --credential bench:bench-lrs-password --no-record --max-statements 10 >/dev/null &
pids+=($!)
RUST_LOG=warn $server_cpu "$gate_bin" serve -c "$work/lrsgate.toml" 2>"$work/lrsgate.log" &
gate_pid=$!; pids+=($gate_pid)
for _ in $(seq 100); do curl -sf localhost:$edge_port/healthz >/dev/null && break; sleep 0.1; done

# Baseline 2: nginx, one worker, proxying to the stand-in over pooled keep-alive connections.
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-fastcgi;
  uwsgi_temp_path $work/nginx-uwsgi;
  scgi_temp_path $work/nginx-scgi;
  upstream lrs { server 127.0.0.1:$lrs_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://lrs;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Basic $(printf bench:bench-lrs-password | base64)";
    }
  }
}
CONF
$server_cpu "$nginx_bin" -c "$work/nginx.conf" -p "$work"

reg=7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11
token="$(curl -s -X POST localhost:$token_port/auth/token -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
  -d "{\"actor\":{\"account\":{\"homePage\":\"https://lms.example\",\"name\":\"learner-1\"}},\"registration\":\"$reg\",\"activity_id\":\"https://lms.example/au/1\",\"session_id\":\"5f8e7c1e-1f3a-4c55-9d1c-7a0a7f9b9e11\"}" \
  | sed -E 's/.*"token":"([^"]+)".*/\1/')"
# A cmi5 'completed' statement padded (in result.response) to exactly 1024 bytes.
python3 - "$work/body.json" "$reg" <<'PY'
import json, sys
s = {"actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}},
     "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
     "object": {"objectType": "Activity", "id": "https://lms.example/au/1"},
     "result": {"completion": True, "duration": "PT4M30S", "response": ""},
     "context": {"registration": sys.argv[2],
                 "contextActivities": {"grouping": [{"id": "https://publisher.example/au/1"}],
                                       "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]},
                 "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid": "5f8e7c1e-1f3a-4c55-9d1c-7a0a7f9b9e11"}},
     "timestamp": "2026-11-22T10:00:00.000Z"}
s["result"]["response"] = "x" * (1024 - len(json.dumps(s, separators=(",", ":"))))
open(sys.argv[1], "w").write(json.dumps(s, separators=(",", ":")))
PY
[ "$(wc -c < "$work/body.json")" = 1024 ] || { echo "body is not 1024 bytes"; exit 1; }
check="$(curl -s -o /dev/null -w '%{http_code}' -X POST localhost:$edge_port/xapi/statements -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' --data-binary @"$work/body.json")"
[ "$check" = 200 ] || { echo "lrsgate refused the bench statement: $check"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
run() { # body-file-or-empty url auth
  BODY_FILE="$1" AUTH="$3" $client_cpu wrk -t1 -c"$conns" -d"${secs}s" --latency -s bench/xapi.lua "$2" | grep RESULT
}

hz=$(getconf CLK_TCK)
# Ten statements for the read scenario (the stand-in keeps ten, then stores no more).
for _ in $(seq 9); do
  curl -s -o /dev/null -X POST localhost:$edge_port/xapi/statements -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data-binary @"$work/body.json"
done
agent_q="$(python3 -c 'import urllib.parse,json;print(urllib.parse.quote(json.dumps({"objectType":"Agent","account":{"homePage":"https://lms.example","name":"learner-1"}},separators=(",",":"))))')"
read_q="limit=10&agent=$agent_q&registration=$reg&activity=$(python3 -c 'import urllib.parse;print(urllib.parse.quote("https://lms.example/au/1",safe=""))')"

echo "| round | scenario | path | req/s | p50 ms | p99 ms | errors+non2xx | lrsgate CPU µs/req |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
 for scenario in ${SCENARIOS:-post get}; do
  case $scenario in
    post) body="$work/body.json"; query="" ;;
    get) body=""; query="?$read_q" ;;
  esac
  for path in direct nginx lrsgate; do
    case $path in
      direct) url="http://127.0.0.1:$lrs_port/xapi/statements$query"; auth="Basic $(printf bench:bench-lrs-password | base64)" ;;
      nginx) url="http://127.0.0.1:$nginx_port/xapi/statements$query"; auth="Bearer unused-by-the-plain-proxy" ;;
      lrsgate) url="http://127.0.0.1:$edge_port/xapi/statements$query"; auth="Bearer $token" ;;
    esac
    before=$(cpu_ticks $gate_pid)
    line="$(run "$body" "$url" "$auth")"
    after=$(cpu_ticks $gate_pid)
    eval "$(echo "$line" | sed 's/RESULT //')"
    rps=$(( requests * 1000000 / duration_us ))
    cpu="-"
    [ $path = lrsgate ] && cpu=$(( (after - before) * 1000000 / hz / requests ))
    echo "| $round | $scenario | $path | $rps | $(awk "BEGIN{printf \"%.2f\", $p50_us/1000}") | $(awk "BEGIN{printf \"%.2f\", $p99_us/1000}") | $((errors + non2xx)) | $cpu |"
  done
 done
done
