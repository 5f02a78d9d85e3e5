-- The `knactor` Redis Functions library: `kn_write`, the one write of every object, the Cast
-- edges pushed down into it, and `kn_append`, the one append of every Log store's records.
-- Generated edges are appended where `@EDGES@` stands.
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

