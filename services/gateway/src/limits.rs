//! Rate limits per caller and route class, by the generic cell rate algorithm (GCRA): each key
//! keeps one number, its theoretical arrival time (TAT); a request is admitted when admitting
//! it would not put the TAT more than `burst` intervals ahead of now, and then moves the TAT one
//! interval (`1 / rate`) on. It allows `burst` requests at once and `rate` per second
//! sustained, with no background refill and no per-window counters.
//!
//! Keys are `<who>-<class>:<principal>`: the token's subject for a caller with a valid token,
//! the client address otherwise (an IPv6 address by its /64, which one host usually holds
//! whole). Without `REDIS_URL` the state lives in this process; with it, every gateway replica
//! shares it through one atomic Lua script on Redis (Redis's clock, so replicas' clocks need not
//! agree). When Redis fails or is slow, the decision is made in process, and
//! `gateway_rate_limit_fallbacks_total` counts it; Redis is tried again after a second.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::access::Class;

/// Who is calling, as far as limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// No valid token: limited per client address.
    Anonymous,
    /// A person's token (a role such as `customer` or `admin`).
    Person,
    /// A machine client's token (scopes only), such as the importer or a load test.
    Client,
}

impl Who {
    pub const ALL: [Who; 3] = [Who::Anonymous, Who::Person, Who::Client];

    pub fn name(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Person => "person",
            Who::Client => "client",
        }
    }
}

/// A sustained rate and the burst allowed on top of an idle period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    pub fn new(per_second: f64, burst: u32) -> Rate {
        Rate {
            per_second,
            burst: burst.max(1),
        }
    }

    /// Microseconds between two requests at the sustained rate.
    fn interval_us(self) -> i64 {
        ((1e6 / self.per_second).round() as i64).max(1)
    }

    /// Seconds an idle key takes to regain its whole burst.
    fn window_secs(self) -> u64 {
        (f64::from(self.burst) / self.per_second).ceil().max(1.0) as u64
    }

    /// `100/s`, `6000/min` or `10/h`, optionally `:BURST` (default: one second's worth).
    fn parse(text: &str) -> Result<Rate, String> {
        let (rate, burst) = match text.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let (count, unit) = rate
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: expected COUNT/s, /min or /h"))?;
        let count: f64 = count
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {count:?} is not a number"))?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("{text:?}: unknown unit {other:?} (s, min or h)")),
        };
        if !(count.is_finite() && count > 0.0) {
            return Err(format!("{text:?}: the count must be positive"));
        }
        let per_second = count / seconds;
        if per_second > 1e9 {
            return Err(format!("{text:?}: more than 10^9 a second"));
        }
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("{text:?}: the burst must be a positive integer"))?,
            None => per_second.ceil() as u32,
        };
        // A key's state spans burst / rate; a year is far beyond any sensible limit (and keeps
        // the arithmetic in range).
        if f64::from(burst) / per_second > 365.0 * 86_400.0 {
            return Err(format!(
                "{text:?}: the burst takes over a year to refill at that rate"
            ));
        }
        Ok(Rate::new(per_second, burst))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s:{}", self.per_second, self.burst)
    }
}

/// The limit of every (caller kind, route class) pair; `None` is unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    table: HashMap<(Who, Class), Option<Rate>>,
}

impl Default for RateLimits {
    /// Anonymous callers 100 requests/s per address (registration and tokens 10/s, burst 20);
    /// people 100/s (burst 200) per account; machine clients 5,000/s per client.
    fn default() -> Self {
        let mut table = HashMap::new();
        for class in Class::ALL {
            table.insert((Who::Anonymous, class), Some(Rate::new(100.0, 100)));
            table.insert((Who::Person, class), Some(Rate::new(100.0, 200)));
            table.insert((Who::Client, class), Some(Rate::new(5000.0, 5000)));
        }
        table.insert((Who::Anonymous, Class::Auth), Some(Rate::new(10.0, 20)));
        RateLimits { table }
    }
}

/// A `RATE_LIMITS` spec [`RateLimits::parse`] refuses: which entry, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRateLimits(String);

/// A `REDIS_URL` that is not a Redis URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("REDIS_URL: {0}")]
pub struct BadRedisUrl(pub String);

impl RateLimits {
    /// No limits at all.
    pub fn off() -> Self {
        let mut limits = RateLimits::default();
        limits.table.values_mut().for_each(|r| *r = None);
        limits
    }

    /// The defaults changed by `spec`: comma-separated `WHO[.CLASS]=RATE` entries, applied in
    /// order, where WHO is `anonymous`, `person`, `client` or `*`, CLASS one of `auth`, `read`,
    /// `write`, `events`, `analytics` (all when left out), and RATE `100/s`, `6000/min:200`
    /// (with a burst) or `off`. The empty spec, or `off` alone, are also accepted.
    pub fn parse(spec: &str) -> Result<RateLimits, BadRateLimits> {
        Self::parse_spec(spec).map_err(BadRateLimits)
    }

