-- wrk script: GET a statements list (wrk's URL carries the query) with the Authorization in AUTH.
wrk.method = "GET"
wrk.headers["X-Experience-API-Version"] = "1.0.3"
wrk.headers["Authorization"] = os.getenv("AUTH")
wrk.headers["Host"] = "localhost"

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
