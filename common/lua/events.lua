-- Included first by every script that appends to the activity log
-- (`-- @include common/lua/events.lua`; common/events.hpp).
--
-- KEYS[#KEYS]      ps:events, the activity log stream
-- ARGV[#ARGV - 1]  the stream's cap (XADD MAXLEN ~)
-- ARGV[#ARGV]      now, ms
--
-- Defines for the script after it:
--   EV_NOW                the time, a number (ms)
--   EV                    the entries appended so far, each {id, type, ts, data}
--   emit(type, fields)    appends one entry: data is cmsgpack.pack(fields),
--                         without any field called `type`; the script returns
--                         EV in its reply so that the worker publishes them
local EV_STREAM = KEYS[#KEYS]
local EV_CAP = ARGV[#ARGV - 1]
local EV_NOW = tonumber(ARGV[#ARGV])
local EV = {}
local function emit(etype, fields)
  fields['type'] = nil
  local data = cmsgpack.pack(fields)
  local id = redis.call('XADD', EV_STREAM, 'MAXLEN', '~', EV_CAP, '*',
                        'type', etype, 'ts', EV_NOW, 'data', data)
  EV[#EV + 1] = {id, etype, EV_NOW, data}
end
