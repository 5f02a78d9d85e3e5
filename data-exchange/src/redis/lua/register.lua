  -- @EDGES@

  -- KEYS: the store's data, versions, seq, changes, and the object's origins. ARGV: "put" |
  -- "del", name, JSON (put), precondition, changes kept, the store's name, and (optional) the
  -- version of the schema the writer validated against, then (optional) the write's origin,
  -- which the fields it changes get (none, or "": they lose theirs), and (optional) its trace
  -- context, which the changes it makes carry. Returns {status, version, data deleted (or the schema's
  -- violation), failures of pushed-down edges}. Whoever calls it, a put is checked against the
  -- schema held when this library checks all of it; a writer that validated against another
  -- version is told ("schema", the version held) and writes nothing.
  return function(keys, args)
    local op, name, json, maxlen, store = args[1], args[2], args[3], args[5], args[6]
    trace = args[9] or ''
    local doc -- `json` decoded, once checked
    local held = held_schema(store)
    if held then
      if args[7] and args[7] ~= held.version then return { 'schema', tonumber(held.version), '', {} } end
      if op == 'put' and held.checked then
        doc = decode(json)
        local problem = violation(held.schema, doc, '')
        if problem then return { 'invalid', 0, problem, {} } end
      end
    end
    local status, version, old, replaced = write(keys, op, name, json, args[4], maxlen)
    if status == 'ok' then
      -- A caller that gives four keys (an older knactor) has its changes recorded too.
      local origins = keys[5] or origins_key(store, name)
      if op == 'del' then
        forget(origins)
      else
        stamp(origins, version, args[8] or '', replaced, json, doc)
      end
    end
    local failures = {}
    if status == 'ok' and EDGES[store] then
      if op == 'del' then
        run_edges(store, name, old, true, maxlen, 1, failures)
      else
        run_edges(store, name, json, false, maxlen, 1, failures)
      end
    end
    return { status, version, old, failures }
  end
end

-- The functions are `kn_write` and `kn_append`, or other names when the library is only being
-- compiled.
local kn_write
redis.register_function('@FUNCTION@', function(keys, args)
  kn_write = kn_write or init()
  return kn_write(keys, args)
end)

-- One append to a Log store (see log/redis.rs): reserves `n` offsets and adds the batch (when
-- `n` > 0), and sets a checkpoint when given; returns the first offset. A function, not a
-- script, so that a principal's user may call it without running Lua of its own.
-- KEYS: record count, stream, checkpoints. ARGV: n, the batch's Arrow IPC bytes, and (optional)
-- the checkpoint's key and value.
redis.register_function('@APPEND@', function(keys, args)
  local n = tonumber(args[1])
  local first = tonumber(redis.call('GET', keys[1]) or '0')
  if n > 0 then
    redis.call('SET', keys[1], first + n)
    redis.call('XADD', keys[2], (first + 1) .. '-0', 'n', args[1], 'b', args[2])
  end
  if args[3] then
    redis.call('HSET', keys[3], args[3], args[4])
  end
  return first
end)
