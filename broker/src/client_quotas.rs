//! Client quota enforcement (KIP-13, KIP-55, KIP-219), per broker as in
//! Kafka: the bytes a (user, client id) produces to and fetches from this
//! node are measured over `quota.window.num` windows of
//! `quota.window.size.seconds` (Kafka's defaults: 11 of 1 s); a request
//! that takes the rate above its quota is answered at once with
//! `throttle_time_ms` — the time it takes for the rate to come back to the
//! quota — and its connection is not read again until then (the client
//! backs off as well, KIP-219). A fetch while over the quota returns no
//! records, and a fetch never asks for more than the quota allows in the
//! measured span. Replica fetches are never throttled here.
//!
//! Which quota applies, most specific first (Kafka's
//! `DefaultQuotaCallback`), and whose bytes share its measurement:
//! user+client (each of the user's clients on its own), user+default
//! client, user (all of the user's clients together), default user+client,
//! default user+default client, default user (each user on its own),
//! client, default client (each client id on its own). Quotas live in the
//! metadata image ([`rivulet_controller::client_quotas`]).

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use rivulet_controller::client_quotas::{
    ClientQuotaStore, QuotaEntity, CLIENT_ID, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, USER,
};

/// Windows the rate is measured over (Kafka's `quota.window.num`).
pub const DEFAULT_SAMPLES: usize = 11;
/// Length of one window (Kafka's `quota.window.size.seconds`).
pub const DEFAULT_WINDOW_MS: u64 = 1000;
/// How often idle measurements are dropped.
const SWEEP_MS: u64 = 10_000;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Record bytes of produce requests (`producer_byte_rate`).
    Produce,
    /// Record bytes of fetch responses (`consumer_byte_rate`).
    Fetch,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
        }
    }

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::Produce => "produce",
            QuotaKind::Fetch => "fetch",
        }
    }
}

/// Whose bytes one measurement counts: Kafka's metric tags ("" where the
/// quota does not distinguish).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorKey {
    kind: QuotaKind,
    user: String,
    client: String,
}

/// The quota that applies to `user` and `client` for `key`, and the
/// measurement it is checked against; `None` when none applies.
pub fn resolve(
    store: &ClientQuotaStore,
    kind: QuotaKind,
    user: &str,
    client: &str,
) -> Option<(f64, SensorKey)> {
    let named = |s: &str| Some(s.to_string());
    let both = |u: Option<String>, c: Option<String>| {
        QuotaEntity(vec![(CLIENT_ID.to_string(), c), (USER.to_string(), u)])
    };
    let user_only = |u: Option<String>| QuotaEntity(vec![(USER.to_string(), u)]);
    let client_only = |c: Option<String>| QuotaEntity(vec![(CLIENT_ID.to_string(), c)]);
    // (entity, whether its measurement tells users apart, clients apart)
    let order = [
        (both(named(user), named(client)), true, true),
        (both(named(user), None), true, true),
        (user_only(named(user)), true, false),
        (both(None, named(client)), true, true),
        (both(None, None), true, true),
        (user_only(None), true, false),
        (client_only(named(client)), false, true),
        (client_only(None), false, true),
    ];
    order.into_iter().find_map(|(entity, by_user, by_client)| {
        let value = store.get(&entity)?.get(kind.key())?;
        Some((
            value.0,
            SensorKey {
                kind,
                user: if by_user {
                    user.to_string()
                } else {
                    String::new()
                },
                client: if by_client {
                    client.to_string()
                } else {
                    String::new()
                },
            },
        ))
    })
}

/// The user entity name of a principal (`User:alice` → `alice`).
pub fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

/// How rates are measured: `samples` windows of `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub samples: usize,
    pub window_ms: u64,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            samples: DEFAULT_SAMPLES,
            window_ms: DEFAULT_WINDOW_MS,
        }
    }
}

impl Windows {
    /// How long a window counts.
    fn span(&self) -> u64 {
        self.samples as u64 * self.window_ms
    }
}

