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
