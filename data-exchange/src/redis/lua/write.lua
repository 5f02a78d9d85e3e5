  ---------------------------------------------------------------------------------------------
  -- Writes.

  local function store_keys(store)
    local tag = 'kn:{' .. store .. '}'
    return { tag .. ':data', tag .. ':vers', tag .. ':seq', tag .. ':changes' }
  end

  -- The schema the exchange holds for `store` (`kn:schema:{store}`, a hash of `version`,
  -- `json`, `checked`, "1" when this library checks every keyword of it, and `id`, unique to
  -- each schema held, in any database; only an administrator writes it): {version, schema,
  -- checked}, decoded once per id; nil for a store registered by a version of knactor that
  -- held none.
  local HELD = {}
  local function held_schema(store)
    local key = 'kn:schema:{' .. store .. '}'
    local found = redis.call('HMGET', key, 'version', 'id')
    local version, id = found[1], found[2]
    if not version then return nil end
    local held = HELD[store]
    if not held or held.id ~= id then
      local schema = redis.call('HMGET', key, 'json', 'checked')
      held = { version = version, id = id, schema = decode(schema[1]), checked = schema[2] == '1' }
      HELD[store] = held
    end
    return held
  end

  -- The trace context (`traceparent`) of the call's write, "" when untraced: every change
  -- the call makes, its pushed-down edges' included, carries it.
  local trace = ''

  -- Appends the change of object `name` at `version`, of `kind`, with its data `json`.
  local function record(keys, version, kind, name, json, maxlen)
    if trace == '' then
      redis.call('XADD', keys[4], 'MAXLEN', maxlen, version .. '-0', 'kind', kind, 'name', name, 'data', json)
    else
      redis.call('XADD', keys[4], 'MAXLEN', maxlen, version .. '-0', 'kind', kind, 'name', name, 'data', json, 'tp', trace)
    end
  end

  -- Stores `json` as object `name` and appends the change, of `kind` "Added" | "Modified":
  -- the version it gets.
  local function append(keys, name, json, kind, maxlen)
    local version = redis.call('INCR', keys[3])
    redis.call('HSET', keys[1], name, json)
    redis.call('HSET', keys[2], name, version)
    record(keys, version, kind, name, json, maxlen)
    return version
  end

  -- The key of the origins of object `name` of `store` (see `stamp`).
  local function origins_key(store, name)
    return 'kn:{' .. store .. '}:why:' .. name
  end

  -- Forgets every origin held in `key` (HDEL, not DEL: a principal's user may not delete
  -- keys, which would let it drop a Log store's stream).
  local function forget(key)
    local fields = redis.call('HKEYS', key)
    for _, field in ipairs(fields) do redis.call('HDEL', key, field) end
  end

  -- Records who made the changes from `old` to `new` (JSON; `old` nil for a new object; `new`
  -- or its table `after`) in the origins hash `key`: the fields `new` gives another value get
  -- `origin` (JSON; "" when unknown, which forgets theirs) as of `version`, and those it drops
  -- lose theirs. Without an origin, and no origin held, there is nothing to do.
  local function stamp(key, version, origin, old, new, after)
    if origin == '' and (not old or redis.call('HLEN', key) == 0) then return end
    local before = old and decode(old) or {}
    after = after or decode(new)
    local value = version .. ' ' .. origin
    for field, v in pairs(after) do
      if before[field] == nil or not equal(before[field], v) then
        if origin == '' then
          redis.call('HDEL', key, field)
        else
          redis.call('HSET', key, field, value)
        end
      end
    end
    for field in pairs(before) do
      if after[field] == nil then redis.call('HDEL', key, field) end
    end
  end

  -- One write to one object: `op` "put" | "del", `expect` "any" | "absent" | "present" | a
  -- version. Returns status ("ok", "same", "exists", "missing", "conflict"), version, for a
  -- delete the data deleted, and for a put the data it replaced (nil for a new object).
  local function write(keys, op, name, json, expect, maxlen)
    local current = redis.call('HGET', keys[2], name)
    -- Only what exists can be deleted (a version expected finds a conflict, below).
    if op == 'del' and not current and (expect == 'any' or expect == 'absent' or expect == 'present') then
      return 'missing', -1, ''
    end
    if expect == 'absent' then
      if current then return 'exists', tonumber(current), '' end
    elseif expect == 'present' then
      if not current then return 'missing', -1, '' end
    elseif expect ~= 'any' then
      if current ~= expect then return 'conflict', tonumber(current) or -1, '' end
    end
    local old = current and redis.call('HGET', keys[1], name)
    if op == 'put' and old == json then return 'same', tonumber(current), '' end
    if op == 'del' then
      local version = redis.call('INCR', keys[3])
      redis.call('HDEL', keys[1], name)
      redis.call('HDEL', keys[2], name)
      record(keys, version, 'Deleted', name, old, maxlen)
      return 'ok', version, old
    end
    return 'ok', append(keys, name, json, current and 'Modified' or 'Added', maxlen), '', old
  end

