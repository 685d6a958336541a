//! The Lua scripts that keep every write atomic (ingest: the batch-id
//! check, then every merge; seal: a delta renamed to a snapshot), and
//! [`Ops`], which builds the ingest script's keys and operations; bucket
//! statistics become hash-field increments here.

use crate::model::BucketStats;
use std::collections::HashMap;

/// The ingest script: an optional batch-id check, then a list of
/// operations `(op, key index, a, b)`. Atomic: nothing is written for a
/// duplicate, and no reader sees half a write.
pub(super) const INGEST_LUA: &str = r#"
if ARGV[1] ~= '' then
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local i = 3
while i <= #ARGV do
  local op, k, a, b = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'i' then
    redis.call('HINCRBY', k, a, b)
  elseif op == 'f' then
    local cur = tonumber(redis.call('HGET', k, a) or '0')
    redis.call('HSET', k, a, string.format('%.17g', cur + tonumber(b)))
  elseif op == 'm' then
    local cur = redis.call('HGET', k, a)
    if (not cur) or tonumber(cur) < tonumber(b) then redis.call('HSET', k, a, b) end
  elseif op == 'n' then
    local cur = redis.call('HGET', k, a)
    if (not cur) or tonumber(cur) > tonumber(b) then redis.call('HSET', k, a, b) end
  elseif op == 'L' then
    local t, v, kind = string.match(b, '^(%S+) (%S+) (%S+)$')
    local cur = redis.call('HGET', k, a .. 't')
    if (not cur) or tonumber(cur) <= tonumber(t) then
      redis.call('HSET', k, a .. 't', t, a .. 'v', v, a .. 'k', kind)
    end
  elseif op == 's' then
    redis.call('HSET', k, a, b)
  elseif op == 'z' then
    redis.call('ZADD', k, a, b)
  elseif op == 'l' then
    redis.call('RPUSH', k, a)
  elseif op == 'x' then
    local cur = redis.call('PEXPIRETIME', k)
    if cur == -1 or cur < tonumber(a) then redis.call('PEXPIREAT', k, a) end
  elseif op == 'r' then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. a)
    redis.call('ZREMRANGEBYRANK', k, 0, -tonumber(b) - 1)
  end
  i = i + 4
end
return 1
"#;

/// Seals one delta: KEYS = delta, its samples, snapshot, its samples,
/// dirty set, sealed set; ARGV = delta name, now, snapshot id.
pub(super) const SEAL_LUA: &str = r#"
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
return 1
"#;

/// Collects the script's keys and operations.
#[derive(Default)]
pub(super) struct Ops {
    pub(super) keys: Vec<String>,
    index: HashMap<String, usize>,
    pub(super) args: Vec<String>,
}

impl Ops {
    pub(super) fn key(&mut self, k: String) -> usize {
        if let Some(i) = self.index.get(&k) {
            return *i;
        }
        self.keys.push(k.clone());
        let i = self.keys.len();
        self.index.insert(k, i);
        i
    }
    pub(super) fn op(&mut self, op: &str, key: usize, a: impl ToString, b: impl ToString) {
        self.args.push(op.into());
        self.args.push(key.to_string());
        self.args.push(a.to_string());
        self.args.push(b.to_string());
    }
    /// Adds one series' statistics into hash `key`, fields prefixed `prefix`.
    pub(super) fn add_stats(&mut self, key: usize, prefix: &str, s: &BucketStats) {
        for (stat, v) in [
            ("c", s.count),
            ("e", s.errors),
            ("s", s.satisfied),
            ("t", s.tolerating),
            ("z", s.duration_ms.zero_count()),
        ] {
            if v > 0 || stat == "c" {
                self.op("i", key, format!("{prefix}{stat}"), v);
            }
        }
        self.op("f", key, format!("{prefix}S"), s.duration_ms.sum());
        self.op("m", key, format!("{prefix}l"), s.last_seen_ms);
        for (i, c) in s.duration_ms.buckets() {
            self.op("i", key, format!("{prefix}b{i}"), c);
        }
    }
}
