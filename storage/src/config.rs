//! Per-log configuration with Kafka's topic-config names and defaults, and the
//! validation that turns a bad value into a message naming key, value and the
//! accepted range.
//!
//! A topic's effective config is the broker defaults overridden by the topic's
//! own keys: [`LogConfig::with_overrides`].

use std::collections::BTreeMap;

use rivulet_protocol::record_batch::Compression;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("unknown log config '{0}'")]
    UnknownKey(String),
    #[error("invalid value '{value}' for {key}: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
}

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    fn parse(s: &str) -> Option<Self> {
        let mut p = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "delete" => p.delete = true,
                "compact" => p.compact = true,
                _ => return None,
            }
        }
        Some(p)
    }

    fn render(&self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
    }
}

/// When appended data is fsynced (`flush.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Before an acks=all produce is acknowledged, with group commit.
    OnAck,
    /// Every `flush.ms` by the background flusher.
    Interval,
    /// Only on segment roll and clean shutdown; the OS decides otherwise.
    Never,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPolicy {
    CreateTime,
    LogAppendTime,
}

/// `compression.type`: the codec produced batches are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// Keep the producer's codec (Kafka's default).
    Producer,
    /// Store every produced batch in this codec (`uncompressed` is
    /// [`Compression::None`]), recompressing batches sent in another.
    Codec(Compression),
}

/// The configuration of one partition log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when it would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when it is older than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older; -1 = keep.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments beyond this size; -1 = keep.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a compacted log keeps tombstones.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this is compacted
    /// whatever the dirty ratio, and a compacted log's active segment rolls
    /// by this age at the latest (KIP-354).
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when this share of the log is dirty.
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: u64,
    /// `flush.policy`.
    pub flush_policy: FlushPolicy,
    /// `flush.ms`: interval of the background flusher for `interval`.
    pub flush_ms: i64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampPolicy,
    /// `message.timestamp.before.max.ms`: a produced CreateTime record may
    /// be at most this much older than the broker's clock.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: ... and at most this much newer
    /// (Kafka 4's default: one hour).
    pub timestamp_after_max_ms: i64,
    /// `compression.type`.
    pub compression_type: TopicCompression,
    /// `compression.gzip.level`, `compression.lz4.level`,
    /// `compression.zstd.level` (KIP-390): the level a batch rebuilt in
    /// the topic's codec is compressed at (batches kept in the producer's
    /// codec are stored as sent, as in Kafka).
    pub gzip_level: i32,
    pub lz4_level: i32,
    pub zstd_level: i32,
}

/// Largest `segment.bytes`: index entries store 32-bit positions.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;
/// Largest `max.message.bytes` (Kafka's frame limit is 100 MiB by default).
pub const MAX_MESSAGE_BYTES_LIMIT: u64 = i32::MAX as u64;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 3_600_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
            flush_policy: FlushPolicy::OnAck,
            flush_ms: 1000,
            timestamp_type: TimestampPolicy::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression_type: TopicCompression::Producer,
            gzip_level: -1,
            lz4_level: 9,
            zstd_level: 3,
        }
    }
}

/// Every key [`LogConfig`] understands.
pub const LOG_CONFIG_KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "max.message.bytes",
    "flush.policy",
    "flush.ms",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
];

fn int_in(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            expected: format!("an integer between {min} and {max}"),
        }),
    }
}

