"""A pace's turn given back (a call cancelled while it waited for it), in the store, in one script each.

A granted turn is recorded under its call's ticket (`create-given:<name>`, ticket → due, on the store's
clock, until it is due). Given back while still to come, it is the bucket's last turn (its arrival time
steps back) or a hole (`create-free:<name>`, sorted by due), which the next call to ask takes before the
bucket's next turn: so every turn keeps its distance from the others, and the call behind a cancelled one
goes at the cancelled one's turn. A queued call's place leaves its key's queue. What a replica that died
mid-cancel left runs out by itself: a place at its call's longest wait, a turn once it is due (docs/phone.md,
"A cancelled call"). `TAKE_HOLE` and `RECORD_GIVEN` are Lua functions the taking scripts (rates.py) begin with.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""

# The earliest turn given back still to come, taken, where it is due within `longest` (ms): its due, or nil.
TAKE_HOLE = """
local function take_hole(holes, now, longest)
  redis.call('ZREMRANGEBYSCORE', holes, '-inf', '(' .. now)
  local first = redis.call('ZRANGE', holes, 0, 0, 'WITHSCORES')
  if #first == 0 or tonumber(first[2]) - now > longest then return nil end
  redis.call('ZREM', holes, first[1])
  return tonumber(first[2])
end
"""

# A granted turn recorded under its call's ticket, so the call can give it back; passed turns dropped.
RECORD_GIVEN = """
local function record_given(given, ticket, due, now)
  if ticket == '' then return end
  local last = due
  local all = redis.call('HGETALL', given)
  for i = 1, #all, 2 do
    local d = tonumber(all[i + 1])
    if d <= now then redis.call('HDEL', given, all[i]) elseif d > last then last = d end
  end
  redis.call('HSET', given, ticket, due)
  redis.call('PEXPIRE', given, math.max(1, last - now + 1))
end
"""

# A turn due at `due` (> now) freed: the bucket's last steps its arrival time back (and past the holes
# just before it), any other becomes a hole.
_FREE = """
local function free(bucket, holes, due, now, interval, burst)
  local tat = tonumber(redis.call('GET', bucket) or now)
  if due + burst * interval ~= tat then
    redis.call('ZADD', holes, due, string.format('%d', due))
    local last = redis.call('ZRANGE', holes, -1, -1, 'WITHSCORES')
    redis.call('PEXPIRE', holes, tonumber(last[2]) - now + 1)
    return
  end
  tat = tat - interval
  -- each step takes one hole: at most as many steps as holes
  for _ = 1, redis.call('ZCARD', holes) do
    if redis.call('ZREM', holes, string.format('%d', tat - burst * interval)) == 0 then break end
    tat = tat - interval
  end
  if tat > now then redis.call('SET', bucket, tat, 'PX', tat - now) else redis.call('DEL', bucket) end
end
"""

# KEYS: the bucket, its holders' hash, the holder's queue, the given turns, the holes.
# ARGV: interval (ms), burst, the holder ('' for none), the call's ticket. Returns 1 where a turn was freed.
GIVE_BACK = _NOW + _FREE + """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[4]) end
local due = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or -1)
redis.call('HDEL', KEYS[4], ARGV[4])
if due <= now then return 0 end
if ARGV[3] ~= '' and tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or -1) == due then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
free(KEYS[1], KEYS[5], due, now, interval, burst)
return 1
"""

# KEYS: the bucket, the turn's record (`turn_of`), the holes. ARGV: interval (ms), burst.
GIVE_BACK_TURN = _NOW + _FREE + """
local due = tonumber(redis.call('GET', KEYS[2]) or -1)
redis.call('DEL', KEYS[2])
if due <= now then return 0 end
free(KEYS[1], KEYS[3], due, now, tonumber(ARGV[1]), tonumber(ARGV[2]))
return 1
"""