    fn parse_spec(spec: &str) -> Result<RateLimits, String> {
        let mut limits = RateLimits::default();
        let spec = spec.trim();
        if spec == "off" {
            return Ok(RateLimits::off());
        }
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?}: expected WHO[.CLASS]=RATE"))?;
            let (who, class) = match key.trim().split_once('.') {
                Some((who, class)) => (who, Some(class)),
                None => (key.trim(), None),
            };
            let whos: Vec<Who> = match who {
                "*" => Who::ALL.to_vec(),
                name => vec![*Who::ALL.iter().find(|w| w.name() == name).ok_or_else(|| {
                    format!("{entry:?}: unknown caller {name:?} (anonymous, person, client or *)")
                })?],
            };
            let classes: Vec<Class> = match class {
                None => Class::ALL.to_vec(),
                Some(name) => vec![
                    *Class::ALL
                        .iter()
                        .find(|c| c.name() == name)
                        .ok_or_else(|| {
                            format!(
                                "{entry:?}: unknown route class {name:?} (auth, read, write, events or analytics)"
                            )
                        })?,
                ],
            };
            let rate = match value.trim() {
                "off" => None,
                rate => Some(Rate::parse(rate)?),
            };
            for who in &whos {
                for class in &classes {
                    limits.table.insert((*who, *class), rate);
                }
            }
        }
        Ok(limits)
    }

    pub fn get(&self, who: Who, class: Class) -> Option<Rate> {
        self.table.get(&(who, class)).copied().flatten()
    }
}

/// What the limiter decided for one request, with what the response headers say.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// `<who>-<class>`, the policy's name in the headers.
    pub policy: String,
    pub rate: Rate,
    /// Requests that could still be made at once.
    pub remaining: u32,
    /// Seconds until the whole burst is available again.
    pub reset_secs: u64,
    /// For a refusal: seconds until a request would be admitted (at least 1).
    pub retry_after_secs: u64,
}

impl Decision {
    /// `"anonymous-read";q=100;w=1` (draft-ietf-httpapi-ratelimit-headers).
    pub fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.policy,
            self.rate.burst,
            self.rate.window_secs()
        )
    }

    /// `"anonymous-read";r=42;t=1`.
    pub fn state_header(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.policy, self.remaining, self.reset_secs
        )
    }

    /// From the GCRA step: `backlog_us` is how far the TAT is ahead of now after the step (or,
    /// refused, without it), `wait_us` how long until a request would be admitted.
    fn new(policy: String, rate: Rate, allowed: bool, backlog_us: i64, wait_us: i64) -> Self {
        let interval = rate.interval_us();
        let limit = interval.saturating_mul(i64::from(rate.burst));
        let remaining = if allowed {
            ((limit - backlog_us).max(0) / interval) as u32
        } else {
            0
        };
        Decision {
            allowed,
            policy,
            rate,
            remaining,
            reset_secs: (backlog_us.max(0) as u64).div_ceil(1_000_000),
            retry_after_secs: (wait_us.max(0) as u64).div_ceil(1_000_000).max(1),
        }
    }
}

/// One GCRA step on `tat` (None: a key never seen or long idle) at `now`, in microseconds.
/// Returns (allowed, the new TAT to store when allowed, backlog, wait).
fn gcra(tat: Option<i64>, now: i64, rate: Rate) -> (bool, i64, i64, i64) {
    let interval = rate.interval_us();
    let limit = interval.saturating_mul(i64::from(rate.burst));
    let tat = tat.unwrap_or(now).max(now);
    let next = tat.saturating_add(interval);
    if next - now > limit {
        (false, tat, tat - now, next - now - limit)
    } else {
        (true, next, next - now, 0)
    }
}

const SHARDS: usize = 32;
/// A shard sweeps keys back at their full burst (TAT in the past) at most once a second, and
/// only once it holds this many.
const SWEEP_ABOVE: usize = 4096;

struct Shard {
    tats: HashMap<String, i64>,
    swept_at: i64,
}

/// The in-process state: a TAT per key in sharded maps.
struct Local {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    epoch: Instant,
}

