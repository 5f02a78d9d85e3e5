  ---------------------------------------------------------------------------------------------
  -- Pushed-down edges, by the stores whose writes run them: {edge, the alias of that store}.

  local EDGES = {}
  -- The writes each edge made here, by edge (`RedisExchange::edge_writes`), counted when the
  -- writer's user may (the administrator; a principal's own user may not, and is not asked, so
  -- that Redis's ACL log stays quiet).
  local EDGE_WRITES = 'kn:edges:writes'
  local function count(e)
    if redis.acl_check_cmd('HINCRBY', EDGE_WRITES, e.name, 1) then
      redis.pcall('HINCRBY', EDGE_WRITES, e.name, 1)
    end
  end
  -- How deep a chain of edges may run inside one write.
  local MAX_DEPTH = 16

  -- Chunks pushed down by earlier versions have no `conforms`: `violation` decides alone.
  local function unchecked() return false end

  local function edge(e)
    e.schema = decode(e.schema)
    e.conforms = e.conforms or unchecked
    e.keys = store_keys(e.target)
    for _, f in ipairs(e.from) do
      f.keys = store_keys(f.store)
      local list = EDGES[f.store] or {}
      list[#list + 1] = { edge = e, alias = f.alias }
      EDGES[f.store] = list
    end
  end

  local run_edges

  -- The `from` objects of `e` for a change of object `name` bound to `alias`: the others are
  -- read by name. nil while one is missing, unless the change is a deletion (then null).
  local function bind(e, alias, name, data, deleted)
    local b = { [alias] = data }
    for _, f in ipairs(e.from) do
      if f.alias ~= alias then
        local json = redis.call('HGET', f.keys[1], name)
        if json then
          b[f.alias] = decode(json)
        elseif deleted then
          b[f.alias] = NULL
        else
          return nil
        end
      end
    end
    return b
  end

  -- Runs edge `e` for object `name` of its `from` store `alias`, with data `data` (a table).
  local function run_edge(e, alias, name, data, deleted, maxlen, depth, failures)
    local b = bind(e, alias, name, data, deleted)
    if not b then return end
    local target = e.key(name, b)
    if type(target) ~= 'string' then error('`key` must give a string, gave ' .. encode(target), 0) end
    local keys = e.keys
    if deleted then
      local status, _, old = write(keys, 'del', target, '', 'any', maxlen)
      if status == 'ok' then
        forget(origins_key(e.target, target))
        count(e)
        run_edges(e.target, target, decode(old), true, maxlen, depth + 1, failures)
      end
      return
    end
    local patch = e.patch(name, b)
    if patch == nil then return end
    local json = redis.call('HGET', keys[1], target)
    local doc = json and decode(json) or {}
    if json and not changes(doc, patch) then return end
    doc = merge(doc, patch)
    -- The edge's own check answers fast; `violation` says why it fails. When the target's
    -- schema changed since the edge was pushed down, the schema held decides, if this library
    -- checks all of it; else the edge writes nothing.
    local held = held_schema(e.target)
    local problem
    if held and held.version ~= e.version then
      if not held.checked then error(format('the schema of %s changed to one checked outside Redis; re-apply the spec', e.target), 0) end
      problem = violation(held.schema, doc, '')
    else
      problem = not e.conforms(doc, e.schema) and violation(e.schema, doc, '')
    end
    if problem then error(format('%s/%s breaks its schema %s', e.target, target, problem), 0) end
    local encoded = encode(doc)
    if encoded == json then return end
    append(keys, target, encoded, json and 'Modified' or 'Added', maxlen)
    -- Who sets a field here is not recorded: the fields it changes have no origin from now on.
    stamp(origins_key(e.target, target), 0, '', json, encoded)
    count(e)
    run_edges(e.target, target, doc, false, maxlen, depth + 1, failures)
  end

  function run_edges(store, name, data, deleted, maxlen, depth, failures)
    local list = EDGES[store]
    if not list then return end
    if depth > MAX_DEPTH then
      failures[#failures + 1] = format('%s/%s: edges chained deeper than %d writes; stopped', store, name, MAX_DEPTH)
      return
    end
    if type(data) == 'string' then data = decode(data) end
    for _, r in ipairs(list) do
      local e = r.edge
      if e.cascade or not deleted then
        local ok, err = pcall(run_edge, e, r.alias, name, data, deleted, maxlen, depth, failures)
        if not ok then failures[#failures + 1] = format('edge %s on %s: %s', e.name, name, tostring(err)) end
      end
    end
  end

