-- The `knactor` Redis Functions library: `kn_write`, the one write of every object, and the
-- Cast edges pushed down into it. Generated edges are appended where `@EDGES@` stands.
--
-- Layout of a store `s` (see mod.rs): `kn:{s}:data` (hash name -> JSON), `kn:{s}:vers` (hash
-- name -> version), `kn:{s}:seq` (store version), `kn:{s}:changes` (stream, id "<version>-0").
--
-- A pushed-down edge runs right after a write of one of its `from` stores changed an object,
-- in the same call: it reads its other `from` objects of the same name (waiting, as the
-- integrator does, until all exist), computes the target's fields, merges them into the
-- target (nothing is written when that changes nothing), checks the target's JSON Schema, and
-- writes it, which in turn runs the edges of the target's store. An edge that fails writes
-- nothing; its message is returned to the writer.
--
-- Redis runs a library's top level with nothing but `redis` in scope, so everything is built
-- on the first call, by `init`.

local function init()
  -- Globals are looked up through the library's sandbox at every use; locals are not (5% of
  -- the instructions of a pushed-down write, callgrind).
  local type, pairs, ipairs, next, tonumber, tostring = type, pairs, ipairs, next, tonumber, tostring
  local getmetatable, setmetatable, error, pcall = getmetatable, setmetatable, error, pcall
  local cjson, redis = cjson, redis

  ---------------------------------------------------------------------------------------------
  -- JSON: objects and arrays are tables (an array has [1], or the ARRAY metatable when empty,
  -- so `[]` stays `[]`), null is cjson.null (so a null field is present), numbers are doubles.
  -- cjson decodes, unless the text has an empty array, which it would take for an object.

  local byte, sub, find, char, format = string.byte, string.sub, string.find, string.char, string.format
  local floor, huge = math.floor, math.huge
  local concat, sort = table.concat, table.sort

  local NULL = cjson.null
  local ARRAY = {}

  local function array(t)
    return setmetatable(t, ARRAY)
  end

  local function is_array(v)
    return type(v) == 'table' and (v[1] ~= nil or getmetatable(v) == ARRAY)
  end

  local function is_object(v)
    return type(v) == 'table' and not is_array(v)
  end

  local ESCAPED = { [34] = '"', [92] = '\\', [47] = '/', [98] = '\b', [102] = '\f', [110] = '\n', [114] = '\r', [116] = '\t' }

  local function utf8_char(c)
    if c < 0x80 then
      return char(c)
    elseif c < 0x800 then
      return char(0xC0 + floor(c / 0x40), 0x80 + c % 0x40)
    elseif c < 0x10000 then
      return char(0xE0 + floor(c / 0x1000), 0x80 + floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
    end
    return char(0xF0 + floor(c / 0x40000), 0x80 + floor(c / 0x1000) % 0x40,
      0x80 + floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
  end

  local function skip(s, i)
    return find(s, '[^ \t\r\n]', i) or #s + 1
  end

  -- The string whose opening quote is at `i`, and the index after its closing quote.
  local function decode_string(s, i)
    local parts, n, j = {}, 0, i + 1
    while true do
      local k = find(s, '["\\]', j)
      if not k then error('unterminated JSON string') end
      if k > j then n = n + 1; parts[n] = sub(s, j, k - 1) end
      if byte(s, k) == 34 then return concat(parts), k + 1 end
      local e = byte(s, k + 1)
      if e == 117 then
        local c = tonumber(sub(s, k + 2, k + 5), 16)
        j = k + 6
        if c >= 0xD800 and c < 0xDC00 and sub(s, j, j + 1) == '\\u' then
          c = 0x10000 + (c - 0xD800) * 0x400 + (tonumber(sub(s, j + 2, j + 5), 16) - 0xDC00)
          j = j + 6
        end
        n = n + 1; parts[n] = utf8_char(c)
      else
        n = n + 1; parts[n] = ESCAPED[e] or error('bad JSON escape')
        j = k + 2
      end
    end
  end

  local function decode_value(s, i)
    i = skip(s, i)
    local c = byte(s, i)
    if c == 123 then -- {
      local t = {}
      i = skip(s, i + 1)
      if byte(s, i) == 125 then return t, i + 1 end
      while true do
        local k, v
        k, i = decode_string(s, skip(s, i))
        v, i = decode_value(s, skip(s, i) + 1) -- past ':'
        t[k] = v
        i = skip(s, i)
        if byte(s, i) == 125 then return t, i + 1 end
        i = i + 1 -- past ','
      end
    elseif c == 91 then -- [
      local t, n = array({}), 0
      i = skip(s, i + 1)
      if byte(s, i) == 93 then return t, i + 1 end
      while true do
        local v
        v, i = decode_value(s, i)
        n = n + 1; t[n] = v
        i = skip(s, i)
        if byte(s, i) == 93 then return t, i + 1 end
        i = i + 1
      end
    elseif c == 34 then
      return decode_string(s, i)
    elseif c == 116 then
      return true, i + 4
    elseif c == 102 then
      return false, i + 5
    elseif c == 110 then
      return NULL, i + 4
    end
    local j = find(s, '[^%d%.eE+-]', i) or #s + 1
    local number = tonumber(sub(s, i, j - 1))
    if not number then error('bad JSON at ' .. i) end
    return number, j
  end

  local function decode(s)
    if not find(s, '[]', 1, true) then return cjson.decode(s) end
    return (decode_value(s, 1))
  end

  -- Numbers as serde_json reads them back: integral ones without a fraction, others with the
  -- fewest digits that read back the same; non-finite ones as null, as the integrator does.
  local function encode_number(x)
    if x ~= x or x == huge or x == -huge then return 'null' end
    if x == floor(x) and x < 9e15 and x > -9e15 then return format('%d', x) end
    local s = format('%.15g', x)
    if tonumber(s) ~= x then
      s = format('%.16g', x)
      if tonumber(s) ~= x then s = format('%.17g', x) end
    end
    return s
  end

  -- cjson escapes strings as JSON wants (and `/` as `\/`, which reads back the same).
  local encode_string = cjson.encode

  local function encode_any(v)
    local t = type(v)
    if t == 'string' then return encode_string(v) end
    if t == 'number' then return encode_number(v) end
    if t == 'boolean' then return tostring(v) end
    if v == NULL then return 'null' end
    local parts = {}
    if is_array(v) then
      for i = 1, #v do parts[i] = encode_any(v[i]) end
      return '[' .. concat(parts, ',') .. ']'
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    sort(keys)
    for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ':' .. encode_any(v[k]) end
    return '{' .. concat(parts, ',') .. '}'
  end

  -- Whether cjson writes `v` as encode_any does: no empty table (cjson writes `{}` for `[]`),
  -- and every number exact in cjson's 14 digits.
  local function cjson_writes(v)
    local t = type(v)
    if t == 'number' then
      if v ~= v or v == huge or v == -huge then return false end
      if v == floor(v) then return v < 1e14 and v > -1e14 end
      return tonumber(format('%.14g', v)) == v
    elseif t == 'table' then
      if next(v) == nil then return false end
      for _, item in pairs(v) do
        if not cjson_writes(item) then return false end
      end
    end
    return true
  end

  local function encode(v)
    if cjson_writes(v) then return cjson.encode(v) end
    return encode_any(v)
  end

  local function equal(a, b)
    if a == b then return true end
    if type(a) ~= 'table' or type(b) ~= 'table' then return false end
    if is_array(a) ~= is_array(b) then return false end
    for k, v in pairs(a) do
      if b[k] == nil or not equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
      if a[k] == nil then return false end
    end
    return true
  end

  -- JSON merge patch (RFC 7386) of `patch` into `doc`; returns the result, reusing `doc`.
  local function merge(doc, patch)
    if not is_object(patch) then return patch end
    if not is_object(doc) then doc = {} end
    for k, v in pairs(patch) do
      if v == NULL then doc[k] = nil else doc[k] = merge(doc[k], v) end
    end
    return doc
  end

  -- Whether merging `patch` into `doc` would change it.
  local function changes(doc, patch)
    if not is_object(patch) then return not equal(doc, patch) end
    if not is_object(doc) then return true end
    for k, v in pairs(patch) do
      if v == NULL then
        if doc[k] ~= nil then return true end
      elseif doc[k] == nil or changes(doc[k], v) then
        return true
      end
    end
    return false
  end

  ---------------------------------------------------------------------------------------------
  -- JSON Schema: the keywords the Rust side lets through (see pushdown.rs), nothing else.

  local function json_type(v)
    if v == NULL then return 'null' end
    local t = type(v)
    if t == 'table' then return is_array(v) and 'array' or 'object' end
    return t
  end

  local function has_type(v, want)
    local got = json_type(v)
    return got == want or (want == 'integer' and got == 'number' and v == floor(v))
  end

  local function utf8_length(s)
    return #string.gsub(s, '[\128-\191]', '')
  end

  -- nil when `v` conforms to `schema`, else "at <pointer>: <problem>".
  local function violation(schema, v, at)
    if schema == true then return nil end
    if schema == false then return 'at ' .. at .. ': no value is allowed here' end
    local problem
    local want = schema.type
    if want ~= nil then
      local ok = false
      if type(want) == 'string' then
        ok = has_type(v, want)
      else
        for _, w in ipairs(want) do ok = ok or has_type(v, w) end
      end
      if not ok then problem = encode(v) .. ' is not of type ' .. encode(want) end
    end
    if not problem and schema.enum ~= nil then
      local found = false
      for _, allowed in ipairs(schema.enum) do found = found or equal(v, allowed) end
      if not found then problem = encode(v) .. ' is not one of ' .. encode(schema.enum) end
    end
    if not problem and schema.const ~= nil and not equal(v, schema.const) then
      problem = encode(schema.const) .. ' was expected'
    end
    local t = json_type(v)
    if not problem and t == 'number' then
      if schema.minimum and v < schema.minimum then problem = encode(v) .. ' is less than the minimum of ' .. encode(schema.minimum)
      elseif schema.maximum and v > schema.maximum then problem = encode(v) .. ' is greater than the maximum of ' .. encode(schema.maximum)
      elseif schema.exclusiveMinimum and v <= schema.exclusiveMinimum then problem = encode(v) .. ' is less than or equal to the minimum of ' .. encode(schema.exclusiveMinimum)
      elseif schema.exclusiveMaximum and v >= schema.exclusiveMaximum then problem = encode(v) .. ' is greater than or equal to the maximum of ' .. encode(schema.exclusiveMaximum)
      end
    elseif not problem and t == 'string' then
      if schema.minLength and utf8_length(v) < schema.minLength then problem = encode(v) .. ' is shorter than ' .. schema.minLength .. ' characters'
      elseif schema.maxLength and utf8_length(v) > schema.maxLength then problem = encode(v) .. ' is longer than ' .. schema.maxLength .. ' characters'
      end
    elseif not problem and t == 'array' then
      if schema.minItems and #v < schema.minItems then problem = 'has fewer than ' .. schema.minItems .. ' items'
      elseif schema.maxItems and #v > schema.maxItems then problem = 'has more than ' .. schema.maxItems .. ' items'
      elseif schema.items ~= nil then
        for i, item in ipairs(v) do
          local inner = violation(schema.items, item, at .. '/' .. (i - 1))
          if inner then return inner end
        end
      end
    elseif not problem and t == 'object' then
      for _, field in ipairs(schema.required or {}) do
        if v[field] == nil then problem = '"' .. field .. '" is a required property'; break end
      end
      if not problem then
        local properties = schema.properties or {}
        for k, item in pairs(v) do
          local inner
          if properties[k] ~= nil then
            inner = violation(properties[k], item, at .. '/' .. k)
          elseif schema.additionalProperties ~= nil then
            inner = violation(schema.additionalProperties, item, at .. '/' .. k)
          end
          if inner then return inner end
        end
      end
    end
    if problem then return 'at ' .. (at == '' and '/' or at) .. ': ' .. problem end
    return nil
  end

  ---------------------------------------------------------------------------------------------
  -- CEL, as the integrator evaluates it (the `cel` crate, every number a double): the
  -- operators generated edges call. A CEL error is a Lua error, caught per edge.

  local C = { NULL = NULL, array = array }

  local function cel_type(v)
    local t = json_type(v)
    if t == 'number' then return 'double' elseif t == 'boolean' then return 'bool' elseif t == 'array' then return 'list' elseif t == 'object' then return 'map' end
    return t
  end

  local function overload(op, a, b)
    error(format('no such overload: %s(%s%s)', op, cel_type(a), b == nil and '' or ', ' .. cel_type(b)), 0)
  end

  function C.select(v, field)
    if not is_object(v) then overload('_._', v) end
    local found = v[field]
    if found == nil then error('No such key: ' .. field, 0) end
    return found
  end

  function C.has(v, field)
    if not is_object(v) then overload('has', v) end
    return v[field] ~= nil
  end

  function C.index(v, i)
    if is_array(v) and type(i) == 'number' then
      local found = v[i + 1]
      if found == nil then error(format('index out of bounds: %d', i), 0) end
      return found
    elseif is_object(v) and type(i) == 'string' then
      return C.select(v, i)
    end
    overload('_[_]', v, i)
  end

  function C.add(a, b)
    local ta, tb = type(a), type(b)
    if ta == 'number' and tb == 'number' then return a + b end
    if ta == 'string' and tb == 'string' then return a .. b end
    if is_array(a) and is_array(b) then
      local out = array({})
      for i = 1, #a do out[i] = a[i] end
      for i = 1, #b do out[#a + i] = b[i] end
      return out
    end
    overload('add', a, b)
  end

  local function arithmetic(op, f)
    return function(a, b)
      if type(a) == 'number' and type(b) == 'number' then return f(a, b) end
      overload(op, a, b)
    end
  end

  C.sub = arithmetic('sub', function(a, b) return a - b end)
  C.mul = arithmetic('mul', function(a, b) return a * b end)
  C.div = arithmetic('div', function(a, b) return a / b end)

  function C.neg(a)
    if type(a) ~= 'number' then overload('-_', a) end
    return -a
  end

  function C.eq(a, b) return equal(a, b) end
  function C.ne(a, b) return not equal(a, b) end

  -- -1, 0, 1: numbers, strings, booleans and nulls compare with their own kind.
  local function compare(op, a, b)
    local ta, tb = type(a), type(b)
    if ta == tb and (ta == 'number' or ta == 'string') then
      if a < b then return -1 elseif a > b then return 1 elseif a == b then return 0 end
    elseif ta == 'boolean' and tb == 'boolean' then
      if a == b then return 0 end
      return a and 1 or -1
    elseif a == NULL and b == NULL then
      return 0
    end
    overload(op, a, b)
  end

  function C.lt(a, b) return compare('_<_', a, b) < 0 end
  function C.le(a, b) return compare('_<=_', a, b) <= 0 end
  function C.gt(a, b) return compare('_>_', a, b) > 0 end
  function C.ge(a, b) return compare('_>=_', a, b) >= 0 end

  function C.not_(a)
    if type(a) ~= 'boolean' then overload('!_', a) end
    return not a
  end

  -- `&&` and `||` as CEL has them: an error on one side is absorbed when the other side
  -- decides the result on its own.
  local function logical(op, decisive)
    return function(left, right)
      local ok, l = pcall(left)
      local known = ok and type(l) == 'boolean'
      if known and l == decisive then return decisive end
      local r = right()
      if type(r) == 'boolean' then
        if known then return r end
        if r == decisive then return decisive end
      end
      if not ok then error(l, 0) end
      overload(op, l, r)
    end
  end

  C.and_ = logical('_&&_', false)
  C.or_ = logical('_||_', true)

  function C.cond(c, yes, no)
    if type(c) ~= 'boolean' then overload('_?_:_', c) end
    if c then return yes() end
    return no()
  end

  -- The value at a plain JSONPath (`$.alias.a[0].b`), or nil when it matches nothing.
  function C.path(v, steps)
    for _, step in ipairs(steps) do
      if type(step) == 'number' then
        if not is_array(v) then return nil end
        v = v[step + 1]
      else
        if not is_object(v) then return nil end
        v = v[step]
      end
      if v == nil then return nil end
    end
    return v
  end

  -- Sets `value` at `path` of the patch, making objects on the way; nil leaves it unset.
  function C.set(patch, path, value)
    if value == nil then return end
    local node = patch
    for i = 1, #path - 1 do
      local next = node[path[i]]
      if not is_object(next) then
        next = {}
        node[path[i]] = next
      end
      node = next
    end
    node[path[#path]] = value
  end

  function C.when(v)
    if type(v) ~= 'boolean' then error('`when` must give a boolean, gave ' .. encode(v), 0) end
    return v
  end

  ---------------------------------------------------------------------------------------------
  -- Writes.

  local function store_keys(store)
    local tag = 'kn:{' .. store .. '}'
    return { tag .. ':data', tag .. ':vers', tag .. ':seq', tag .. ':changes' }
  end

  -- One write to one object: `op` "put" | "del", `expect` "any" | "absent" | "present" | a
  -- version; `stored`, when the caller has read it in this call, the object's stored JSON.
  -- Returns status ("ok", "same", "exists", "missing", "conflict"), version, and for a delete
  -- the data deleted.
  local function write(keys, op, name, json, expect, maxlen, stored)
    local current = redis.call('HGET', keys[2], name)
    if expect == 'absent' then
      if current then return 'exists', tonumber(current), '' end
    elseif expect == 'present' or (expect == 'any' and op == 'del') then
      if not current then return 'missing', -1, '' end
    elseif expect ~= 'any' then
      if current ~= expect then return 'conflict', tonumber(current) or -1, '' end
    end
    local old = current and (stored or redis.call('HGET', keys[1], name))
    if op == 'put' and old == json then return 'same', tonumber(current), '' end
    local version = redis.call('INCR', keys[3])
    local id = version .. '-0'
    if op == 'del' then
      redis.call('HDEL', keys[1], name)
      redis.call('HDEL', keys[2], name)
      redis.call('XADD', keys[4], 'MAXLEN', maxlen, id, 'kind', 'Deleted', 'name', name, 'data', old)
      return 'ok', version, old
    end
    redis.call('HSET', keys[1], name, json)
    redis.call('HSET', keys[2], name, version)
    local kind = current and 'Modified' or 'Added'
    redis.call('XADD', keys[4], 'MAXLEN', maxlen, id, 'kind', kind, 'name', name, 'data', json)
    return 'ok', version, ''
  end

  ---------------------------------------------------------------------------------------------
  -- Pushed-down edges, by the stores whose writes run them: {edge, the alias of that store}.

  local EDGES = {}
  -- How deep a chain of edges may run inside one write.
  local MAX_DEPTH = 16

  local function edge(e)
    e.schema = decode(e.schema)
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
      if status == 'ok' then run_edges(e.target, target, decode(old), true, maxlen, depth + 1, failures) end
      return
    end
    local patch = e.patch(name, b)
    if patch == nil then return end
    local json = redis.call('HGET', keys[1], target)
    local doc = json and decode(json) or {}
    if json and not changes(doc, patch) then return end
    doc = merge(doc, patch)
    local problem = violation(e.schema, doc, '')
    if problem then error(format('%s/%s breaks its schema %s', e.target, target, problem), 0) end
    local status = write(keys, 'put', target, encode(doc), 'any', maxlen, json)
    if status == 'ok' then run_edges(e.target, target, doc, false, maxlen, depth + 1, failures) end
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

local kn_write
redis.register_function('kn_write', function(keys, args)
  kn_write = kn_write or init()
  return kn_write(keys, args)
end)
