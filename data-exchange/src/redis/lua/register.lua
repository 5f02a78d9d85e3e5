  -- @EDGES@

  -- KEYS: the store's data, versions, seq, changes. ARGV: "put" | "del", name, JSON (put),
  -- precondition, changes kept, the store's name. Returns {status, version, data deleted,
  -- failures of pushed-down edges}.
  return function(keys, args)
    local op, name, json, maxlen, store = args[1], args[2], args[3], args[5], args[6]
    local status, version, old = write(keys, op, name, json, args[4], maxlen)
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

-- The function is `kn_write`, or another name when the library is only being compiled.
local kn_write
redis.register_function('@FUNCTION@', function(keys, args)
  kn_write = kn_write or init()
  return kn_write(keys, args)
end)
