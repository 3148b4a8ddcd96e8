/**
 * Lua scripts run by the Redis engine. Each one touches only keys of one
 * channel (one hash tag), so it runs unchanged on Redis Cluster. Scripts
 * are sent with EVALSHA and fall back to EVAL after NOSCRIPT (a restarted
 * Redis), which ioredis does for commands made with defineCommand.
 *
 * Messages on a channel's pub/sub channel are lines separated by "\n":
 *   p, epoch, offset, time, channel, data   (a publication)
 *   j or l, channel, entry JSON             (a presence join or leave)
 * Data is compact JSON text, which has no raw newline, and it comes last
 * so that it is never split.
 */

/**
 * Publishes one event atomically: checks the idempotency key, creates the
 * epoch when the channel has no meta, assigns the next offset, appends to
 * the history stream with its size cap and TTL, refreshes the meta TTL,
 * remembers the idempotency key, and fans the event out to the nodes.
 *
 * KEYS: meta, history, idempotency key (unused when ARGV[8] is "0").
 * ARGV: events channel, data, time ms, history size, history TTL ms, meta
 * TTL ms, idempotency window ms, "1" to use the idempotency key, epoch for
 * a new history, publish command (PUBLISH or SPUBLISH), channel name.
 * Returns {epoch, offset, time, duplicate (0 or 1)}.
 */
export const PUBLISH_SCRIPT = `
local useKey = ARGV[8] == '1'
if useKey then
  local first = redis.call('GET', KEYS[3])
  if first then
    local epoch, offset, time = string.match(first, '^([^:]+):(%d+):(%d+)$')
    return {epoch, tonumber(offset), tonumber(time), 1}
  end
end

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[9]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)

local size = tonumber(ARGV[4])
if size > 0 and tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 'd', ARGV[2], 't', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
else
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])

if useKey then
  redis.call('SET', KEYS[3], epoch .. ':' .. offset .. ':' .. ARGV[3], 'PX', ARGV[7])
end
redis.call(ARGV[10], ARGV[1], 'p\\n' .. epoch .. '\\n' .. offset .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[11] .. '\\n' .. ARGV[2])
return {epoch, offset, tonumber(ARGV[3]), 0}
`;

/**
 * Reads a channel's position and the kept events after `since`. A channel
 * without meta gets one here, with a new epoch and top 0, so a subscriber
 * of a fresh channel and the first publish agree on the epoch. Meta that
 * only reads created lives for the short unpublished TTL, so reads of
 * made-up names leave nothing behind for long. Nodes renew it for channels
 * they subscribe to. Reading a published channel extends its meta to the
 * full meta TTL. Both extend, never shorten.
 *
 * KEYS: meta, history. ARGV: since, limit, epoch for a new history, meta
 * TTL ms, unpublished meta TTL ms.
 * Returns {epoch, top, earliest, entries} with entries as XRANGE returns them.
 */
export const HISTORY_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local top = 0
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
else
  top = tonumber(redis.call('HGET', KEYS[1], 'top'))
end
local ttl = tonumber(ARGV[4])
if top == 0 then
  ttl = tonumber(ARGV[5])
end
-- Extend, never shorten: a publish may have set a longer TTL (the history's).
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end

local earliest = top + 1
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first > 0 then
  earliest = tonumber(string.match(first[1][1], '^(%d+)'))
end

local entries = {}
local limit = tonumber(ARGV[2])
local start = math.max(tonumber(ARGV[1]) + 1, earliest)
if limit > 0 and start <= top then
  entries = redis.call('XRANGE', KEYS[2], start .. '-0', '+', 'COUNT', limit)
end
return {epoch, top, earliest, entries}
`;

/**
 * Shared Lua: removes presence entries that expired before ARGV[1] and
 * announces a leave for each. Expects KEYS[1] (sorted set), KEYS[2] (entry
 * hash), ARGV[1] now ms, and `announce(kind, json)`.
 */
const EXPIRE_PRESENCE = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, client in ipairs(expired) do
  local entry = redis.call('HGET', KEYS[2], client)
  redis.call('ZREM', KEYS[1], client)
  redis.call('HDEL', KEYS[2], client)
  if entry then announce('l', entry) end
end
`;

/** Shared Lua: `announce(kind, json)` publishes a presence event. Expects ARGV[2] events channel, ARGV[3] publish command, ARGV[4] channel. */
const ANNOUNCE = `
local function announce(kind, entry)
  redis.call(ARGV[3], ARGV[2], kind .. '\\n' .. ARGV[4] .. '\\n' .. entry)
end
`;

/**
 * Adds or refreshes a presence entry; announces a join when it is new.
 * KEYS: presence set, entry hash. ARGV: now ms, events channel, publish
 * command, channel, client id, entry JSON, TTL ms.
 */
export const PRESENCE_ADD_SCRIPT = `${ANNOUNCE}${EXPIRE_PRESENCE}
local expiresAt = tonumber(ARGV[1]) + tonumber(ARGV[7])
local added = redis.call('ZADD', KEYS[1], expiresAt, ARGV[5])
redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
local keep = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl = math.max(tonumber(keep[2]) - tonumber(ARGV[1]), 1)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if added == 1 then announce('j', ARGV[6]) end
return added
`;

/**
 * Removes a presence entry; announces a leave when it existed.
 * KEYS: presence set, entry hash. ARGV: now ms, events channel, publish
 * command, channel, client id.
 */
export const PRESENCE_REMOVE_SCRIPT = `${ANNOUNCE}${EXPIRE_PRESENCE}
local entry = redis.call('HGET', KEYS[2], ARGV[5])
redis.call('ZREM', KEYS[1], ARGV[5])
redis.call('HDEL', KEYS[2], ARGV[5])
if entry then announce('l', entry) end
return entry and 1 or 0
`;

/**
 * Lists the live presence entries after removing expired ones.
 * KEYS: presence set, entry hash. ARGV: now ms, events channel, publish
 * command, channel. Returns the entries as JSON texts.
 */
export const PRESENCE_LIST_SCRIPT = `${ANNOUNCE}${EXPIRE_PRESENCE}
local clients = redis.call('ZRANGE', KEYS[1], 0, -1)
if #clients == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(clients))
`;

/**
 * Registers or refreshes a node and drops nodes whose heartbeat lapsed.
 * KEYS: node set, node info hash. ARGV: now ms, node id, info JSON, TTL ms.
 */
export const NODE_REGISTER_SCRIPT = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, node in ipairs(expired) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('HDEL', KEYS[2], node)
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[4]), ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`;

/**
 * Lists the nodes whose heartbeat has not lapsed.
 * KEYS: node set, node info hash. ARGV: now ms. Returns info JSON texts.
 */
export const NODE_LIST_SCRIPT = `
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
if #nodes == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(nodes))
`;
