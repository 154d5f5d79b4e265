// The Redis store's Lua scripts: each change is one script, so a port claim,
// a registration or an expiry is atomic in Redis however many nodes race.
// Keys (all under `harbor:`): services (hash id -> JSON), ports (hash
// port -> id), names (hash name -> id: names are unique), inst:<id> (hash instance id -> JSON with its registration
// order), deadlines (sorted set "<service> <instance>" -> TTL deadline, ms on
// Redis's clock), rev / revn / history (the revision, its counter, the last
// 50,000 revisions), order (registration counter), seen (last time a node
// reached the store), members (sorted set name -> last publish, ms) and
// member:<name> (that node's own view, expiring).
const PRELUDE = `
local P = 'harbor:'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bump(rand)
  local n = redis.call('INCR', P .. 'revn')
  local token = n .. ':' .. rand
  redis.call('SET', P .. 'rev', token)
  redis.call('LPUSH', P .. 'history', token)
  redis.call('LTRIM', P .. 'history', 0, 49999)
  return token
end
-- No node reached the store for longer than gap_ms (Redis was down, or every node was):
-- TTLs pause for that long, so nothing expires because the store was away.
local function heartbeat(now, gap_ms)
  local last = tonumber(redis.call('GET', P .. 'seen') or '0')
  if last > 0 and now - last > gap_ms then
    local shift = now - last
    local members = redis.call('ZRANGE', P .. 'deadlines', 0, -1, 'WITHSCORES')
    for i = 1, #members, 2 do
      redis.call('ZADD', P .. 'deadlines', tonumber(members[i + 1]) + shift, members[i])
    end
  end
  redis.call('SET', P .. 'seen', now)
end
`;

/** ARGV: known revision, gap ms. -> { revision or false, known in history (0/1), lag } */
export const SYNC = `${PRELUDE}
heartbeat(now_ms(), tonumber(ARGV[2]))
local rev = redis.call('GET', P .. 'rev')
if not rev then return { false, 0, 0 } end
local known = ARGV[1]
if known == '' or known == rev then return { rev, 1, 0 } end
local found = redis.call('LPOS', P .. 'history', known)
local lag = tonumber(redis.call('GET', P .. 'revn') or '0') - (tonumber(string.match(known, '^(%d+):')) or 0)
return { rev, found and 1 or 0, lag }
`;

/** ARGV: revisions. -> those not in the history (lost writes) */
export const LOST = `
local lost = {}
for _, revision in ipairs(ARGV) do
  if not redis.call('LPOS', 'harbor:history', revision) then lost[#lost + 1] = revision end
end
return lost
`;

/** ARGV: id, port, service JSON, random, name. -> { 'OK', revision } | { 'PORT', holder id } | { 'NAME', holder id } | { 'EXISTS' } */
export const CREATE_SERVICE = `${PRELUDE}
if redis.call('HEXISTS', P .. 'services', ARGV[1]) == 1 then return { 'EXISTS' } end
-- Services written before names were kept get their names indexed once.
if redis.call('EXISTS', P .. 'names') == 0 then
  local all = redis.call('HGETALL', P .. 'services')
  for i = 1, #all, 2 do redis.call('HSETNX', P .. 'names', cjson.decode(all[i + 1]).name, all[i]) end
end
local named = redis.call('HGET', P .. 'names', ARGV[5])
if named and redis.call('HEXISTS', P .. 'services', named) == 1 then return { 'NAME', named } end
local holder = redis.call('HGET', P .. 'ports', ARGV[2])
if holder then return { 'PORT', holder } end
redis.call('HSET', P .. 'names', ARGV[5], ARGV[1])
redis.call('HSET', P .. 'ports', ARGV[2], ARGV[1])
redis.call('HSET', P .. 'services', ARGV[1], ARGV[3])
return { 'OK', bump(ARGV[4]) }
`;

/** ARGV: id, random. -> { 'OK', revision } | { 'NOTFOUND' } */
export const DELETE_SERVICE = `${PRELUDE}
local json = redis.call('HGET', P .. 'services', ARGV[1])
if not json then return { 'NOTFOUND' } end
local service = cjson.decode(json)
local port = tostring(service.port)
if redis.call('HGET', P .. 'ports', port) == ARGV[1] then redis.call('HDEL', P .. 'ports', port) end
if redis.call('HGET', P .. 'names', service.name) == ARGV[1] then redis.call('HDEL', P .. 'names', service.name) end
redis.call('HDEL', P .. 'services', ARGV[1])
for _, iid in ipairs(redis.call('HKEYS', P .. 'inst:' .. ARGV[1])) do
  redis.call('ZREM', P .. 'deadlines', ARGV[1] .. ' ' .. iid)
end
redis.call('DEL', P .. 'inst:' .. ARGV[1])
return { 'OK', bump(ARGV[2]) }
`;

