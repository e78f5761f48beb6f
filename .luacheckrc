-- luacheck for the Redis scripts, */lua/*.lua. ctest runs it (LuaCheck) on
-- the scripts as Redis gets them, their includes in place, as
-- cmake/EmbedLua.cmake writes them under build/generated; by hand:
--   luacheck --config .luacheckrc build/generated/*/lua/*.lua

-- Redis runs Lua 5.1 with these libraries, all read-only; a script cannot
-- make globals, so none is allowed here either.
stds.redis = {
  read_globals = {
    "redis", "KEYS", "ARGV",
    "cjson", "cmsgpack", "struct", "bit",
  },
}
std = "lua51+redis"
allow_defined = false
allow_defined_top = false
max_line_length = 120
