//! Client quotas (KIP-13, KIP-55, KIP-546) as the metadata quorum keeps
//! them: per quota entity (a user, a client id, or both; each named or the
//! default), quota keys with their values, altered through
//! AlterClientQuotas and described through DescribeClientQuotas
//! (`kafka-configs.sh --entity-type users|clients`). The brokers enforce
//! them (`rivulet_broker::client_quotas`).
//!
//! Kept: `producer_byte_rate` and `consumer_byte_rate` (bytes per second
//! per broker), the keys this broker enforces. Kafka's other keys
//! (`request_percentage`, `controller_mutation_rate`, and the `ip` entity's
//! `connection_creation_rate`) are refused with a message saying so rather
//! than stored and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// The user entity type.
pub const USER: &str = "user";
/// The client-id entity type.
pub const CLIENT_ID: &str = "client-id";
/// The IP entity type (connection-rate quotas: not enforced here).
pub const IP: &str = "ip";

/// Bytes per second a (user, client) may produce to one broker.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a (user, client) may fetch from one broker.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The quota keys stored and enforced.
pub const KEYS: &[&str] = &[PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE];
/// Kafka's other quota keys: refused, with why.
const NOT_ENFORCED: &[&str] = &[
    "request_percentage",
    "controller_mutation_rate",
    "connection_creation_rate",
];

/// A quota entity: entity type → name (`None`: the type's default), at
/// most one of each type, in type order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity(pub Vec<(String, Option<String>)>);

impl QuotaEntity {
    /// The entity of `(type, name)` pairs, sorted; an error (Kafka's
    /// INVALID_REQUEST message) for an empty entity, a repeated or unknown
    /// type, an empty name, or an `ip` entity.
    pub fn new(parts: Vec<(String, Option<String>)>) -> Result<QuotaEntity, String> {
        if parts.is_empty() {
            return Err("Invalid empty client quota entity".into());
        }
        let mut sorted: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (entity_type, name) in parts {
            match entity_type.as_str() {
                USER | CLIENT_ID => {}
                IP => {
                    return Err("ip quotas (connection_creation_rate) are not supported: \
                         only user and client-id quotas are enforced"
                        .into())
                }
                other => return Err(format!("Unhandled client quota entity type: {other}")),
            }
            if name.as_deref() == Some("") {
                return Err(format!("Empty {entity_type} not supported"));
            }
            if sorted.insert(entity_type.clone(), name).is_some() {
                return Err(format!(
                    "Invalid client quota entity, duplicate entity entry {entity_type}"
                ));
            }
        }
        Ok(QuotaEntity(sorted.into_iter().collect()))
    }

    /// The name of `entity_type` in this entity: `None` if absent,
    /// `Some(None)` for its default.
    pub fn get(&self, entity_type: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(t, _)| t == entity_type)
            .map(|(_, n)| n.as_deref())
    }
}

/// A quota value (always finite and above 0): compared by its bits, so
/// images and records stay `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Every entity's quotas.
pub type ClientQuotaStore = BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>;

/// One entity's changes: key → new value, or `None` to remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub ops: Vec<(String, Option<QuotaValue>)>,
}

/// Check one quota key and value as Kafka's ClientQuotaControlManager
/// does (both byte rates are LONG: integral and above 0).
pub fn check_op(key: &str, value: Option<f64>) -> Result<(), String> {
    if NOT_ENFORCED.contains(&key) {
        return Err(format!(
            "{key} is not supported: only producer_byte_rate and consumer_byte_rate are enforced"
        ));
    }
    if !KEYS.contains(&key) {
        return Err(format!("Invalid configuration key {key}"));
    }
    let Some(value) = value else {
        return Ok(());
    };
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("Quota {key} must be greater than 0"));
    }
    if value > i64::MAX as f64 {
        return Err(format!("Proposed value for {key} is too large for a LONG."));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(format!("{key} cannot be a fractional value."));
    }
    Ok(())
}

