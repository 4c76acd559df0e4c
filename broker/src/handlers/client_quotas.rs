//! DescribeClientQuotas and AlterClientQuotas (KIP-546): what
//! `kafka-configs.sh --entity-type users|clients --describe|--alter`
//! sends. Quotas live in the metadata quorum
//! ([`rivulet_controller::client_quotas`]); every broker enforces them
//! ([`crate::client_quotas`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntity, EntryData as AlterEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::ResponseError as E;
use rivulet_controller::client_quotas::{
    QuotaAlteration, QuotaEntity, QuotaValue, CLIENT_ID, IP, USER,
};
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::sb;
use crate::context::BrokerContext;

const IMAGE_WAIT: Duration = Duration::from_secs(10);

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// A checked filter: entity type → `Some(name)` (exact), `Some(None)`
/// (the default), or `None` (any named one).
type Filter = BTreeMap<String, Option<Option<String>>>;

fn filter(req: &DescribeClientQuotasRequest) -> Result<Filter, String> {
    let mut f = Filter::new();
    for c in &req.components {
        let t = c.entity_type.to_string();
        if t.is_empty() {
            return Err("Invalid empty entity type.".into());
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err(format!("Unsupported entity type {t}"));
        }
        let m = c._match.as_ref().map(|m| m.to_string());
        let wanted = match (c.match_type, m) {
            (MATCH_EXACT, Some(name)) => Some(Some(name)),
            (MATCH_EXACT, None) => {
                return Err(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            (MATCH_DEFAULT, None) => Some(None),
            (MATCH_SPECIFIED, None) => None,
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                return Err(
                    "Request specified a match string with a match type that takes none.".into(),
                )
            }
            (other, _) => return Err(format!("Unknown match type {other}")),
        };
        if f.insert(t.clone(), wanted).is_some() {
            return Err(format!(
                "Entity type {t} cannot appear more than once in the filter."
            ));
        }
    }
    if f.contains_key(IP) && (f.contains_key(USER) || f.contains_key(CLIENT_ID)) {
        return Err(
            "Invalid entity filter component combination. IP filter component should \
             not be used with user or clientId filter component."
                .into(),
        );
    }
    Ok(f)
}

fn matches(entity: &QuotaEntity, f: &Filter, strict: bool) -> bool {
    if strict && entity.0.len() != f.len() {
        return false;
    }
    f.iter().all(|(t, wanted)| match (entity.get(t), wanted) {
        (None, _) => false,
        (Some(name), Some(exact)) => name == exact.as_deref(),
        (Some(name), None) => name.is_some(),
    })
}

pub fn describe(
    b: &BrokerContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let f = match filter(&req) {
        Ok(f) => f,
        Err(why) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(E::InvalidRequest.code())
                .with_error_message(Some(sb(why)))
                .with_entries(None)
        }
    };
    let image = b.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|(entity, _)| matches(entity, &f, req.strict))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .0
                        .iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(sb(t.clone()))
                                .with_entity_name(n.clone().map(sb))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(sb(k.clone())).with_value(v.0))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub async fn alter(b: &BrokerContext, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    // Each entry checked here; the valid ones go to the controller together.
    let mut checked: Vec<(Vec<AlterEntity>, Result<QuotaAlteration, String>)> = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &req.entries {
        let echo: Vec<AlterEntity> = e
            .entity
            .iter()
            .map(|d| {
                AlterEntity::default()
                    .with_entity_type(d.entity_type.clone())
                    .with_entity_name(d.entity_name.clone())
            })
            .collect();
        let alteration = QuotaEntity::new(
            e.entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
        )
        .and_then(|entity| {
            if !seen.insert(entity.clone()) {
                return Err("the entity appears more than once in the request".to_string());
            }
            let ops: Vec<(String, Option<QuotaValue>)> = e
                .ops
                .iter()
                .map(|o| {
                    (
                        o.key.to_string(),
                        (!o.remove).then_some(QuotaValue(o.value)),
                    )
                })
                .collect();
            for (k, v) in &ops {
                rivulet_controller::client_quotas::check_op(k, v.map(|v| v.0))?;
            }
            Ok(QuotaAlteration { entity, ops })
        });
        checked.push((echo, alteration));
    }
    let valid: Vec<QuotaAlteration> = checked
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok().cloned())
        .collect();
    // The controller's answer for each valid entry, in order.
    let mut answers: std::vec::IntoIter<Result<(), (i16, String)>> =
        if req.validate_only || valid.is_empty() {
            vec![Ok(()); valid.len()].into_iter()
        } else {
            match b
                .controller_request(ControllerRequest::AlterClientQuotas {
                    alterations: valid.clone(),
                })
                .await
            {
                ControllerResponse::ClientQuotaResults { offset, results } => {
                    b.wait_until(IMAGE_WAIT, |image| image.offset >= offset)
                        .await;
                    results
                        .into_iter()
                        .map(|r| r.map_or(Ok(()), |why| Err((E::InvalidRequest.code(), why))))
                        .collect::<Vec<_>>()
                        .into_iter()
                }
                other => {
                    let (code, why) = crate::errors::controller_response(&other);
                    let code = if code == 0 {
                        E::UnknownServerError.code()
                    } else {
                        code
                    };
                    vec![Err((code, why.unwrap_or_default())); valid.len()].into_iter()
                }
            }
        };
    let entries = checked
        .into_iter()
        .map(|(echo, a)| {
            let outcome = match a {
                Ok(_) => answers.next().unwrap_or(Ok(())),
                Err(why) => Err((E::InvalidRequest.code(), why)),
            };
            let entry = AlterEntry::default().with_entity(echo);
            match outcome {
                Ok(()) => entry,
                Err((code, why)) => entry
                    .with_error_code(code)
                    .with_error_message(Some(sb(why))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;

    fn component(t: &str, match_type: i8, m: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(sb(t.to_string()))
            .with_match_type(match_type)
            .with_match(m.map(|m| sb(m.to_string())))
    }

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::new(
            parts
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn filters_match_exact_default_and_specified_names_strictly_or_not() {
        let req = |c: Vec<ComponentData>| DescribeClientQuotasRequest::default().with_components(c);
        let alice = entity(&[(USER, Some("alice"))]);
        let alice_c = entity(&[(USER, Some("alice")), (CLIENT_ID, Some("c"))]);
        let default_user = entity(&[(USER, None)]);
        let f = filter(&req(vec![component(USER, MATCH_EXACT, Some("alice"))])).unwrap();
        assert!(matches(&alice, &f, true) && matches(&alice_c, &f, false));
        assert!(!matches(&alice_c, &f, true) && !matches(&default_user, &f, false));
        let f = filter(&req(vec![component(USER, MATCH_DEFAULT, None)])).unwrap();
        assert!(matches(&default_user, &f, true) && !matches(&alice, &f, false));
        let f = filter(&req(vec![component(USER, MATCH_SPECIFIED, None)])).unwrap();
        assert!(matches(&alice, &f, true) && !matches(&default_user, &f, false));
        let f = filter(&req(vec![])).unwrap();
        assert!(matches(&alice_c, &f, false) && !matches(&alice_c, &f, true));
        for bad in [
            vec![component(USER, MATCH_EXACT, None)],
            vec![component(USER, MATCH_DEFAULT, Some("x"))],
            vec![component(USER, 9, None)],
            vec![component("", MATCH_SPECIFIED, None)],
            vec![component("group", MATCH_SPECIFIED, None)],
            vec![
                component(USER, MATCH_SPECIFIED, None),
                component(USER, MATCH_DEFAULT, None),
            ],
            vec![
                component(IP, MATCH_SPECIFIED, None),
                component(USER, MATCH_DEFAULT, None),
            ],
        ] {
            assert!(filter(&req(bad.clone())).is_err(), "{bad:?}");
        }
    }
}
