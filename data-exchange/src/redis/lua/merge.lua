
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

