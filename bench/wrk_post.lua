-- wrk script for bench/api.py: single-message POSTs, keep-alive, closed or open loop.
--
--   wrk -t1 -c128 -d10s -s bench/wrk_post.lua http://127.0.0.1:8080 -- smsf_KEY
--   SMSFLOW_WRK_RATE=3000 wrk -t1 -c256 -d10s -s bench/wrk_post.lua http://... -- smsf_KEY
--
-- The same 1,000 bodies as bench/api_load.py, formatted once per thread (wrk.format per
-- request would cost the generator CPU the server needs). Prints one line starting with
-- WRKJSON: the run's counts and latency percentiles in microseconds.
--
-- Closed loop (no SMSFLOW_WRK_RATE): each connection sends its next request when the previous
-- answer came. Open loop (SMSFLOW_WRK_RATE=<requests/s>): delay() hands out send slots every
-- 1/rate seconds to whichever connection is free, so requests start on the schedule whatever
-- the answers, as long as a connection is free at each slot (use several times rate x
-- expected latency connections). wrk measures a request's latency from when it was written,
-- so a request that started after its slot (every connection busy) would hide its wait: such
-- requests are counted (late_1ms, late_10ms, late_max_us) and bench/api.py reports the
-- schedule as not kept. The rate is read from the environment because wrk decides whether
-- the script has a delay() before init() sees the arguments.

local requests = {}
local next_request = 0
-- Globals, not locals: done() reads them from each thread with thread:get.
late_1ms, late_10ms, late_max_us, sent = 0, 0, 0, 0

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

local rate = tonumber(os.getenv("SMSFLOW_WRK_RATE") or "")
if rate ~= nil then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } smsflow_timespec;
    int clock_gettime(int clock_id, smsflow_timespec *tp);
  ]]
  local CLOCK_MONOTONIC = 1
  local now_ts = ffi.new("smsflow_timespec")
  local interval_us = 1000000 / rate
  local next_slot_us

  local function now_us()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
    return tonumber(now_ts.tv_sec) * 1000000 + tonumber(now_ts.tv_nsec) / 1000
  end

  function delay()
    local now = now_us()
    if next_slot_us == nil then
      next_slot_us = now
    end
    local slot = next_slot_us
    next_slot_us = slot + interval_us
    sent = sent + 1
    local wait_us = slot - now
    if wait_us < 0 then
      local late = -wait_us
      if late > 1000 then late_1ms = late_1ms + 1 end
      if late > 10000 then late_10ms = late_10ms + 1 end
      if late > late_max_us then late_max_us = late end
      return 0
    end
    return math.floor(wait_us / 1000)
  end
end

-- done() runs in another Lua state than the threads: it reads their counts with thread:get.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, _)
  local errors = summary.errors
  local late1, late10, late_max, slots = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    late1 = late1 + thread:get("late_1ms")
    late10 = late10 + thread:get("late_10ms")
    late_max = math.max(late_max, thread:get("late_max_us"))
    slots = slots + thread:get("sent")
  end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"slots":%d,"late_1ms":%d,"late_10ms":%d,"late_max_us":%d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, slots, late1, late10, late_max))
end