fn one_of<T: Copy>(key: &str, value: &str, options: &[(&str, T)]) -> Result<T, ConfigError> {
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            expected: format!(
                "one of {}",
                options
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

impl LogConfig {
    /// Apply one `key=value`, validating it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        const DAY_LIMIT: i64 = i64::MAX / 2;
        match key {
            "segment.bytes" => {
                self.segment_bytes = int_in(key, value, 14, MAX_SEGMENT_BYTES as i64)? as u64
            }
            "segment.ms" => self.segment_ms = int_in(key, value, 1, DAY_LIMIT)?,
            "segment.index.bytes" => {
                self.segment_index_bytes = int_in(key, value, 12, i32::MAX as i64)? as u64
            }
            "index.interval.bytes" => {
                self.index_interval_bytes = int_in(key, value, 0, i32::MAX as i64)? as u64
            }
            "retention.ms" => self.retention_ms = int_in(key, value, -1, DAY_LIMIT)?,
            "retention.bytes" => self.retention_bytes = int_in(key, value, -1, i64::MAX)?,
            "cleanup.policy" => {
                self.cleanup_policy =
                    CleanupPolicy::parse(value.trim()).ok_or_else(|| ConfigError::InvalidValue {
                        key: key.to_string(),
                        value: value.to_string(),
                        expected: "delete, compact or compact,delete".to_string(),
                    })?
            }
            "delete.retention.ms" => self.delete_retention_ms = int_in(key, value, 0, DAY_LIMIT)?,
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = int_in(key, value, 0, DAY_LIMIT)?
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = int_in(key, value, 1, i64::MAX)?
            }
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = match value.trim().parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => v,
                    _ => {
                        return Err(ConfigError::InvalidValue {
                            key: key.to_string(),
                            value: value.to_string(),
                            expected: "a number between 0 and 1".to_string(),
                        })
                    }
                }
            }
            "max.message.bytes" => {
                self.max_message_bytes =
                    int_in(key, value, 0, MAX_MESSAGE_BYTES_LIMIT as i64)? as u64
            }
            "flush.policy" => {
                self.flush_policy = one_of(
                    key,
                    value,
                    &[
                        ("on-ack", FlushPolicy::OnAck),
                        ("interval", FlushPolicy::Interval),
                        ("never", FlushPolicy::Never),
                    ],
                )?
            }
            "flush.ms" => self.flush_ms = int_in(key, value, 1, DAY_LIMIT)?,
            "message.timestamp.type" => {
                self.timestamp_type = one_of(
                    key,
                    value,
                    &[
                        ("CreateTime", TimestampPolicy::CreateTime),
                        ("LogAppendTime", TimestampPolicy::LogAppendTime),
                    ],
                )?
            }
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = int_in(key, value, 0, i64::MAX)?
            }
            "message.timestamp.after.max.ms" => {
                self.timestamp_after_max_ms = int_in(key, value, 0, i64::MAX)?
            }
            "compression.type" => {
                self.compression_type = one_of(
                    key,
                    value,
                    &[
                        ("producer", TopicCompression::Producer),
                        ("uncompressed", TopicCompression::Codec(Compression::None)),
                        ("gzip", TopicCompression::Codec(Compression::Gzip)),
                        ("snappy", TopicCompression::Codec(Compression::Snappy)),
                        ("lz4", TopicCompression::Codec(Compression::Lz4)),
                        ("zstd", TopicCompression::Codec(Compression::Zstd)),
                    ],
                )?
            }
            "compression.gzip.level" => {
                // Kafka's: 1 to 9, or -1 for gzip's default.
                let level = int_in(key, value, -1, 9)?;
                if level == 0 {
                    return Err(ConfigError::InvalidValue {
                        key: key.to_string(),
                        value: value.to_string(),
                        expected: "an integer between 1 and 9, or -1".to_string(),
                    });
                }
                self.gzip_level = level as i32
            }
            "compression.lz4.level" => self.lz4_level = int_in(key, value, 1, 17)? as i32,
            "compression.zstd.level" => self.zstd_level = int_in(key, value, -131_072, 22)? as i32,
            _ => return Err(ConfigError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// The level a batch rebuilt in `codec` is compressed at.
    pub fn compression_level(&self, codec: Compression) -> Option<i32> {
        match codec {
            Compression::Gzip => Some(self.gzip_level),
            Compression::Lz4 => Some(self.lz4_level),
            Compression::Zstd => Some(self.zstd_level),
            Compression::None | Compression::Snappy => None,
        }
    }

    /// These defaults with `overrides` applied; the first bad key or value is
    /// the error.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = self.clone();
        for (k, v) in overrides {
            cfg.set(k, v)?;
        }
        // Kafka's LogConfig.validate: the two lags must not cross.
        if cfg.min_compaction_lag_ms > cfg.max_compaction_lag_ms {
            return Err(ConfigError::InvalidValue {
                key: "min.compaction.lag.ms".to_string(),
                value: cfg.min_compaction_lag_ms.to_string(),
                expected: format!(
                    "at most max.compaction.lag.ms ({})",
                    cfg.max_compaction_lag_ms
                ),
            });
        }
        Ok(cfg)
    }

    /// The age at which the active segment rolls: `segment.ms`, bounded by
    /// `max.compaction.lag.ms` on a compacted log (its active segment is
    /// never cleaned, so it must close in time).
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }

    /// The value of `key` rendered as Kafka's DescribeConfigs shows it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "cleanup.policy" => self.cleanup_policy.render().to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "flush.policy" => match self.flush_policy {
                FlushPolicy::OnAck => "on-ack",
                FlushPolicy::Interval => "interval",
                FlushPolicy::Never => "never",
            }
            .to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampPolicy::CreateTime => "CreateTime",
                TimestampPolicy::LogAppendTime => "LogAppendTime",
            }
            .to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "compression.type" => match self.compression_type {
                TopicCompression::Producer => "producer",
                TopicCompression::Codec(Compression::None) => "uncompressed",
                TopicCompression::Codec(Compression::Gzip) => "gzip",
                TopicCompression::Codec(Compression::Snappy) => "snappy",
                TopicCompression::Codec(Compression::Lz4) => "lz4",
                TopicCompression::Codec(Compression::Zstd) => "zstd",
            }
            .to_string(),
            "compression.gzip.level" => self.gzip_level.to_string(),
            "compression.lz4.level" => self.lz4_level.to_string(),
            "compression.zstd.level" => self.zstd_level.to_string(),
            _ => return None,
        })
    }

    /// Number of entries an index file of `segment.index.bytes` can hold.
    pub(crate) fn max_index_entries(&self, entry_size: u64) -> u64 {
        (self.segment_index_bytes / entry_size).max(1)
    }
}

