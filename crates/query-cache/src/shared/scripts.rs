//! The Lua scripts that make each tier operation atomic inside Redis.
//!
//! Key layout under the prefix `P` (`E` is the current epoch, a random token):
//!
//! | key | holds |
//! | --- | --- |
//! | `P:epoch` | the epoch; replaced by "invalidate all", created by the first read |
//! | `P:v:E:{key}` | a value envelope, with the entry's TTL |
//! | `P:tk:E:{tag}` | the set of keys stored with `tag` (expires with its longest member; each write also drops up to two members whose value is gone) |
//! | `P:kg:{key}` | the key's generation, bumped by key invalidations |
//! | `P:tg:{tag}` | the tag's generation, bumped by tag invalidations |
//! | `P:pg` | the prefix generation, bumped by every prefix invalidation |
//! | channel `P:invalidations` | invalidation messages |
//!
//! A load reads the value and, in the same script, the generations it depends on (epoch,
//! prefix generation, its key's and its tags' generations). Its value is written only by
//! [`WRITE`], which compares them first: if any moved, some instance invalidated what the
//! loader may have read, and the write is refused. Invalidations bump the generations and
//! delete the values they cover in one script, so a value is either written before an
//! invalidation (and deleted by it) or refused after it. The epoch being a random token,
//! a Redis that restarted empty never matches a snapshot taken before the restart.

use std::sync::LazyLock;

use redis::Script;

/// `ARGV`: prefix, key, a fresh epoch token (used if there is no epoch yet), tags…
/// Returns `{value or nil, remaining TTL in ms (-2 when absent), {epoch, pg, kg, tg…}}`.
pub(crate) static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, key = ARGV[1], ARGV[2]
local epoch = redis.call('GET', p .. ':epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', p .. ':epoch', epoch)
end
local vkey = p .. ':v:' .. epoch .. ':' .. key
local value = redis.call('GET', vkey)
local ttl = -2
if value then ttl = redis.call('PTTL', vkey) end
local gens = {epoch, redis.call('GET', p .. ':pg') or '0', redis.call('GET', p .. ':kg:' .. key) or '0'}
for i = 4, #ARGV do
  gens[#gens + 1] = redis.call('GET', p .. ':tg:' .. ARGV[i]) or '0'
end
return {value, ttl, gens}
",
    )
});

/// `ARGV`: prefix, key, value, TTL in ms, tag count n, n tags, then the generations
/// returned by [`READ`] for the same tags. Returns 1 if stored, 0 if refused.
pub(crate) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, key, value, ttl, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local g = 5 + n
local epoch = ARGV[g + 1]
if redis.call('GET', p .. ':epoch') ~= epoch then return 0 end
if (redis.call('GET', p .. ':pg') or '0') ~= ARGV[g + 2] then return 0 end
if (redis.call('GET', p .. ':kg:' .. key) or '0') ~= ARGV[g + 3] then return 0 end
for i = 1, n do
  if (redis.call('GET', p .. ':tg:' .. ARGV[5 + i]) or '0') ~= ARGV[g + 3 + i] then return 0 end
end
redis.call('SET', p .. ':v:' .. epoch .. ':' .. key, value, 'PX', ttl)
for i = 1, n do
  local set = p .. ':tk:' .. epoch .. ':' .. ARGV[5 + i]
  redis.call('SADD', set, key)
  if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
  -- A set of a tag that is rarely invalidated outlives its members' values: drop up to
  -- two members whose value is gone, so that it stays within twice its live members.
  for _, member in ipairs(redis.call('SRANDMEMBER', set, 2)) do
    if redis.call('EXISTS', p .. ':v:' .. epoch .. ':' .. member) == 0 then
      redis.call('SREM', set, member)
    end
  end
end
return 1
",
    )
});

/// `ARGV`: prefix, the prefix glob-escaped, generation retention in ms, channel, message,
/// then operations as pairs: `k key`, `t tag`, `p glob-escaped-key-prefix`, `a new-epoch`. Applies them in order,
/// publishes the message, and returns how many subscribers received it followed by the
/// epochs replaced by `a` (their keys are unreachable; the caller deletes them at leisure).
pub(crate) static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, glob, retention = ARGV[1], ARGV[2], ARGV[3]
local epoch = redis.call('GET', p .. ':epoch')
local replaced = {}
local function unlink(keys)
  for i = 1, #keys, 500 do
    redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
  end
end
local function bump(gen)
  redis.call('INCR', gen)
  redis.call('PEXPIRE', gen, retention)
end
for i = 6, #ARGV, 2 do
  local kind, arg = ARGV[i], ARGV[i + 1]
  if kind == 'k' then
    bump(p .. ':kg:' .. arg)
    if epoch then redis.call('UNLINK', p .. ':v:' .. epoch .. ':' .. arg) end
  elseif kind == 't' then
    bump(p .. ':tg:' .. arg)
    if epoch then
      local set = p .. ':tk:' .. epoch .. ':' .. arg
      local keys = {}
      for j, member in ipairs(redis.call('SMEMBERS', set)) do
        keys[j] = p .. ':v:' .. epoch .. ':' .. member
      end
      keys[#keys + 1] = set
      unlink(keys)
    end
  elseif kind == 'p' then
    redis.call('INCR', p .. ':pg')
    if epoch then
      local cursor = '0'
      repeat
        local page = redis.call('SCAN', cursor, 'MATCH', glob .. ':v:' .. epoch .. ':' .. arg .. '*', 'COUNT', 1000)
        cursor = page[1]
        unlink(page[2])
      until cursor == '0'
    end
  elseif kind == 'a' then
    if epoch then replaced[#replaced + 1] = epoch end
    redis.call('SET', p .. ':epoch', arg)
    epoch = arg
  end
end
local receivers = redis.call('PUBLISH', ARGV[4], ARGV[5])
table.insert(replaced, 1, tostring(receivers))
return replaced
",
    )
});