/**
 * ARGV: service id, instance id, host, port, ttl ('' none), udp_check ('' none), random.
 * -> { 'created' | 'replaced' | 'refreshed', revision or '' } | { 'NOTFOUND' }
 */
export const PUT_INSTANCE = `${PRELUDE}
local sid, iid = ARGV[1], ARGV[2]
if redis.call('HEXISTS', P .. 'services', sid) == 0 then return { 'NOTFOUND' } end
local ttl = tonumber(ARGV[5])
local check = ARGV[6] ~= '' and ARGV[6] or nil
local record = { id = iid, host = ARGV[3], port = tonumber(ARGV[4]), ttl = ttl, udp_check = check }
local prev = redis.call('HGET', P .. 'inst:' .. sid, iid)
local result = 'created'
local changed = true
if prev then
  local old = cjson.decode(prev)
  if old.host == record.host and old.port == record.port then
    result = 'refreshed'
    record.order = old.order
    changed = old.ttl ~= record.ttl or old.udp_check ~= record.udp_check
  else
    result = 'replaced'
  end
end
if not record.order then record.order = redis.call('INCR', P .. 'order') end
redis.call('HSET', P .. 'inst:' .. sid, iid, cjson.encode(record))
local member = sid .. ' ' .. iid
if ttl then
  redis.call('ZADD', P .. 'deadlines', now_ms() + ttl * 1000, member)
else
  redis.call('ZREM', P .. 'deadlines', member)
end
return { result, changed and bump(ARGV[7]) or '' }
`;

/** ARGV: service id, instance id, random. -> { 'OK', revision } | { 'NOTFOUND' } */
export const DELETE_INSTANCE = `${PRELUDE}
if redis.call('HDEL', P .. 'inst:' .. ARGV[1], ARGV[2]) == 0 then return { 'NOTFOUND' } end
redis.call('ZREM', P .. 'deadlines', ARGV[1] .. ' ' .. ARGV[2])
return { 'OK', bump(ARGV[3]) }
`;

/** ARGV: service id, instance id, random, gap ms. -> { 'EXPIRED', revision } | { 'LEFT', ms } | { 'NONE' } */
export const EXPIRE_INSTANCE = `${PRELUDE}
local now = now_ms()
heartbeat(now, tonumber(ARGV[4]))
local member = ARGV[1] .. ' ' .. ARGV[2]
local deadline = tonumber(redis.call('ZSCORE', P .. 'deadlines', member))
if not deadline then return { 'NONE' } end
if deadline > now then return { 'LEFT', deadline - now } end
redis.call('HDEL', P .. 'inst:' .. ARGV[1], ARGV[2])
redis.call('ZREM', P .. 'deadlines', member)
return { 'EXPIRED', bump(ARGV[3]) }
`;

/** -> JSON { revision, services: [ service with credentials and instances (by order, with remaining_ms) ] } */
export const SNAPSHOT = `${PRELUDE}
local now = now_ms()
local out = { revision = redis.call('GET', P .. 'rev') or '', services = {} }
local all = redis.call('HGETALL', P .. 'services')
for i = 1, #all, 2 do
  local service = cjson.decode(all[i + 1])
  local instances = {}
  local raw = redis.call('HGETALL', P .. 'inst:' .. all[i])
  for j = 1, #raw, 2 do
    local inst = cjson.decode(raw[j + 1])
    local deadline = tonumber(redis.call('ZSCORE', P .. 'deadlines', all[i] .. ' ' .. raw[j]))
    if deadline then inst.remaining_ms = math.max(0, deadline - now) end
    instances[#instances + 1] = inst
  end
  table.sort(instances, function(a, b) return a.order < b.order end)
  service.instances = instances
  out.services[#out.services + 1] = service
end
return cjson.encode(out)
`;

/**
 * ARGV: member name, view JSON, ttl ms. Publishes one node's view; forgets members silent for longer
 * than their TTL. -> the view of that name it replaced, or nil.
 */
export const PUT_MEMBER = `${PRELUDE}
local now = now_ms()
local ttl = tonumber(ARGV[3])
local previous = redis.call('GET', P .. 'member:' .. ARGV[1])
redis.call('SET', P .. 'member:' .. ARGV[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', P .. 'members', now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', P .. 'members', '-inf', now - 10 * ttl)
return previous
`;

/** ARGV: member name. */
export const DELETE_MEMBER = `
redis.call('DEL', 'harbor:member:' .. ARGV[1])
redis.call('ZREM', 'harbor:members', ARGV[1])
return 'OK'
`;

/** -> { view JSON, age ms, ... } for every member whose view has not expired. */
export const MEMBERS = `${PRELUDE}
local now = now_ms()
local out = {}
local names = redis.call('ZRANGE', P .. 'members', 0, -1, 'WITHSCORES')
for i = 1, #names, 2 do
  local view = redis.call('GET', P .. 'member:' .. names[i])
  if view then
    out[#out + 1] = view
    out[#out + 1] = now - tonumber(names[i + 1])
  end
end
return out
`;