/// Storage-wide settings of a [`crate::LogManager`].
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Defaults for every log; topics override them.
    pub log_defaults: LogConfig,
    /// `max.open.logs`: most partition logs this node will hold.
    pub max_open_logs: usize,
    /// `num.recovery.threads`: threads opening logs at start-up.
    pub recovery_threads: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: i64,
    /// `log.cleaner.enable`.
    pub cleaner_enabled: bool,
    /// `log.cleaner.backoff.ms`: pause between cleaning passes.
    pub cleaner_backoff_ms: i64,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub checkpoint_interval_ms: i64,
    /// Largest decompressed batch the cleaner and timestamp lookups will expand.
    pub max_decompressed_batch_bytes: usize,
    /// `log.dir.free.space.warn.bytes`: warn while the data dir's filesystem
    /// has less free space than this (0: never).
    pub free_space_warn_bytes: u64,
    /// `log.dir.free.space.check.interval.ms`: how often free space is checked.
    pub free_space_check_interval_ms: i64,
    /// `log.page.cache.window.bytes`: bytes at the end of each segment file
    /// kept in the page cache once fsynced; older ones are dropped from it
    /// (0: keep everything, as Kafka does).
    pub page_cache_window_bytes: u64,
}

/// Default `log.page.cache.window.bytes`: 64 MiB per segment file.
pub const DEFAULT_PAGE_CACHE_WINDOW: u64 = 64 << 20;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            log_defaults: LogConfig::default(),
            max_open_logs: 100_000,
            recovery_threads: 2,
            retention_check_interval_ms: 300_000,
            cleaner_enabled: true,
            cleaner_backoff_ms: 15_000,
            checkpoint_interval_ms: 60_000,
            max_decompressed_batch_bytes: 64 * 1024 * 1024,
            free_space_warn_bytes: 1 << 30,
            free_space_check_interval_ms: 10_000,
            page_cache_window_bytes: DEFAULT_PAGE_CACHE_WINDOW,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_render_back() {
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        o.insert("segment.bytes".to_string(), "1048576".to_string());
        let cfg = LogConfig::default().with_overrides(&o).unwrap();
        assert_eq!(cfg.segment_bytes, 1_048_576);
        assert!(cfg.cleanup_policy.compact && cfg.cleanup_policy.delete);
        assert_eq!(cfg.get("cleanup.policy").unwrap(), "compact,delete");
        for key in LOG_CONFIG_KEYS {
            let v = cfg.get(key).unwrap();
            let mut again = LogConfig::default();
            again.set(key, &v).unwrap();
            assert_eq!(again.get(key).unwrap(), v, "{key}");
        }
    }

    #[test]
    fn bad_config_is_rejected_with_a_clear_message() {
        let mut cfg = LogConfig::default();
        let err = cfg.set("segment.bytes", "-5").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value '-5' for segment.bytes: expected an integer between 14 and 2147483647"
        );
        let err = cfg.set("segment.bytes", "3000000000").unwrap_err();
        assert!(err.to_string().contains("2147483647"));
        assert_eq!(
            cfg.set("cleanup.policy", "shred").unwrap_err().to_string(),
            "invalid value 'shred' for cleanup.policy: expected delete, compact or compact,delete"
        );
        assert_eq!(
            cfg.set("no.such.key", "1").unwrap_err(),
            ConfigError::UnknownKey("no.such.key".into())
        );
        assert!(cfg
            .set("flush.policy", "sometimes")
            .unwrap_err()
            .to_string()
            .contains("on-ack"));
        assert!(cfg.set("min.cleanable.dirty.ratio", "1.5").is_err());
        assert_eq!(
            cfg,
            LogConfig::default(),
            "failed sets must not change the config"
        );
    }
}