/// A rate over a few windows, as Kafka's `Rate` over a `SampledStat`
/// measures it.
#[derive(Debug, Clone)]
struct Sensor {
    /// `(start ms, total)` of each window; the current one is `current`.
    windows: Vec<(u64, f64)>,
    current: usize,
    last_used: u64,
    /// Throttle handed out since the sensor was made (metrics).
    throttled_ms: u64,
}

impl Sensor {
    fn new(w: Windows, now: u64) -> Sensor {
        Sensor {
            windows: vec![(now, 0.0); w.samples.max(1)],
            current: 0,
            last_used: now,
            throttled_ms: 0,
        }
    }

    fn record(&mut self, w: Windows, value: f64, now: u64) {
        if now.saturating_sub(self.windows[self.current].0) >= w.window_ms {
            self.current = (self.current + 1) % self.windows.len();
            self.windows[self.current] = (now, 0.0);
        }
        self.windows[self.current].1 += value;
        self.last_used = now;
    }

    /// Bytes per second, and the span (ms) it was measured over: at least
    /// `samples - 1` windows, so a new sensor does not overstate a burst.
    fn rate(&self, w: Windows, now: u64) -> (f64, f64) {
        let span = w.span();
        let live = self
            .windows
            .iter()
            .filter(|(start, _)| now.saturating_sub(*start) < span);
        let (total, oldest) = live.fold((0.0, now), |(t, o), (start, v)| (t + v, o.min(*start)));
        let mut elapsed = now - oldest;
        let full_windows = elapsed / w.window_ms.max(1);
        let min_windows = w.samples as u64 - 1;
        if full_windows < min_windows {
            elapsed += (min_windows - full_windows) * w.window_ms;
        }
        let elapsed = elapsed.max(1) as f64;
        (total / (elapsed / 1000.0), elapsed)
    }
}

/// This node's measurements.
#[derive(Debug)]
pub struct ClientQuotas {
    windows: Windows,
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sensors: HashMap<SensorKey, Sensor>,
    last_sweep: u64,
}

impl Default for ClientQuotas {
    fn default() -> Self {
        ClientQuotas::new(Windows::default())
    }
}

