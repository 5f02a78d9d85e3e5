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

