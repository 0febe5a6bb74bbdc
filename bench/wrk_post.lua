-- wrk script for bench/api.py (--load-generator wrk): single-message POSTs, keep-alive.
--
--   wrk -t1 -c128 -d10s -s bench/wrk_post.lua http://127.0.0.1:8080 -- smsf_KEY
--
-- The same 1,000 bodies as bench/api_load.py, formatted once per thread (wrk.format per
-- request would cost the generator CPU the server needs). Prints one line starting with
-- WRKJSON: the run's counts and latency percentiles in microseconds.

local requests = {}
local next_request = 0

function init(args)
  local headers = {
    ["Authorization"] = "Bearer " .. args[1],
    ["Content-Type"] = "application/json",
  }
  for n = 0, 999 do
    local body = string.format(
      '{"destination":"+447700900%03d","source":"ACME","body":"Your code is %06d"}', n, n)
    requests[n + 1] = wrk.format("POST", "/v1/messages", headers, body)
  end
end

function request()
  next_request = next_request % 1000 + 1
  return requests[next_request]
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
