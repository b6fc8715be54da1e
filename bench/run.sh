#!/usr/bin/env bash
# lrsgate's bench harness: one command that builds in release mode, starts what it needs (the
# fast stand-in LRS, nginx as a plain reverse proxy, lrsgate), runs every scenario against the
# baselines measured in the same run, stops everything it started, and prints a table.
#
#   bash bench/run.sh [seconds=10] [connections=32]
#
# Results: bench/results/bench.md, bench/results/bench.json and bench/results/latency.svg.
# SCENARIOS (default all): post_1kb latency post_batch10 post_batch100 get_list get_single issue
# fetch idle tenants audit micro fleet scale. `audit` runs token issuance and refused requests
# (each makes one audit event) with the audit trail off and on, interleaved over two rounds.
# `ratelimit` runs one token at full speed against a per-token limit (RATE_LIMIT, 2000/s) and
# reports what got through per second against the limit. `micro` runs the criterion micro-benches (bench/micro.rs),
# `fleet` three instances in Postgres mode against file mode (bench/fleet.rs),
# `scale` Postgres mode at SCALE_TENANTS (100,000) tenants (bench/tenants_scale.rs, its own
# PostgreSQL); both append their figures to the report. `latency` is post_1kb over one connection: the latency lrsgate adds to an
# unloaded request (the 32-connection runs measure throughput, their p50 is mostly queueing). TENANT_COUNTS (default "1 1000 100000") for `tenants`; IDLE_CONNECTIONS ("10000 50000", each against the passthrough and lrsgate).
#
# Load: wrk (Debian) with bench/xapi.lua, which rotates tokens and tenants (10,000 distinct
# tokens) and cmi5 fetch codes; bench/prepare.py makes the inputs (tenants files, statements,
# tokens, fetch codes) and holds the idle connections. No load generator of our own: wrk does
# all of it.
# Paths: every load scenario runs the same requests four ways: `direct` to the stand-in LRS,
# through `nginx` as a plain reverse proxy, through `passthrough` (bench/passthrough.rs: plain
# Pingora with lrsgate's own server settings and no checks, the floor lrsgate is built on) and
# through `lrsgate`; ROUNDS (default 1) repeats the four, interleaved, so drift on a shared
# machine falls on every path alike. CPU µs per request is each server's own (the stand-in's
# for direct, nginx's worker, the passthrough, lrsgate). `instructions` (not in the default
# set: slow) counts instructions per request under callgrind, repeatable on a noisy machine,
# for the passthrough and lrsgate on post_1kb and get_list (INSTR_SECONDS, 5; nginx forks its
# worker and is not counted).
# Pinning: wrk on CPU 0; the stand-in LRS, nginx, the passthrough and lrsgate on CPU 1 (taskset, when the
# machine has 2+ CPUs), so every path gets the same server core and lrsgate's cost shows as lost
# throughput on it. lrsgate's CPU time per request comes from /proc/<pid>/stat, its peak RSS
# from VmHWM. Caveat: 2 shared cores, load generator on the same box: read ratios, not absolutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh
lrsgate_install_deps
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v python3 >/dev/null || need+=(python3)
command -v taskset >/dev/null || need+=(util-linux)
((${#need[@]})) && apt_install "${need[@]}"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

secs=${1:-10}; conns=${2:-32}
scenarios=${SCENARIOS:-post_1kb latency post_batch10 post_batch100 get_list get_single issue fetch idle tenants audit ratelimit micro fleet scale}
tenant_counts=${TENANT_COUNTS:-1 1000 100000}
idle_n=${IDLE_CONNECTIONS:-10000 50000}
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --bins --example passthrough -q
bin=target/release
# BIN_DIR: another build's lrsgate and standin-lrs (a base commit's, for a before/after pair in one
# session); the passthrough is always this tree's.
gate_bin=${BIN_DIR:-$bin}
rounds=${ROUNDS:-1}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d)"
results=${RESULTS:-bench/results}
mkdir -p "$results"
: > "$work/rows.jsonl"
: > "$work/appendix.md"
lrs_pid=""; gate_pid=""; idle_pid=""; pt_pid=""
stop_gate() { [ -n "$gate_pid" ] && kill -INT "$gate_pid" 2>/dev/null && wait "$gate_pid" 2>/dev/null; gate_pid=""; }
cleanup() {
  stop_gate || true
  [ -n "$pt_pid" ] && kill -INT "$pt_pid" 2>/dev/null || true
  [ -n "$idle_pid" ] && kill "$idle_pid" 2>/dev/null || true
  [ -n "$lrs_pid" ] && kill -TERM "$lrs_pid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

server_cpu=""; client_cpu=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then server_cpu="taskset -c 1"; client_cpu="taskset -c 0"; fi
lrs_port=19000; pt_port=18070; edge_port=18080; token_port=18081; metrics_port=19090; nginx_port=18090
lrs_auth="Basic $(printf bench:bench-lrs-password | base64)"
keys="$($bin/lrsgate apikey new)"
api_key="$(echo "$keys" | sed -n 2p | tr -d ' ')"; api_hash="$(echo "$keys" | sed -n 4p | tr -d ' ')"
python3 bench/prepare.py bodies "$work"

STANDIN_THREADS=1 $server_cpu $bin/standin-lrs --listen 127.0.0.1:$lrs_port --credential bench:bench-lrs-password \
  --no-record --max-statements 10 >/dev/null &
lrs_pid=$!

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
  client_max_body_size 4m;
  client_body_buffer_size 4m;  # bodies stay in memory, as lrsgate's do (no temp files)
  upstream lrs { server 127.0.0.1:$lrs_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://lrs;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "$lrs_auth";
    }
  }
}
CONF
$server_cpu "$nginx_bin" -c "$work/nginx.conf" -p "$work"
for _ in $(seq 50); do [ -s "$work/nginx.pid" ] && break; sleep 0.1; done
nginx_worker() { pgrep -P "$(cat "$work/nginx.pid")" | head -1; }

# lrsgate with N tenants (t000000 also answers `localhost`); waits until it serves.
start_gate() {
  local n=$1
  python3 bench/prepare.py tenants "$work/tenants.toml" "$n" "$lrs_port" "$api_hash" "http://localhost:$edge_port"
  [ -n "${tenant_extra:-}" ] && printf '%s\n' "$tenant_extra" >> "$work/tenants.toml"  # to the last tenant
  cat > "$work/lrsgate.toml" <<CONF
[listen]
edge = "127.0.0.1:$edge_port"
token_service = "127.0.0.1:$token_port"
metrics = "127.0.0.1:$metrics_port"
[upstream]
health_check_interval_seconds = 3600
[limits]
# wrk and the idle connections all come from 127.0.0.1: one "client" holding them all.
max_connections_per_client = 100000
[server]
threads = 1
pid_file = "$work/lrsgate.pid"
upgrade_sock = "$work/upgrade.sock"
${gate_extra:-}
CONF
  local started; started=$(date +%s.%N)
  RUST_LOG=warn $server_cpu ${gate_wrap:-} $gate_bin/lrsgate serve -c "$work/lrsgate.toml" 2>"$work/lrsgate.log" &
  gate_pid=$!
  for _ in $(seq 3000); do curl -sf localhost:$edge_port/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf localhost:$edge_port/healthz >/dev/null || { cat "$work/lrsgate.log"; exit 1; }
  gate_start_s=$(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $started}")
  start_passthrough
}

# The floor: plain Pingora with the settings lrsgate was just started with.
start_passthrough() {
  [ -n "$pt_pid" ] && { kill -INT "$pt_pid" 2>/dev/null; wait "$pt_pid" 2>/dev/null || true; }
  RUST_LOG=warn $server_cpu ${pt_wrap:-} $bin/examples/passthrough "$work/lrsgate.toml" "127.0.0.1:$pt_port" \
    "127.0.0.1:$lrs_port" "$lrs_auth" 2>"$work/passthrough.log" &
  pt_pid=$!
  for _ in $(seq 3000); do curl -s -o /dev/null localhost:$pt_port/xapi/about 2>/dev/null && break; sleep 0.1; done
}

# The server process whose CPU a path's requests cost.
server_pid() {
  case $1 in
    direct) echo "$lrs_pid" ;; nginx) nginx_worker ;; passthrough) echo "$pt_pid" ;; *) echo "$gate_pid" ;;
  esac
}

hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
rss_mb() { awk '/^VmRSS/{printf "%.1f", $2/1024}' /proc/"$1"/status; }
hwm_mb() { awk '/^VmHWM/{printf "%.1f", $2/1024}' /proc/"$1"/status; }

# measure SCENARIO PATH URL [ENV=…]…: one wrk run, one row.
measure() {
  local scenario=$1 path=$2 url=$3; shift 3
  local before after line pid
  pid=$(server_pid "$path")
  before=$(cpu_ticks "$pid")
  line="$(env "$@" $client_cpu wrk -t1 -c"${run_conns:-$conns}" -d"${run_secs:-$secs}s" --latency -s bench/xapi.lua "$url" | grep RESULT)"
  local requests duration_us errors non2xx p50_us p99_us p999_us
  eval "$(echo "$line" | sed 's/RESULT //')"
  local cpu rss
  after=$(cpu_ticks "$pid")
  cpu=$(awk "BEGIN{printf \"%.1f\", ($after - $before) * 1000000 / $hz / ($requests > 0 ? $requests : 1)}")
  rss=$(hwm_mb "$pid")
  echo "{\"scenario\":\"$scenario\",\"path\":\"$path\",\"requests\":$requests,\"rps\":$(( requests * 1000000 / duration_us )),\"p50_ms\":$(awk "BEGIN{print $p50_us/1000}"),\"p99_ms\":$(awk "BEGIN{print $p99_us/1000}"),\"p999_ms\":$(awk "BEGIN{print $p999_us/1000}"),\"errors\":$((errors + non2xx)),\"cpu_us_per_req\":$cpu,\"peak_rss_mb\":$rss${extra:+,$extra}}" >> "$work/rows.jsonl"
  echo "  $scenario/$path: $(( requests * 1000000 / duration_us )) req/s, p99 $(awk "BEGIN{print $p99_us/1000}") ms, errors $((errors + non2xx))" >&2
}