impl Local {
    fn new() -> Self {
        Local {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        swept_at: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    fn check(&self, key: &str, policy: String, rate: Rate) -> Decision {
        let now = self.epoch.elapsed().as_micros() as i64;
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if shard.tats.len() > SWEEP_ABOVE && now - shard.swept_at > 1_000_000 {
            shard.tats.retain(|_, tat| *tat > now);
            shard.swept_at = now;
        }
        let (allowed, tat, backlog, wait) = gcra(shard.tats.get(key).copied(), now, rate);
        if allowed {
            match shard.tats.get_mut(key) {
                Some(stored) => *stored = tat,
                None => {
                    shard.tats.insert(key.to_owned(), tat);
                }
            }
        }
        Decision::new(policy, rate, allowed, backlog, wait)
    }
}

/// The same step as [`gcra`], atomically on Redis with Redis's clock; the key expires once its
/// burst is whole again.
const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local limit = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now > limit then
  return {0, tat - now, next - now - limit}
end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return {1, next - now, 0}
";

/// Redis as the shared state, with the fallback bookkeeping.
struct Shared {
    connection: Arc<OnceLock<redis::aio::ConnectionManager>>,
    script: redis::Script,
    timeout: Duration,
    /// Until when (µs since `epoch`) Redis is skipped after a failure; 0 while it answers.
    skip_until: AtomicI64,
    epoch: Instant,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    policy: String,
}

/// The limiter of one gateway.
pub struct Limiter {
    limits: RateLimits,
    local: Local,
    shared: Option<Shared>,
    refused: Family<PolicyLabel, Counter>,
    fallbacks: Counter,
    redis_up: Gauge,
}

/// Where the shared state lives.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// How long one decision may wait for Redis before it is made in process.
    pub timeout: Duration,
}

impl Limiter {
    /// A limiter with in-process state, or Redis's when `redis` is given. Connecting to Redis
    /// happens in the background (retried every second), so a gateway starts while Redis is
    /// down; until it connects, decisions are made in process. Errors only for a malformed URL.
    pub fn new(
        limits: RateLimits,
        redis: Option<RedisConfig>,
        registry: &mut Registry,
    ) -> Result<Arc<Limiter>, BadRedisUrl> {
        let redis_up = Gauge::default();
        let shared = match redis {
            None => None,
            Some(config) => {
                let client = redis::Client::open(config.url.as_str())
                    .map_err(|e| BadRedisUrl(e.to_string()))?;
                let connection = Arc::new(OnceLock::new());
                tokio::spawn(connect(
                    client,
                    connection.clone(),
                    config.timeout,
                    redis_up.clone(),
                ));
                Some(Shared {
                    connection,
                    script: redis::Script::new(SCRIPT),
                    timeout: config.timeout,
                    skip_until: AtomicI64::new(0),
                    epoch: Instant::now(),
                })
            }
        };
        let limiter = Limiter {
            limits,
            local: Local::new(),
            shared,
            refused: Family::default(),
            fallbacks: Counter::default(),
            redis_up,
        };
        registry.register(
            "gateway_rate_limited",
            "Requests refused with 429, by policy",
            limiter.refused.clone(),
        );
        registry.register(
            "gateway_rate_limit_fallbacks",
            "Rate-limit decisions made in process because Redis failed or was slow",
            limiter.fallbacks.clone(),
        );
        registry.register(
            "gateway_rate_limit_redis_up",
            "1 while the shared limits on Redis answer, 0 while they fall back (or are not configured)",
            limiter.redis_up.clone(),
        );
        Ok(Arc::new(limiter))
    }

    /// Whether the shared state is configured.
    pub fn shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The decision for one request of `who` (identified by `principal`) on a `class` route;
    /// `None` when that pair is unlimited.
    pub async fn check(&self, who: Who, class: Class, principal: &str) -> Option<Decision> {
        let rate = self.limits.get(who, class)?;
        let policy = format!("{}-{}", who.name(), class.name());
        let key = format!("{policy}:{principal}");
        let decision = match &self.shared {
            None => self.local.check(&key, policy, rate),
            Some(shared) => match self.check_shared(shared, &key, &policy, rate).await {
                Some(decision) => decision,
                None => {
                    self.fallbacks.inc();
                    self.local.check(&key, policy, rate)
                }
            },
        };
        if !decision.allowed {
            self.refused
                .get_or_create(&PolicyLabel {
                    policy: decision.policy.clone(),
                })
                .inc();
        }
        Some(decision)
    }

