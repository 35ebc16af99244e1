-- wrk script of bench/api.py: stock and alert reads of a random SKU, site or alert, paced.
--
--   wrk -t2 -c20 -d30s --latency -H 'Authorization: Bearer ...' -s bench/api.lua URL \
--       -- <route|mix> <skus> <sku digits> <sites, comma separated> <max alert id> <delay ms>
--
-- Each connection waits <delay ms> after each response before its next request, so the
-- offered rate is about connections * 1000 / (delay + latency). done() prints one line
-- "BENCH-JSON {...}" with the figures bench/api.py reads (latencies in microseconds).

local route, skus, digits, sites, alerts, delay_ms
local thread_id = 0

-- Weights of the mixed run: what the console and an ERP/WMS poll most.
local MIX = {
  { "stock", 35 }, { "movements", 20 }, { "active", 15 }, { "alert", 20 }, { "page", 10 },
}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("seed", thread_id)
end

function init(args)
  route = args[1] or "mix"
  skus = tonumber(args[2] or "100000")
  digits = tonumber(args[3] or "6")
  sites = {}
  for site in string.gmatch(args[4] or "wh1,wh2", "[^,]+") do
    sites[#sites + 1] = site
  end
  alerts = tonumber(args[5] or "20000")
  delay_ms = tonumber(args[6] or "0")
  math.randomseed(os.time() * 100 + (seed or 0))
end

local function sku()
  return string.format("S%0" .. digits .. "d", math.random(0, skus - 1))
end

local function site()
  return sites[math.random(1, #sites)]
end

local PATHS = {
  stock = function() return "/inventory/stock?site=" .. site() .. "&sku=" .. sku() end,
  stock_any_site = function() return "/inventory/stock?sku=" .. sku() end,
  movements = function()
    return "/inventory/movements?site=" .. site() .. "&sku=" .. sku() .. "&limit=100"
  end,
  movements_any_site = function() return "/inventory/movements?sku=" .. sku() .. "&limit=100" end,
  lots = function() return "/inventory/lots?site=" .. site() .. "&sku=" .. sku() end,
  active = function() return "/alerts?state=active&site=" .. site() end,
  alert = function() return "/alerts/" .. math.random(1, alerts) end,
  events = function() return "/alerts/" .. math.random(1, alerts) .. "/events" end,
  page = function() return "/alerts?limit=200" end,
}

local function pick()
  if route ~= "mix" then
    return route
  end
  local roll = math.random(1, 100)
  for _, entry in ipairs(MIX) do
    roll = roll - entry[2]
    if roll <= 0 then
      return entry[1]
    end
  end
  return MIX[#MIX][1]
end

function request()
  return wrk.format("GET", PATHS[pick()]())
end

-- Uniform in [0, 2 * delay]: the same mean, but connections do not fall into step (with one
-- fixed delay they would all send at the same moment, a burst of -c requests at a time).
function delay()
  return math.random(0, 2 * delay_ms)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d,'
      .. ' "status": %d, "timeout": %d, "p50": %d, "p75": %d, "p90": %d, "p99": %d,'
      .. ' "max": %d, "mean": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean
  ))
end