# The four paths of one scenario, ROUNDS times interleaved: the LRS directly, nginx, the plain
# Pingora passthrough, lrsgate.
paths() {
  local scenario=$1 target=$2; shift 2
  local round
  for round in $(seq "$rounds"); do
    extra="\"round\":$round" measure "$scenario" direct "http://127.0.0.1:$lrs_port/xapi/$target" AUTH="$lrs_auth" "$@"
    extra="\"round\":$round" measure "$scenario" nginx "http://127.0.0.1:$nginx_port/xapi/$target" AUTH="Bearer unused" "$@"
    extra="\"round\":$round" measure "$scenario" passthrough "http://127.0.0.1:$pt_port/xapi/$target" AUTH="Bearer unused" "$@"
    extra="\"round\":$round" measure "$scenario" lrsgate "http://127.0.0.1:$edge_port/xapi/$target" AUTH="Bearer $token" "$@"
  done
}

# Instructions per request under callgrind (INSTR_SECONDS of one-connection load after the
# count is switched on): the same for the same binary and input whatever the machine does.
count_instructions() {
  local scenario=$1 path=$2 url=$3 pid=$4; shift 4
  local line requests duration_us errors non2xx p50_us p99_us p999_us
  rm -f "$work"/callgrind."$pid".*
  callgrind_control -i on "$pid" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  line="$(env "$@" $client_cpu wrk -t1 -c1 -d"${INSTR_SECONDS:-5}s" -s bench/xapi.lua "$url" | grep RESULT)"
  eval "$(echo "$line" | sed 's/RESULT //')"
  # A dump holds what was counted since the zeroing: its `summary:` (or `totals:`) line.
  callgrind_control -d "$pid" >/dev/null
  callgrind_control -i off "$pid" >/dev/null
  local dump ir
  dump=$(ls -t "$work"/callgrind."$pid".* 2>/dev/null | head -1)
  ir=$(awk '/^(summary|totals):/{print $2; exit}' "$dump")
  ir=${ir:-0}
  # CALLGRIND_KEEP=dir keeps each dump for callgrind_annotate (per-function costs).
  [ -n "${CALLGRIND_KEEP:-}" ] && mkdir -p "$CALLGRIND_KEEP" && cp "$dump" "$CALLGRIND_KEEP/$scenario-$path.callgrind"
  echo "{\"scenario\":\"instructions_$scenario\",\"path\":\"$path\",\"requests\":$requests,\"errors\":$((errors + non2xx)),\"instructions_per_req\":$(( ir / (requests > 0 ? requests : 1) ))}" >> "$work/rows.jsonl"
  echo "  instructions $scenario/$path: $(( ir / (requests > 0 ? requests : 1) )) per request over $requests" >&2
}

