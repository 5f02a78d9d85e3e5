  ---------------------------------------------------------------------------------------------
  -- JSON Schema: the keywords `checkable_in_lua` (conforms.rs) lets through, nothing else.

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

