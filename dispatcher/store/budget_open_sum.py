"""A key's open sessions counted, and their starts summed, as they open and close: a budgeted key's
admission reads a few fields instead of the key's whole open-sessions hash.

Every script that puts a session in the hash or takes one out moves the kept record
(`budget:open-sum:<key>`) in the same step. The starts are kept as whole milliseconds after a
base, with `HINCRBY`: adding and taking back the same session always cancel, so the sum never drifts
by rounding, and its size stays far within a double's exact integers. A record that is absent
(a store written before it was kept), whose count is not the hash's length (a replica of the
previous version opened or closed meanwhile), or last checked `RECONCILE_SECONDS` ago is computed
again from the hash, once, in the script that reads it. docs/performance.md has the figures.
"""

from __future__ import annotations

# A replica of the previous version that opens one session and closes another keeps the count: what
# the length check cannot see is found by this time, at the cost of one pass over the hash.
RECONCILE_SECONDS = 600

# Lua functions. `open_moved`: before a change of `session` in the open hash `open` to `start`
# (false: taken out), the kept record `kept` follows it (nothing while there is none: it is computed
# when next read). `open_sum`: the count and the starts' sum (epoch seconds) at `at`, computed from
# the hash when the record cannot be trusted (then kept `keep` ms).
OPEN_SUM_FUNCTIONS = """
local function start_ms(start)
  return math.floor((tonumber(start) or 0) * 1000 + 0.5)
end
local function open_moved(open, kept, session, start)
  local base = redis.call('HGET', kept, 'base')
  if not base then return end
  base = tonumber(base)
  local old = redis.call('HGET', open, session)
  if old then
    redis.call('HINCRBY', kept, 'count', -1)
    redis.call('HINCRBY', kept, 'since', string.format('%.0f', base - start_ms(old)))
  end
  if start then
    redis.call('HINCRBY', kept, 'count', 1)
    redis.call('HINCRBY', kept, 'since', string.format('%.0f', start_ms(start) - base))
  end
end
local function open_sum(open, kept, at, reconcile, keep)
  local found = redis.call('HGET', kept, 'count')
  local checked = tonumber(redis.call('HGET', kept, 'checked') or '0') or 0
  if found and tonumber(found) == redis.call('HLEN', open) and at - checked < reconcile then
    local count = tonumber(found)
    local base = tonumber(redis.call('HGET', kept, 'base'))
    local since = tonumber(redis.call('HGET', kept, 'since'))
    return count, (count * base + since) / 1000
  end
  local all = redis.call('HGETALL', open)
  local base = start_ms(all[2] or at)  -- a start: a read may ask at 0
  local count, since = 0, 0
  for j = 2, #all, 2 do
    count = count + 1
    since = since + start_ms(all[j]) - base
  end
  redis.call('DEL', kept)
  redis.call('HSET', kept, 'count', count, 'base', string.format('%.0f', base),
             'since', string.format('%.0f', since), 'checked', string.format('%.3f', at))
  redis.call('PEXPIRE', kept, keep)
  return count, (count * base + since) / 1000
end
"""