/// The records for `alterations` (each applied whole or not at all) and
/// one result per alteration, in order: `None` when applied, else why not.
pub fn alter(
    image: &MetadataImage,
    alterations: &[QuotaAlteration],
) -> (Vec<MetadataRecord>, Vec<Option<String>>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    for a in alterations {
        let checked = a
            .ops
            .iter()
            .try_for_each(|(k, v)| check_op(k, v.map(|v| v.0)))
            .and_then(|()| {
                let mut seen = std::collections::BTreeSet::new();
                match a.ops.iter().find(|(k, _)| !seen.insert(k)) {
                    Some((k, _)) => Err(format!("Duplicate quota key {k}")),
                    None => Ok(()),
                }
            });
        if let Err(why) = checked {
            results.push(Some(why));
            continue;
        }
        let current = image.client_quotas.get(&a.entity);
        for (key, value) in &a.ops {
            // Removing a key that is not set changes nothing.
            if value.is_none() && current.is_none_or(|c| !c.contains_key(key)) {
                continue;
            }
            records.push(MetadataRecord::ClientQuota {
                entity: a.entity.clone(),
                key: key.clone(),
                value: *value,
            });
        }
        results.push(None);
    }
    (records, results)
}

/// Apply one `ClientQuota` record to `store`.
pub fn apply(
    store: &mut ClientQuotaStore,
    entity: &QuotaEntity,
    key: &str,
    value: Option<QuotaValue>,
) {
    match value {
        Some(v) => {
            store
                .entry(entity.clone())
                .or_default()
                .insert(key.to_string(), v);
        }
        None => {
            if let Some(values) = store.get_mut(entity) {
                values.remove(key);
                if values.is_empty() {
                    store.remove(entity);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> Result<QuotaEntity, String> {
        QuotaEntity::new(
            parts
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
        )
    }

    #[test]
    fn entities_are_users_client_ids_or_both_as_kafka_allows() {
        let e = entity(&[(CLIENT_ID, Some("c")), (USER, None)]).unwrap();
        assert_eq!(e.get(USER), Some(None));
        assert_eq!(e.get(CLIENT_ID), Some(Some("c")));
        assert_eq!(e, entity(&[(USER, None), (CLIENT_ID, Some("c"))]).unwrap());
        for (bad, why) in [
            (vec![], "empty"),
            (vec![(USER, Some("a")), (USER, Some("b"))], "duplicate"),
            (vec![("group", Some("g"))], "Unhandled"),
            (vec![(USER, Some(""))], "Empty user"),
            (vec![(IP, Some("1.2.3.4"))], "not supported"),
        ] {
            let e = entity(&bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn values_are_checked_and_alterations_apply_whole() {
        assert!(check_op(PRODUCER_BYTE_RATE, Some(1024.0)).is_ok());
        assert!(check_op(CONSUMER_BYTE_RATE, None).is_ok());
        for (key, value, why) in [
            (PRODUCER_BYTE_RATE, Some(0.0), "greater than 0"),
            (PRODUCER_BYTE_RATE, Some(-5.0), "greater than 0"),
            (CONSUMER_BYTE_RATE, Some(10.5), "fractional"),
            (CONSUMER_BYTE_RATE, Some(f64::NAN), "greater than 0"),
            ("request_percentage", Some(50.0), "not supported"),
            ("bogus", Some(1.0), "Invalid configuration key"),
        ] {
            let e = check_op(key, value).unwrap_err();
            assert!(e.contains(why), "{key} {value:?}: {e}");
        }
        let mut image = MetadataImage::default();
        let alice = entity(&[(USER, Some("alice"))]).unwrap();
        let good = QuotaAlteration {
            entity: alice.clone(),
            ops: vec![
                (PRODUCER_BYTE_RATE.into(), Some(QuotaValue(1000.0))),
                (CONSUMER_BYTE_RATE.into(), None),
            ],
        };
        let bad = QuotaAlteration {
            entity: alice.clone(),
            ops: vec![
                (CONSUMER_BYTE_RATE.into(), Some(QuotaValue(5.0))),
                ("bogus".into(), Some(QuotaValue(1.0))),
            ],
        };
        let (records, results) = alter(&image, &[good, bad]);
        assert_eq!(results[0], None);
        assert!(results[1].is_some());
        // Only the set: the removal of an absent key and the refused
        // alteration write nothing.
        assert_eq!(records.len(), 1);
        for (i, r) in records.iter().enumerate() {
            image.apply(i as u64 + 1, r).unwrap();
        }
        assert_eq!(
            image.client_quotas[&alice][PRODUCER_BYTE_RATE],
            QuotaValue(1000.0)
        );
        let remove = QuotaAlteration {
            entity: alice.clone(),
            ops: vec![(PRODUCER_BYTE_RATE.into(), None)],
        };
        let (records, _) = alter(&image, &[remove]);
        image.apply(9, &records[0]).unwrap();
        assert!(image.client_quotas.is_empty());
    }
}
