"""The one way a sorted set of due entries (scored by when each is due, epoch seconds) is claimed across
replicas: the due members are moved a claim ahead in one script, so one replica holds each at a time and a
replica that dies holding one only delays it by the claim (the WhatsApp hang-ups owed, store/whatsapp_book.py;
the machine ends handed over, store/handed_over_ends.py). Only commands the stack's store user is granted."""

# KEYS: the sorted set. ARGV: now, the claim's end, how many at most. Returns the claimed members.
CLAIM_DUE = """
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""
