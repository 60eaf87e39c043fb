//! The Lua scripts, each run with `EVALSHA` (falling back on `EVAL` after `NOSCRIPT`).
//!
//! A key holds `p:<owner>` while its id is in progress (expiring with the lease) and `c`
//! once completed (expiring with the retention). An expired key is absent: Redis never
//! returns it, so "the lease has not expired" is the key's own TTL.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]`: the id's key; `ARGV[1]`: `p:<owner>`; `ARGV[2]`: the lease in ms.
/// Returns 0 (claimed), 1 (in progress) or 2 (completed).
///
/// `SET NX PX` claims an absent (or expired) key; when it fails, the `GET` in the same
/// atomic script tells in progress from completed, so a claim is one round trip.
const CLAIM_LUA: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
if redis.call('GET', KEYS[1]) == 'c' then
  return 2
end
return 1
";

/// `KEYS[1]`: the id's key; `ARGV[1]`: `p:<owner>`; `ARGV[2]`: the retention in ms.
/// Returns 1 when the owner's unexpired claim was completed, else 0.
const COMPLETE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], 'c', 'PX', ARGV[2])
  return 1
end
return 0
";

/// `KEYS[1]`: the id's key; `ARGV[1]`: `p:<owner>`.
/// Returns 1 when the owner's unexpired claim was released, else 0.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// `KEYS[1]`: the id's key. Returns `{state, pttl}`: state 0 (absent), 1 (in progress) or
/// 2 (completed), and the key's time to live in ms (0 when absent). Read-only.
const INSPECT_LUA: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then
  return {0, 0}
end
local ttl = redis.call('PTTL', KEYS[1])
if value == 'c' then
  return {2, ttl}
end
return {1, ttl}
";

/// `KEYS[1]`: the id's key. Frees it when it is in progress (`p:…`), whoever holds it.
/// Returns 1 when freed, else 0 (absent or completed).
const FORCE_RELEASE_LUA: &str = r"
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 2) == 'p:' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// A script's body and its SHA-1.
pub(crate) struct Lua {
    pub(crate) body: &'static str,
    script: LazyLock<Script>,
}

impl Lua {
    const fn new(body: &'static str, init: fn() -> Script) -> Self {
        Self {
            body,
            script: LazyLock::new(init),
        }
    }

    pub(crate) fn hash(&self) -> &str {
        self.script.get_hash()
    }
}

pub(crate) static CLAIM: Lua = Lua::new(CLAIM_LUA, || Script::new(CLAIM_LUA));
pub(crate) static COMPLETE: Lua = Lua::new(COMPLETE_LUA, || Script::new(COMPLETE_LUA));
pub(crate) static RELEASE: Lua = Lua::new(RELEASE_LUA, || Script::new(RELEASE_LUA));
pub(crate) static INSPECT: Lua = Lua::new(INSPECT_LUA, || Script::new(INSPECT_LUA));
pub(crate) static FORCE_RELEASE: Lua =
    Lua::new(FORCE_RELEASE_LUA, || Script::new(FORCE_RELEASE_LUA));