    async fn check_shared(
        &self,
        shared: &Shared,
        key: &str,
        policy: &str,
        rate: Rate,
    ) -> Option<Decision> {
        let now = shared.epoch.elapsed().as_micros() as i64;
        let skip_until = shared.skip_until.load(Ordering::Relaxed);
        if skip_until != 0 {
            // After a failure: in process until the pause is over, then one request probes
            // Redis while the others keep deciding in process.
            let claimed = now >= skip_until
                && shared
                    .skip_until
                    .compare_exchange(
                        skip_until,
                        now + 1_000_000,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok();
            if !claimed {
                return None;
            }
        }
        let mut connection = shared.connection.get()?.clone();
        let mut invocation = shared.script.key(format!("ecom:rl:{key}"));
        invocation.arg(rate.interval_us()).arg(rate.burst);
        let answer = tokio::time::timeout(
            shared.timeout,
            invocation.invoke_async::<(i64, i64, i64)>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok((allowed, backlog, wait))) => {
                shared.skip_until.store(0, Ordering::Relaxed);
                self.redis_up.set(1);
                Some(Decision::new(
                    policy.to_owned(),
                    rate,
                    allowed == 1,
                    backlog,
                    wait,
                ))
            }
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", shared.timeout),
                };
                if self.redis_up.set(0) != 0 {
                    tracing::warn!(error = %reason, "Redis failed: rate limits are per process until it answers");
                }
                shared.skip_until.store(now + 1_000_000, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Connects to Redis, retrying every second until it answers; the connection manager then
/// reconnects by itself.
async fn connect(
    client: redis::Client,
    into: Arc<OnceLock<redis::aio::ConnectionManager>>,
    timeout: Duration,
    up: Gauge,
) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    loop {
        match redis::aio::ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(connection) => {
                let _ = into.set(connection);
                up.set(1);
                tracing::info!("rate limits shared through Redis");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Redis yet: rate limits are per process meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The principal of an anonymous caller: its address, an IPv6 one by its /64.
pub fn address_principal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_changes_the_defaults() {
        let limits =
            RateLimits::parse("anonymous=50/s:80, client.events=off,*.auth=600/min").unwrap();
        assert_eq!(
            limits.get(Who::Anonymous, Class::Read),
            Some(Rate::new(50.0, 80))
        );
        assert_eq!(limits.get(Who::Client, Class::Events), None);
        assert_eq!(
            limits.get(Who::Person, Class::Auth),
            Some(Rate::new(10.0, 10))
        );
        assert_eq!(
            limits.get(Who::Person, Class::Read),
            RateLimits::default().get(Who::Person, Class::Read)
        );
        assert_eq!(RateLimits::parse("").unwrap(), RateLimits::default());
        assert_eq!(RateLimits::parse("off").unwrap(), RateLimits::off());
        for bad in [
            "anonymous",
            "nobody=1/s",
            "anonymous.nothing=1/s",
            "anonymous=1/day",
            "anonymous=0/s",
            "anonymous=x/s",
            "anonymous=1/s:0",
            "anonymous=1/h:3000000000",
        ] {
            assert!(RateLimits::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RateLimits::default().get(Who::Anonymous, Class::Events),
            Some(Rate::new(100.0, 100))
        );
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = Rate::new(10.0, 3);
        let mut tat = None;
        let mut now = 0;
        // Three at once, the fourth refused with the wait until the next.
        for expected_remaining in [2, 1, 0] {
            let (allowed, next, backlog, _) = gcra(tat, now, rate);
            assert!(allowed);
            tat = Some(next);
            let d = Decision::new("p".into(), rate, allowed, backlog, 0);
            assert_eq!(d.remaining, expected_remaining);
        }
        let (allowed, _, backlog, wait) = gcra(tat, now, rate);
        assert!(!allowed);
        assert_eq!(wait, 100_000);
        let refused = Decision::new("p".into(), rate, allowed, backlog, wait);
        assert_eq!((refused.remaining, refused.retry_after_secs), (0, 1));
        assert_eq!(refused.reset_secs, 1);
        // A tenth of a second later, one more.
        now += 100_000;
        let (allowed, next, _, _) = gcra(tat, now, rate);
        assert!(allowed);
        // Long idle: the whole burst again.
        now = next + 10_000_000;
        let (allowed, _, backlog, _) = gcra(Some(next), now, rate);
        assert!(allowed);
        assert_eq!(
            Decision::new("p".into(), rate, true, backlog, 0).remaining,
            2
        );
    }

    #[test]
    fn headers() {
        let d = Decision::new(
            "anonymous-read".into(),
            Rate::new(100.0, 200),
            true,
            10_000,
            0,
        );
        assert_eq!(d.policy_header(), "\"anonymous-read\";q=200;w=2");
        assert_eq!(d.state_header(), "\"anonymous-read\";r=199;t=1");
    }

    #[test]
    fn local_keys_are_separate() {
        let local = Local::new();
        let rate = Rate::new(1.0, 1);
        assert!(local.check("a", "p".into(), rate).allowed);
        assert!(!local.check("a", "p".into(), rate).allowed);
        assert!(local.check("b", "p".into(), rate).allowed);
    }

    #[test]
    fn addresses() {
        assert_eq!(address_principal("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(
            address_principal("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_principal("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3"
        );
    }
}
