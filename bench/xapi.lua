-- wrk script for lrsgate's bench: POST the file BODY_FILE when set, else GET; Authorization
-- from AUTH. Prints one RESULT line that bench/post_1kb.sh parses.
local body_file = os.getenv("BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
else
  wrk.method = "GET"
end
wrk.headers["X-Experience-API-Version"] = "1.0.3"
wrk.headers["Authorization"] = os.getenv("AUTH")
wrk.headers["Host"] = "localhost"

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
