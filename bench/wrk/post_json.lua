-- wrk script for Posthorn scenarios: POST a JSON body, count responses by status, print
-- one machine-readable line at the end:
--   WRK_JSON {"requests":N,"duration_us":..,"rps":..,"status":{"202":N,...},"errors":{...},
--             "accepted":N,"per_second":{"<unix second>":N,...},
--             "latency_us":{"mean":..,"p50":..,"p75":..,"p90":..,"p99":..,"p999":..,"max":..}}
--
-- Environment:
--   WRK_PATH       request path (default /v1/messages)
--   WRK_METHOD     default POST
--   WRK_AUTH       API key, sent as "Authorization: Bearer <key>" (optional)
--   WRK_BODY_FILE  file with the request body (JSON)
--   WRK_BODY       the body itself, when no file (default "{}")
--   WRK_HEADERS    extra headers, "Name: value" separated by "\n" (optional)
--   WRK_OK_STATUS  the status that means "accepted" (default 202)
--   WRK_COUNT      when set, a plain string counted in the bodies of WRK_OK_STATUS
--                  responses: "accepted" is then the sum of those counts (e.g. '"id":"msg_'
--                  for the items a batch accepted), else the number of WRK_OK_STATUS
--                  responses. "per_second" has the accepted count per wall-clock second in
--                  which the responses arrived (for throughput-over-time charts).
-- When the body contains @@SEQ@@, every request gets a distinct value there
-- ("<thread>-<n>"), e.g. for idempotency keys or unique recipients. The body is split at
-- the markers once and joined per request (a copy, no pattern matching), so even a 1 MB
-- batch body costs little load-generator CPU; static bodies skip it.

local threads = {}
local counter = 1

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local path = os.getenv("WRK_PATH") or "/v1/messages"
local method = os.getenv("WRK_METHOD") or "POST"
local body = os.getenv("WRK_BODY") or "{}"
local body_file = os.getenv("WRK_BODY_FILE")
if body_file and body_file ~= "" then body = read_file(body_file) end
local ok_status = tonumber(os.getenv("WRK_OK_STATUS") or "202")
local count_str = os.getenv("WRK_COUNT")
if count_str == "" then count_str = nil end

local parts = {}
do
  local pos = 1
  while true do
    local s, e = body:find("@@SEQ@@", pos, true)
    if not s then break end
    parts[#parts + 1] = body:sub(pos, s - 1)
    pos = e + 1
  end
  parts[#parts + 1] = body:sub(pos)
end
local templated = #parts > 1

wrk.method = method
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end
local extra = os.getenv("WRK_HEADERS")
if extra then
  for line in extra:gmatch("[^\n]+") do
    local k, v = line:match("^%s*([^:]+):%s*(.-)%s*$")
    if k then wrk.headers[k] = v end
  end
end

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  accepted = 0
  per_second = {}
  seq = 0
end

if templated then
  function request()
    seq = seq + 1
    return wrk.format(nil, nil, nil, table.concat(parts, id .. "-" .. seq))
  end
end

local function count_in(s, needle)
  local n, pos = 0, 1
  while true do
    local i = s:find(needle, pos, true)
    if not i then return n end
    n = n + 1
    pos = i + #needle
  end
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if status == ok_status then
    local n = 1
    if count_str then n = count_in(body or "", count_str) end
    accepted = accepted + n
    local t = os.time()
    per_second[t] = (per_second[t] or 0) + n
  end
end

local function jnum(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  return string.format("%.3f", x)
end

function done(summary, latency, requests)
  local agg, acc, secs_agg = {}, 0, {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do agg[k] = (agg[k] or 0) + v end
    end
    acc = acc + (t:get("accepted") or 0)
    local ps = t:get("per_second")
    if ps then
      for k, v in pairs(ps) do secs_agg[k] = (secs_agg[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(agg) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local sparts = {}
  for k, v in pairs(secs_agg) do sparts[#sparts + 1] = string.format('"%d":%d', k, v) end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%s,"status":{%s},' ..
    '"accepted":%d,"per_second":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%s,"stdev":%s,"p50":%s,"p75":%s,"p90":%s,"p99":%s,"p999":%s,' ..
    '"max":%s}}\n',
    summary.requests, summary.duration, summary.bytes, jnum(summary.requests / secs),
    table.concat(parts, ","), acc, table.concat(sparts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    jnum(latency.mean), jnum(latency.stdev), jnum(latency:percentile(50)),
    jnum(latency:percentile(75)), jnum(latency:percentile(90)), jnum(latency:percentile(99)),
    jnum(latency:percentile(99.9)), jnum(latency.max)))
end