token_request() {
  echo "{\"actor\":{\"account\":{\"homePage\":\"https://lms.example\",\"name\":\"learner-1\"}},\"registration\":\"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11\",\"activity_id\":\"https://lms.example/au/1\",\"session_id\":\"5f8e7c1e-1f3a-4c55-9d1c-7a0a7f9b9e11\"$1}"
}

start_gate 1
token_request "" > "$work/token_request.json"
token="$(curl -s -X POST localhost:$token_port/auth/token -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
  --data-binary @"$work/token_request.json" | sed -E 's/.*"token":"([^"]+)".*/\1/')"
for _ in $(seq 10); do # ten statements for the read scenarios
  curl -s -o "$work/ids.json" -X POST localhost:$edge_port/xapi/statements -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -H 'X-Experience-API-Version: 1.0.3' --data-binary @"$work/statement.json"
done
statement_id="$(sed -E 's/\["([^"]+)"\]/\1/' "$work/ids.json")"
agent_q="$(python3 -c 'import urllib.parse,json;print(urllib.parse.quote(json.dumps({"objectType":"Agent","account":{"homePage":"https://lms.example","name":"learner-1"}},separators=(",",":"))))')"
list_q="statements?limit=10&agent=$agent_q&registration=7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11&activity=https%3A%2F%2Flms.example%2Fau%2F1"

for scenario in $scenarios; do
  echo "== $scenario" >&2
  case $scenario in
    post_1kb)
      # lrsgate's own histograms, scraped every second of its run (bench/histograms.py charts them).
      mkdir -p "$work/scrapes"
      ( i=0; while [ -n "$gate_pid" ] && kill -0 "$gate_pid" 2>/dev/null && [ ! -f "$work/scrapes/stop" ]; do
          curl -s localhost:$metrics_port/metrics > "$work/scrapes/$(printf %04d $i).txt"; i=$((i + 1)); sleep 1; done ) &
      scraper=$!
      paths post_1kb statements BODY_FILE="$work/statement.json"
      touch "$work/scrapes/stop"; wait "$scraper" 2>/dev/null || true
      python3 bench/histograms.py "$work/scrapes" "$results"
      ;;
    latency) run_conns=1 paths latency_1kb_1conn statements BODY_FILE="$work/statement.json" ;;
    post_batch10) paths post_batch10 statements BODY_FILE="$work/batch10.json" ;;
    post_batch100) paths post_batch100 statements BODY_FILE="$work/batch100.json" ;;
    get_list) paths get_list "$list_q" ;;
    get_single) paths get_single "statements?statementId=$statement_id" ;;
    issue)
      measure issue lrsgate "http://127.0.0.1:$token_port/auth/token" BODY_FILE="$work/token_request.json" AUTH="Bearer $api_key" ;;
    fetch)
      # Each request redeems a fresh one-time code: as many codes as the run can use.
      # Each request must redeem a fresh one-time code: a short run over more codes than it can
      # use (checked below; a run that used them all would also count cheap "already used" answers).
      codes=${FETCH_CODES:-150000}
      python3 bench/prepare.py fetch "$work/fetch.txt" $token_port "$api_key" $codes
      redeemed() { curl -s localhost:$metrics_port/metrics | awk '/^lrsgate_cmi5_fetch_total\{outcome="redeemed"\}/{print $2}'; }
      redeemed_before=$(redeemed)
      run_secs=1 measure fetch lrsgate "http://127.0.0.1:$edge_port/" FETCH_FILE="$work/fetch.txt"
      redeemed_now=$(( $(redeemed) - redeemed_before ))
      asked=$(tail -1 "$work/rows.jsonl" | sed -E 's/.*"requests":([0-9]+).*/\1/')
      echo "  fetch: $redeemed_now redeemed of $asked requests ($codes codes)" >&2
      [ "$redeemed_now" -ge "$asked" ] || echo "  WARNING: not every fetch request redeemed a fresh code; raise FETCH_CODES" >&2
      ;;
    idle)
      # Each count against the passthrough and lrsgate: RSS held per idle keep-alive connection.
      for n in $idle_n; do
        stop_gate; start_gate 1  # fresh processes: memory freed by an earlier count is not reused
        for path in passthrough lrsgate; do
          pid=$(server_pid $path); port=$edge_port; [ $path = passthrough ] && port=$pt_port
          rss_before=$(rss_mb "$pid")
          coproc IDLE { python3 bench/prepare.py idle $port "$n"; }
          idle_pid=$IDLE_PID
          read -r _ _ <&"${IDLE[0]}"
          sleep 1
          rss_after=$(rss_mb "$pid")
          echo "{\"scenario\":\"idle_$n\",\"path\":\"$path\",\"connections\":$n,\"rss_before_mb\":$rss_before,\"rss_after_mb\":$rss_after,\"kb_per_connection\":$(awk "BEGIN{printf \"%.1f\", ($rss_after - $rss_before) * 1024 / $n}")}" >> "$work/rows.jsonl"
          echo "  idle $path: $n keep-alive connections, RSS $rss_before → $rss_after MB" >&2
          kill "$idle_pid" 2>/dev/null || true; wait "$idle_pid" 2>/dev/null || true; idle_pid=""
          sleep 2  # let the server close them before the next count
        done
      done
      ;;
    tenants)
      for n in $tenant_counts; do
        stop_gate
        start_gate "$n"
        python3 bench/prepare.py tokens "$work/tokens.txt" $token_port "$api_key" 10000 "$n"
        extra="\"tenants\":$n,\"distinct_tokens\":10000,\"start_seconds\":$gate_start_s,\"rss_after_load_mb\":$(rss_mb "$gate_pid")" \
          measure "tenants_$n" lrsgate "http://127.0.0.1:$edge_port/xapi/statements" \
          BODY_FILE="$work/statement.json" ROTATE_FILE="$work/tokens.txt"
      done
      ;;
    audit)
      # Every request here makes one audit event: the writer's cost at its worst.
      for round in 1 2; do
        for mode in off on; do
          stop_gate
          gate_extra=""
          [ "$mode" = on ] && gate_extra=$'[logging]\nlearner_hash_salt = "bench"\n[audit]\nfile = "audit.jsonl"\n'
          start_gate 1
          extra="\"audit\":\"$mode\",\"round\":$round" measure "audit_${mode}_issue" lrsgate \
            "http://127.0.0.1:$token_port/auth/token" BODY_FILE="$work/token_request.json" AUTH="Bearer $api_key"
          extra="\"audit\":\"$mode\",\"round\":$round" measure "audit_${mode}_refused" lrsgate \
            "http://127.0.0.1:$edge_port/xapi/statements" AUTH="Bearer not-a-token"
          # The usual traffic: validated statement POSTs, which make no event.
          extra="\"audit\":\"$mode\",\"round\":$round" measure "audit_${mode}_post" lrsgate \
            "http://127.0.0.1:$edge_port/xapi/statements" AUTH="Bearer $token" BODY_FILE="$work/statement.json"
        done
      done
      [ -f "$work/audit.jsonl" ] && echo "  audit: $(wc -l < "$work/audit.jsonl") events written" >&2
      gate_extra=""; stop_gate; start_gate 1
      ;;
    ratelimit)
      limit=${RATE_LIMIT:-2000}
      stop_gate
      tenant_extra=$'[tenant.limits]\nedge_requests_per_second_per_token = '"$limit"
      start_gate 1
      rl_token="$(curl -s -X POST localhost:$token_port/auth/token -H "Authorization: Bearer $api_key" \
        -H 'Content-Type: application/json' --data-binary @"$work/token_request.json" | sed -E 's/.*"token":"([^"]+)".*/\1/')"
      limited() { curl -s localhost:$metrics_port/metrics | awk '/^lrsgate_rate_limited_total\{limit="token"/{s += $2} END {print s + 0}'; }
      before=$(limited)
      extra="\"limit_per_second\":$limit" measure ratelimit_token lrsgate \
        "http://127.0.0.1:$edge_port/xapi/statements" AUTH="Bearer $rl_token" BODY_FILE="$work/statement.json"
      refused=$(( $(limited) - before ))
      asked=$(tail -1 "$work/rows.jsonl" | sed -E 's/.*"requests":([0-9]+).*/\1/')
      echo "{\"scenario\":\"ratelimit_accuracy\",\"path\":\"lrsgate\",\"limit_per_second\":$limit,\"requests\":$asked,\"refused\":$refused,\"accepted_per_second\":$(( (asked - refused) / ${run_secs:-$secs} ))}" >> "$work/rows.jsonl"
      echo "  ratelimit: $asked requests, $refused refused, $(( (asked - refused) / ${run_secs:-$secs} )) accepted/s against a limit of $limit/s" >&2
      tenant_extra=""; stop_gate; start_gate 1
      ;;
    instructions)
      command -v callgrind_control >/dev/null || apt_install valgrind
      # Instrumentation off until the load (a fast start); `-i on` then `-z` count only the load.
      cg="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$work/callgrind.%p"
      stop_gate; gate_wrap="$cg" pt_wrap="$cg" start_gate 1
      for target in post_1kb get_list; do
        case $target in post_1kb) q=statements; body=(BODY_FILE="$work/statement.json") ;; *) q="$list_q"; body=() ;; esac
        count_instructions $target passthrough "http://127.0.0.1:$pt_port/xapi/$q" "$pt_pid" AUTH="Bearer unused" "${body[@]}"
        count_instructions $target lrsgate "http://127.0.0.1:$edge_port/xapi/$q" "$gate_pid" AUTH="Bearer $token" "${body[@]}"
      done
      stop_gate; start_gate 1
      ;;
    micro)
      stop_gate
      { echo; echo "### Micro-benches (criterion, \`cargo bench --bench micro -- --quick\`)"; echo
        echo "| benchmark | time (low / estimate / high) |"; echo "|---|---|"
        cargo bench --locked --bench micro -- --quick 2>/dev/null \
          | awk '/time:/ { name = ($1 == "time:") ? prev : $1; sub(/.*time: +\[/, ""); sub(/\].*$/, "");
                           if (name !~ /:$/) print "| " name " | " $0 " |" }
                 { if ($1 != "time:") prev = $1 }'
      } >> "$work/appendix.md"
      ;;
    fleet)
      stop_gate
      { echo; echo "### Fleet mode (\`cargo bench --bench fleet\`: three instances on one Postgres, against file mode)"; echo
        echo '```json'; cargo bench --locked --bench fleet 2>/dev/null | tail -1; echo '```'
      } >> "$work/appendix.md"
      ;;
    scale)
      stop_gate
      { echo; TENANTS=${SCALE_TENANTS:-100000} cargo bench --locked --bench tenants_scale 2>/dev/null | sed -n '/^## /,$p'; } >> "$work/appendix.md"
      ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
done

python3 bench/report.py "$work/rows.jsonl" "$results" "$secs" "$conns" "$(nproc)" "$work/appendix.md"
