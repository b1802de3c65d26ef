-- wrk script for scripts/bench.  One file for every workload, named by
-- BENCH_WORKLOAD: seed, create, create-keyed, retrieve, static, modify,
-- delete, mix, message-create, list, conv-create, item-list.
-- wrk runs this file once in its main Lua state (setup, done) and once per
-- thread (init, request, response), so counters are per thread and done()
-- adds them up.

local workload = os.getenv("BENCH_WORKLOAD")
local ids_file = os.getenv("BENCH_IDS")           -- seeded ids, one a line
if workload == "item-list" then
    ids_file = os.getenv("BENCH_CONV_IDS")        -- conversations made
end
local seed_out = os.getenv("BENCH_SEED_OUT")      -- seed: ids go to .N
local quota    = tonumber(os.getenv("BENCH_SEED_QUOTA") or "0")
local headers  = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
    ["Content-Type"]  = "application/json",
}

-- main state: the threads, to read their counters in done()
local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

-- thread state
local ids, n, out, started = {}, 0, nil, 0
ok, non2xx, notfound = 0, 0, 0

function init(args)
    started = os.time()
    math.randomseed(started * 100 + tid)
    if workload ~= "seed" then
        for line in io.lines(ids_file) do ids[#ids + 1] = line end
    end
    if workload == "seed" then
        out = assert(io.open(seed_out .. "." .. tid, "w"))
        out:setvbuf("line")           -- scripts/bench counts the lines
    end
end

-- two metadata pairs, as the pgbench create sends
local function create()
    n = n + 1
    return wrk.format("POST", "/v1/threads", headers, string.format(
        '{"metadata":{"bench":"%s","n":"%d-%d"}}', workload, tid, n))
end

-- the same create with an Idempotency-Key never used before (the warm-up
-- run started in another second): each one creates and stores its key
local keyed_headers = {}
for k, v in pairs(headers) do keyed_headers[k] = v end

local function create_keyed()
    n = n + 1
    keyed_headers["Idempotency-Key"] = string.format("bench-%d-%d-%d",
        started, tid, n)
    return wrk.format("POST", "/v1/threads", keyed_headers, string.format(
        '{"metadata":{"bench":"%s","n":"%d-%d"}}', workload, tid, n))
end

local function pick() return ids[math.random(#ids)] end

local function retrieve()
    return wrk.format("GET", "/v1/threads/" .. pick(), headers)
end

local function modify()
    n = n + 1
    return wrk.format("POST", "/v1/threads/" .. pick(), headers,
        string.format('{"metadata":{"bench":"modify","n":"%d-%d"}}', tid, n))
end

local function delete()
    return wrk.format("DELETE", "/v1/threads/" .. pick(), headers)
end

-- one message into a seeded thread, as pgbench-message-create.sql sends
local function message_create()
    return wrk.format("POST", "/v1/threads/" .. pick() .. "/messages",
        headers, '{"role":"user","content":"hello"}')
end

-- a page of 20 of a seeded thread's messages, newest first
local function list()
    return wrk.format("GET", "/v1/threads/" .. pick() .. "/messages?limit=20",
        headers)
end

-- a conversation with two items, as pgbench-conv-create.sql sends
local function conv_create()
    n = n + 1
    return wrk.format("POST", "/v1/conversations", headers, string.format(
        '{"metadata":{"bench":"conv","n":"%d-%d"},"items":['
        .. '{"type":"message","role":"user","content":"hello"},'
        .. '{"type":"message","role":"assistant","content":"hi"}]}', tid, n))
end

-- a page of 20 of a conversation's items, newest first
local function item_list()
    return wrk.format("GET", "/v1/conversations/" .. pick()
        .. "/items?limit=20", headers)
end

-- nginx's own answer of a retrieve's body, no module: the floor
local function static()
    return wrk.format("GET", "/static/thread", headers)
end

-- In the measured window (BENCH_PHASE=window), each mix request names its
-- operation in X-Bench-Mix, which nginx logs with its $request_time:
-- scripts/bench reads each operation's p50 and p99 from that log.
local mix_tag = os.getenv("BENCH_PHASE") == "window"
local function tagged(op, f)
    if not mix_tag then return f end
    local h = {}
    for k, v in pairs(headers) do h[k] = v end
    h["X-Bench-Mix"] = op
    return function()
        local saved = headers
        headers = h
        local req = f()
        headers = saved
        return req
    end
end
local mix_retrieve = tagged("retrieve", retrieve)
local mix_create = tagged("create", create)
local mix_modify = tagged("modify", modify)

local function mix()             -- 70% retrieve, 20% create, 10% modify
    local r = math.random(100)
    if r <= 70 then return mix_retrieve() end
    if r <= 90 then return mix_create() end
    return mix_modify()
end

request = ({ seed = create, create = create, ["create-keyed"] = create_keyed,
             retrieve = retrieve,
             modify = modify, delete = delete, mix = mix,
             ["message-create"] = message_create, list = list,
             ["conv-create"] = conv_create,
             ["item-list"] = item_list, static = static })[workload]

function response(status, hdrs, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        if status == 404 then notfound = notfound + 1 end
        return
    end
    ok = ok + 1
    if out then
        out:write(body:match('"id"%s*:%s*"(thread_%w+)"'), "\n")
        if ok >= quota then     -- this thread's share is seeded
            out:close()
            out = nil
            wrk.thread:stop()
        end
    end
end

function done(summary, latency, requests)
    local t = { ok = 0, non2xx = 0, notfound = 0 }
    for _, thread in ipairs(threads) do
        for k in pairs(t) do t[k] = t[k] + thread:get(k) end
    end
    local e = summary.errors
    -- the delete run deletes random ids again and again: its 404s are
    -- expected; any other non-2xx, or a socket error, is an error
    local expected = workload == "delete" and t.notfound or 0
    local errors = e.connect + e.read + e.write + e.timeout
        + t.non2xx - expected
    io.write(string.format("bench workload=%s tool=wrk rps=%.0f"
        .. " p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d notfound=%d"
        .. " requests=%d\n",
        workload, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        errors, t.non2xx, t.notfound, summary.requests))
end
