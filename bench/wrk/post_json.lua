-- wrk script for Posthorn scenarios: POST a JSON body, count responses by status, print
-- one machine-readable line at the end:
--   WRK_JSON {"requests":N,"duration_us":..,"rps":..,"status":{"202":N,...},"errors":{...},
--             "latency_us":{"mean":..,"p50":..,"p90":..,"p99":..,"max":..}}
--
-- Environment:
--   WRK_PATH       request path (default /v1/messages)
--   WRK_METHOD     default POST
--   WRK_AUTH       API key, sent as "Authorization: Bearer <key>" (optional)
--   WRK_BODY_FILE  file with the request body (JSON)
--   WRK_BODY       the body itself, when no file (default "{}")
--   WRK_HEADERS    extra headers, "Name: value" separated by "\n" (optional)
-- When the body contains @@SEQ@@, every request gets a distinct value there
-- ("<thread>-<n>"), e.g. for idempotency keys or unique recipients; that costs a
-- little Lua per request, so static bodies skip it.

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
local templated = body:find("@@SEQ@@", 1, true) ~= nil

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
  seq = 0
end

if templated then
  function request()
    seq = seq + 1
    local b = body:gsub("@@SEQ@@", id .. "-" .. seq)
    return wrk.format(nil, nil, nil, b)
  end
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

local function jnum(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  return string.format("%.3f", x)
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do agg[k] = (agg[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(agg) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%s,"status":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%s,"stdev":%s,"p50":%s,"p90":%s,"p99":%s,"max":%s}}\n',
    summary.requests, summary.duration, summary.bytes, jnum(summary.requests / secs),
    table.concat(parts, ","), e.connect, e.read, e.write, e.status, e.timeout,
    jnum(latency.mean), jnum(latency.stdev), jnum(latency:percentile(50)),
    jnum(latency:percentile(90)), jnum(latency:percentile(99)), jnum(latency.max)))
end
