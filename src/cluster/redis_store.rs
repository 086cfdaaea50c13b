//! [`Store`] on a Redis server, over one blocking connection with timeouts (the control
//! thread's). After a failure the connection is dropped and not tried again for
//! [`RETRY`](super::leases::RETRY): meanwhile every call fails at once, so lookups fall back
//! without waiting on a dead server.

use std::time::{Duration, Instant};

use super::leases::{Store, StoreError, RETRY};

/// Sets the key if absent or already ours, with its expiry; returns the value held after.
const HOLD: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return v
";

/// Deletes the key if it is ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The directory in Redis.
pub struct RedisStore {
    client: redis::Client,
    timeout: Duration,
    conn: Option<redis::Connection>,
    retry_at: Option<Instant>,
    hold: redis::Script,
    release: redis::Script,
}

impl RedisStore {
    /// A store on `url` (not connected until first used).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(e.to_string()))?;
        Ok(Self {
            client,
            timeout,
            conn: None,
            retry_at: None,
            hold: redis::Script::new(HOLD),
            release: redis::Script::new(RELEASE),
        })
    }

    /// Whether the last call reached the server.
    pub fn is_up(&self) -> bool {
        self.retry_at.is_none()
    }

    /// Runs `f` on the connection, connecting first if needed; a failure drops the
    /// connection until the retry time.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection, &Self) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            return Err(StoreError("unreachable (retrying in at most 1 s)".into()));
        }
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect().inspect_err(|_| self.failed(now))?,
        };
        match f(&mut conn, self) {
            Ok(value) => {
                self.conn = Some(conn);
                self.retry_at = None;
                Ok(value)
            }
            Err(error) => {
                self.failed(now);
                Err(StoreError(error.to_string()))
            }
        }
    }

    fn connect(&self) -> Result<redis::Connection, StoreError> {
        let error = |e: redis::RedisError| StoreError(e.to_string());
        let conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(error)?;
        conn.set_read_timeout(Some(self.timeout)).map_err(error)?;
        conn.set_write_timeout(Some(self.timeout)).map_err(error)?;
        Ok(conn)
    }

    fn failed(&mut self, now: Instant) {
        self.conn = None;
        self.retry_at = Some(now + RETRY);
    }
}

impl RedisStore {
    /// Writes this origin's load under `node_key` for `ttl` and adds `advertise` to the
    /// set of origins `set_key`.
    pub fn beat(
        &mut self,
        set_key: &str,
        node_key: &str,
        advertise: &str,
        load: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.with(|conn, _| {
            redis::pipe()
                .cmd("SET")
                .arg(node_key)
                .arg(load)
                .arg("PX")
                .arg(millis(ttl))
                .ignore()
                .cmd("SADD")
                .arg(set_key)
                .arg(advertise)
                .ignore()
                .query::<()>(conn)
        })
    }

    /// The origins in the set `set_key` whose load key (`node_prefix` + URL) is still there,
    /// with that load; the others (expired: the origin died) are removed from the set.
    pub fn nodes(
        &mut self,
        set_key: &str,
        node_prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|conn, _| {
            let urls: Vec<String> = redis::cmd("SMEMBERS").arg(set_key).query(conn)?;
            if urls.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = urls.iter().map(|u| format!("{node_prefix}{u}")).collect();
            let loads: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(conn)?;
            let mut live = Vec::new();
            for (url, load) in urls.into_iter().zip(loads) {
                match load {
                    Some(load) => live.push((url, load)),
                    None => redis::cmd("SREM")
                        .arg(set_key)
                        .arg(&url)
                        .query::<()>(conn)?,
                }
            }
            Ok(live)
        })
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

impl Store for RedisStore {
    fn hold(&mut self, key: &str, value: &str, ttl: Duration) -> Result<String, StoreError> {
        self.with(|conn, me| {
            me.hold
                .key(key)
                .arg(value)
                .arg(millis(ttl))
                .invoke::<String>(conn)
        })
    }

    fn take(&mut self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(|conn, _| {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .query::<()>(conn)
        })
    }

    fn release(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|conn, me| me.release.key(key).arg(value).invoke::<i64>(conn))
            .map(drop)
    }

    fn get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|conn, _| redis::cmd("GET").arg(key).query::<Option<String>>(conn))
    }
}
