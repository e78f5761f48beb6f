-- The license reserved for a computer.
--
-- KEYS[1]  ps:res   zset of "NAME:LICENSE"
-- ARGV[1]  NAME
-- Returns  the license, or nil.
-- @include licensed/lua/includes/license_of.lua
return license_of(KEYS[1], ARGV[1])
