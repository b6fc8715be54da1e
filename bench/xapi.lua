-- wrk script for lrsgate's bench (bench/run.sh). Environment:
--   BODY_FILE    POST this file's bytes (Content-Type from CONTENT_TYPE, default JSON); else GET
--   AUTH         the Authorization header value
--   HOST         the Host header (default localhost)
--   ROTATE_FILE  lines "host token": each request takes the next line's Host and Bearer token
--   FETCH_FILE   lines of cmi5 fetch paths: each request POSTs the next one (no body, no auth);
--                bench/run.sh checks afterwards that every request redeemed a fresh code
-- Prints one RESULT line that bench/run.sh parses.
local body_file = os.getenv("BODY_FILE")
local body = nil
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
else
  wrk.method = "GET"
end
wrk.headers["X-Experience-API-Version"] = "1.0.3"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
wrk.headers["Host"] = os.getenv("HOST") or "localhost"

local function lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end

local rotate_file, fetch_file = os.getenv("ROTATE_FILE"), os.getenv("FETCH_FILE")
if rotate_file and rotate_file ~= "" then
  local pairs_ = {}
  for _, line in ipairs(lines(rotate_file)) do
    local h, t = line:match("^(%S+) (%S+)$")
    pairs_[#pairs_ + 1] = { h, "Bearer " .. t }
  end
  local i = 0
  request = function()
    i = i % #pairs_ + 1
    wrk.headers["Host"] = pairs_[i][1]
    wrk.headers["Authorization"] = pairs_[i][2]
    return wrk.format(nil, nil, wrk.headers, body)
  end
elseif fetch_file and fetch_file ~= "" then
  local paths = lines(fetch_file)
  local i = 0
  wrk.headers["Authorization"] = nil
  wrk.headers["X-Experience-API-Version"] = nil
  request = function()
    i = i + 1
    return wrk.format("POST", paths[(i - 1) % #paths + 1], wrk.headers, "")
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
