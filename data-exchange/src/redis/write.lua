-- One write to one object, atomically, in one round trip.
-- KEYS: 1 data hash (name -> JSON), 2 version hash (name -> version), 3 store version counter,
--       4 change stream (entry id "<version>-0").
-- ARGV: 1 "put" | "del", 2 name, 3 JSON data (put), 4 precondition: "any" | "absent" |
--       "present" | a version, 5 change stream length kept.
-- Returns {status, version, data}: "ok" (written, new version), "same" (put of identical data,
-- nothing written), "exists", "missing", "conflict" (current version or -1).
local name = ARGV[2]
local current = redis.call('HGET', KEYS[2], name)
local expect = ARGV[4]
if expect == 'absent' then
  if current then return {'exists', tonumber(current), ''} end
elseif expect == 'present' or (expect == 'any' and ARGV[1] == 'del') then
  if not current then return {'missing', -1, ''} end
elseif expect ~= 'any' then
  if current ~= expect then return {'conflict', tonumber(current) or -1, ''} end
end
local old = current and redis.call('HGET', KEYS[1], name)
if ARGV[1] == 'put' and old == ARGV[3] then
  return {'same', tonumber(current), ''}
end
local version = redis.call('INCR', KEYS[3])
local id = version .. '-0'
if ARGV[1] == 'del' then
  redis.call('HDEL', KEYS[1], name)
  redis.call('HDEL', KEYS[2], name)
  redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[5], id, 'kind', 'Deleted', 'name', name, 'data', old)
  return {'ok', version, old}
end
redis.call('HSET', KEYS[1], name, ARGV[3])
redis.call('HSET', KEYS[2], name, version)
local kind = current and 'Modified' or 'Added'
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[5], id, 'kind', kind, 'name', name, 'data', ARGV[3])
return {'ok', version, ''}