impl ClientQuotas {
    pub fn new(windows: Windows) -> Self {
        ClientQuotas {
            windows: Windows {
                samples: windows.samples.max(1),
                window_ms: windows.window_ms.max(1),
            },
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Count `bytes` for `user`/`client` under the quota that applies:
    /// the throttle (ms) the rate earns now (0 within the quota), or
    /// `None` when no quota applies.
    pub fn record(
        &self,
        store: &ClientQuotaStore,
        kind: QuotaKind,
        user: &str,
        client: &str,
        bytes: usize,
    ) -> Option<u32> {
        if store.is_empty() {
            return None;
        }
        let (bound, key) = resolve(store, kind, user, client)?;
        let now = self.now();
        let w = self.windows;
        let mut state = self.state.lock();
        if now.saturating_sub(state.last_sweep) >= SWEEP_MS {
            let span = w.span();
            state
                .sensors
                .retain(|_, s| now.saturating_sub(s.last_used) < span);
            state.last_sweep = now;
        }
        let sensor = state
            .sensors
            .entry(key)
            .or_insert_with(|| Sensor::new(w, now));
        sensor.record(w, bytes as f64, now);
        let (rate, elapsed) = sensor.rate(w, now);
        let throttle = if rate > bound {
            ((rate - bound) / bound * elapsed)
                .round()
                .min(u32::MAX as f64) as u32
        } else {
            0
        };
        sensor.throttled_ms += u64::from(throttle);
        Some(throttle)
    }

    /// Every live measurement: `(kind, user, client, bytes per second now,
    /// throttle handed out in ms)`, for the metrics endpoint.
    pub fn snapshot(&self) -> Vec<(QuotaKind, String, String, f64, u64)> {
        let now = self.now();
        let state = self.state.lock();
        let mut out: Vec<_> = state
            .sensors
            .iter()
            .map(|(k, s)| {
                let (rate, _) = s.rate(self.windows, now);
                (
                    k.kind,
                    k.user.clone(),
                    k.client.clone(),
                    rate,
                    s.throttled_ms,
                )
            })
            .collect();
        out.sort_by(|a, b| (a.1.as_str(), a.2.as_str()).cmp(&(b.1.as_str(), b.2.as_str())));
        out
    }

    /// The most a fetch may return under `user`/`client`'s fetch quota:
    /// what the quota allows over the measured span (Kafka's
    /// `getMaxValueInQuotaWindow`); `None` without a quota.
    pub fn fetch_limit(&self, store: &ClientQuotaStore, user: &str, client: &str) -> Option<usize> {
        if store.is_empty() {
            return None;
        }
        let (bound, _) = resolve(store, QuotaKind::Fetch, user, client)?;
        let w = self.windows;
        let span_s = (w.samples as u64 - 1).max(1) as f64 * w.window_ms as f64 / 1000.0;
        Some((bound * span_s).min(i32::MAX as f64) as usize)
    }

    /// Measurements held (for tests and metrics).
    pub fn sensors(&self) -> usize {
        self.state.lock().sensors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_controller::client_quotas::QuotaValue;

    /// `(type, name)` parts of an entity.
    type Parts<'a> = &'a [(&'a str, Option<&'a str>)];

    fn store(entries: &[(Parts<'_>, &str, f64)]) -> ClientQuotaStore {
        let mut s = ClientQuotaStore::new();
        for (parts, key, v) in entries {
            let entity = QuotaEntity::new(
                parts
                    .iter()
                    .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                    .collect(),
            )
            .unwrap();
            s.entry(entity)
                .or_default()
                .insert(key.to_string(), QuotaValue(*v));
        }
        s
    }

    #[test]
    fn the_most_specific_quota_wins_and_defaults_measure_each_one_apart() {
        let s = store(&[
            (&[(USER, Some("alice"))], PRODUCER_BYTE_RATE, 100.0),
            (&[(USER, None)], PRODUCER_BYTE_RATE, 50.0),
            (&[(CLIENT_ID, Some("batch"))], PRODUCER_BYTE_RATE, 10.0),
            (
                &[(USER, Some("bob")), (CLIENT_ID, Some("batch"))],
                PRODUCER_BYTE_RATE,
                7.0,
            ),
            (&[(CLIENT_ID, None)], CONSUMER_BYTE_RATE, 5.0),
        ]);
        let p = QuotaKind::Produce;
        let (q, k) = resolve(&s, p, "alice", "any").unwrap();
        assert_eq!(
            (q, k.user.as_str(), k.client.as_str()),
            (100.0, "alice", "")
        );
        let (q, k) = resolve(&s, p, "bob", "batch").unwrap();
        assert_eq!(
            (q, k.user.as_str(), k.client.as_str()),
            (7.0, "bob", "batch")
        );
        // The default user beats a client-id quota; each user on its own.
        let (q, k) = resolve(&s, p, "carol", "batch").unwrap();
        assert_eq!((q, k.user.as_str(), k.client.as_str()), (50.0, "carol", ""));
        // Fetch resolves on its own: only the default client has one.
        let (q, k) = resolve(&s, QuotaKind::Fetch, "alice", "c1").unwrap();
        assert_eq!((q, k.user.as_str(), k.client.as_str()), (5.0, "", "c1"));
        let s = store(&[(&[(CLIENT_ID, Some("batch"))], PRODUCER_BYTE_RATE, 10.0)]);
        assert!(resolve(&s, p, "alice", "other").is_none());
        assert_eq!(user_of("User:alice"), "alice");
        assert_eq!(user_of("User:ANONYMOUS"), "ANONYMOUS");
    }

    #[test]
    fn a_rate_above_the_quota_earns_the_time_to_come_back_to_it() {
        let w = Windows::default();
        let mut sensor = Sensor::new(w, 0);
        // 10 KB at once against 1 KB/s: measured over the 10 s minimum
        // span, 1 KB/s is the quota exactly.
        sensor.record(w, 10_000.0, 0);
        let (rate, elapsed) = sensor.rate(w, 0);
        assert_eq!((rate, elapsed), (1000.0, 10_000.0));
        sensor.record(w, 5_000.0, 500);
        let (rate, elapsed) = sensor.rate(w, 500);
        assert_eq!(elapsed, 10_500.0);
        assert_eq!(rate, 15_000.0 / 10.5);
        // The time for 15 KB over 10.5 s to come back to 1 KB/s: 4.5 s.
        let throttle = (rate - 1000.0) / 1000.0 * elapsed;
        assert!((throttle - 4500.0).abs() < 1e-6, "{throttle}");
        // Windows older than the span are forgotten.
        let (rate, _) = sensor.rate(w, 20_000);
        assert_eq!(rate, 0.0);
    }

    #[test]
    fn recording_throttles_takes_back_and_sweeps_idle_measurements() {
        let q = ClientQuotas::default();
        let s = store(&[(&[(CLIENT_ID, Some("slow"))], PRODUCER_BYTE_RATE, 1000.0)]);
        assert!(q
            .record(&s, QuotaKind::Produce, "u", "fast", 1 << 20)
            .is_none());
        assert_eq!(
            q.record(&s, QuotaKind::Produce, "u", "slow", 9_000),
            Some(0)
        );
        let t = q
            .record(&s, QuotaKind::Produce, "u", "slow", 6_000)
            .unwrap();
        assert!((4_900..=5_100).contains(&t), "{t}");
        let t = q.record(&s, QuotaKind::Produce, "u", "slow", 0).unwrap();
        assert!(t >= 4_900, "still over: {t}");
        assert_eq!(q.sensors(), 1);
        let f = store(&[(&[(USER, None)], CONSUMER_BYTE_RATE, 2000.0)]);
        assert_eq!(q.fetch_limit(&f, "u", "c"), Some(20_000));
        assert_eq!(q.fetch_limit(&s, "u", "c"), None);
    }
}

/// The hooks of the request path ([`crate::dispatch`]).
pub mod hooks {
    use std::sync::Arc;

    use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest};
    use rivulet_controller::MetadataImage;

    use super::{user_of, QuotaKind};
    use crate::context::BrokerContext;

    /// Count a produce request's record bytes: the throttle it earned (ms).
    pub fn produce(b: &BrokerContext, principal: &str, client: &str, req: &ProduceRequest) -> u32 {
        let image = b.image();
        if image.client_quotas.is_empty() {
            return 0;
        }
        let bytes: usize = req
            .topic_data
            .iter()
            .flat_map(|t| &t.partition_data)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        b.client_quotas
            .record(
                &image.client_quotas,
                QuotaKind::Produce,
                user_of(principal),
                client,
                bytes,
            )
            .unwrap_or(0)
    }

    /// A consumer's fetch under a fetch quota: the image its quota was
    /// found in, for counting the response.
    pub struct FetchQuota {
        image: Arc<MetadataImage>,
    }

    impl FetchQuota {
        /// If a fetch quota applies to the client, cap the fetch at what
        /// the quota allows over the measured span.
        pub fn limit(
            b: &BrokerContext,
            principal: &str,
            client: &str,
            req: &mut FetchRequest,
        ) -> Option<FetchQuota> {
            let image = b.image();
            let limit =
                b.client_quotas
                    .fetch_limit(&image.client_quotas, user_of(principal), client)?;
            let limit = i32::try_from(limit).unwrap_or(i32::MAX).max(1);
            req.max_bytes = req.max_bytes.min(limit);
            Some(FetchQuota { image })
        }

        /// Count the response; the throttle (ms) it earned. Already over
        /// before it: as Kafka, nothing but the throttle (not counted).
        /// Else the records go out and count, throttling the next fetch if
        /// they take the rate over (a batch larger than the quota allows
        /// at once still gets through).
        pub fn fetched(
            self,
            b: &BrokerContext,
            principal: &str,
            client: &str,
            resp: &mut FetchResponse,
        ) -> u32 {
            let record = |bytes| {
                b.client_quotas
                    .record(
                        &self.image.client_quotas,
                        QuotaKind::Fetch,
                        user_of(principal),
                        client,
                        bytes,
                    )
                    .unwrap_or(0)
            };
            let before = record(0);
            if before > 0 {
                resp.responses.clear();
                return before;
            }
            let bytes: usize = resp
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                .sum();
            record(bytes)
        }
    }
}
