-- wrk's script for `recur serve`: each connection drives its own streams of one model, a request at a time.
--
--   wrk -t2 -c1000 -d10s -s bench/serve_load.lua http://127.0.0.1:8000/v2/models/lstm/infer -- STEPS WIDTH N C [binary]
--
-- STEPS: steps a request carries; WIDTH: the model's input size; N: requests a stream lives (it starts with
-- sequence_start, ends with sequence_end on its N-th request, and the next one starts a new stream); C: connections
-- a thread has (wrk's -c divided by -t); `binary`: tensors in the binary tensor extension (in and out) rather than
-- JSON. wrk counts the answers that are not 200 ("Non-2xx").
--
-- wrk calls request() per thread, not per connection. A thread's streams are as many as its connections, and a
-- stream is busy from its request to its answer (which names it): request() takes the next stream that is not busy,
-- so that a stream never has two requests in flight and its steps stay in order.

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function init(args)
  steps = tonumber(args[1] or "1")
  width = tonumber(args[2] or "32")
  lifetime = tonumber(args[3] or "1000")
  slots = tonumber(args[4] or "1")
  counter = 0
  busy = {}
  generation = {}
  sent = {}
  binary = args[5] == "binary"
  local values = {}
  for i = 1, steps * width do
    values[i] = string.format("%.4f", math.sin(i * 0.37))
  end
  data = table.concat(values, ",")
  if binary then
    local ffi = require("ffi")
    local floats = ffi.new("float[?]", steps * width)
    for i = 1, steps * width do
      floats[i - 1] = math.sin(i * 0.37)
    end
    raw = ffi.string(floats, 4 * steps * width)
  end
  path = wrk.path
end

function request()
  -- wrk makes the first request of a thread before it connects, and sends the second one: that first one must not
  -- be a stream's start.
  if not primed then
    primed = true
    return wrk.format("GET", "/v2/health/live")
  end
  local slot
  for k = 0, slots - 1 do
    local s = (counter + k) % slots
    if not busy[s] then
      slot = s
      break
    end
  end
  if slot == nil then
    return wrk.format("GET", "/v2/health/live")
  end
  counter = slot + 1
  busy[slot] = true
  local n = (sent[slot] or 0)
  local gen = generation[slot] or 0
  local start = n == 0
  local finish = n + 1 == lifetime
  if finish then
    sent[slot] = 0
    generation[slot] = gen + 1
  else
    sent[slot] = n + 1
  end
  local id = (thread_index * 100000 + slot) * 100000 + gen + 1
  local head = '{"parameters":{"sequence_id":' .. string.format("%d", id)
    .. ',"sequence_start":' .. tostring(start) .. ',"sequence_end":' .. tostring(finish)
  if binary then
    local json = head .. ',"binary_data_output":true},"inputs":[{"name":"INPUT","shape":[' .. steps .. ',' .. width
      .. '],"datatype":"FP32","parameters":{"binary_data_size":' .. (4 * steps * width) .. '}}]}'
    return wrk.format("POST", path, {["Inference-Header-Content-Length"] = tostring(#json)}, json .. raw)
  end
  local body = head .. '},"inputs":[{"name":"INPUT","shape":[' .. steps .. ',' .. width .. '],"datatype":"FP32","data":['
    .. data .. ']}]}'
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  local id = body:match('"sequence_id":(%d+)')
  if id then
    busy[math.floor(tonumber(id) / 100000) % 100000] = nil
  end
end
