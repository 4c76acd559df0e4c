//! The controller's ACL decisions (Kafka's `AclControlManager`): the
//! records that create ACLs (an id each, an ACL already present is not
//! added twice) and those that delete every ACL a filter matches, decided
//! against one image so that a delete is atomic. Validation of the wire
//! values (ANY in a creation, unknown codes) is the broker's, before a
//! typed [`AclBinding`] exists.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::acl::{AclBinding, AclFilter, MAX_ACLS_PER_OP};
use crate::image::MetadataImage;
use crate::logic::ControllerError;
use crate::records::MetadataRecord;

/// Records creating `acls` (those not yet in the image, once each).
pub fn create_acls(
    image: &MetadataImage,
    acls: &[AclBinding],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if acls.len() > MAX_ACLS_PER_OP {
        return Err(ControllerError::TooManyAcls(acls.len()));
    }
    let mut seen = BTreeSet::new();
    Ok(acls
        .iter()
        .filter(|a| !image.acls.contains(a) && seen.insert(*a))
        .map(|a| MetadataRecord::Acl {
            id: Uuid::new_v4(),
            acl: a.clone(),
        })
        .collect())
}

/// For each filter the ACLs it matches, and the records removing them all.
#[allow(clippy::type_complexity)]
pub fn delete_acls(
    image: &MetadataImage,
    filters: &[AclFilter],
) -> Result<(Vec<Vec<AclBinding>>, Vec<MetadataRecord>), ControllerError> {
    let mut ids = BTreeSet::new();
    let mut matched = Vec::with_capacity(filters.len());
    for f in filters {
        let mut acls = Vec::new();
        for (id, acl) in image.acls.matching(f) {
            ids.insert(*id);
            acls.push(acl.clone());
        }
        if ids.len() > MAX_ACLS_PER_OP {
            return Err(ControllerError::TooManyAcls(ids.len()));
        }
        matched.push(acls);
    }
    let records = ids
        .into_iter()
        .map(|id| MetadataRecord::RemoveAcl { id })
        .collect();
    Ok((matched, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{AclOperation, AclPermission, PatternType, ResourceType};

    fn acl(name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:a".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let offset = image.offset + 1;
            image.apply(offset, r).unwrap();
        }
    }

    #[test]
    fn creating_twice_adds_once_and_delete_is_by_filter() {
        let mut image = MetadataImage::default();
        let r = create_acls(&image, &[acl("a"), acl("a"), acl("b")]).unwrap();
        assert_eq!(r.len(), 2);
        apply(&mut image, &r);
        assert!(create_acls(&image, &[acl("a")]).unwrap().is_empty());
        let mut only_a = AclFilter::any();
        only_a.resource_name = Some("a".into());
        let (matched, r) = delete_acls(&image, &[only_a, AclFilter::any()]).unwrap();
        assert_eq!(matched[0], vec![acl("a")]);
        assert_eq!(matched[1].len(), 2);
        assert_eq!(r.len(), 2);
        apply(&mut image, &r);
        assert!(image.acls.is_empty());
    }
}
