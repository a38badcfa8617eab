//! Checks of a StatefulSet: the pod set checks, the governing Service's
//! name, the update strategy and the claim templates, whose names are
//! volumes the pod template may mount.

use super::*;
use crate::resource::types::{
    ClaimVolume, PersistentVolumeClaimBody, StatefulSetSpec, StatefulSetStrategyType, Volume,
    claim_name,
};
use workloads::{check_count_or_percent, check_pod_set, is_zero};

pub(super) fn check_stateful_set(spec: &StatefulSetSpec, ck: &mut Checker) -> Res {
    if let Some(svc) = &spec.service_name
        && !is_dns_1035_label(svc)
    {
        return fail(
            "spec.serviceName",
            format!(
                "{svc:?} is not valid: it must be a Service's name, {DNS_1035_RULE} \
                 (the pods' DNS names are POD.{svc}.NAMESPACE.svc.DOMAIN)"
            ),
        );
    }
    let mut names = BTreeSet::new();
    for (i, t) in spec.volume_claim_templates.iter().enumerate() {
        let tp = format!("spec.volumeClaimTemplates[{i}]");
        let name = &t.metadata.name;
        if name.is_empty() {
            return fail(
                format!("{tp}.metadata.name"),
                "missing: the name of the pod volume the claims fill",
            );
        }
        if !is_dns_label(name) {
            return fail(
                format!("{tp}.metadata.name"),
                format!("{name:?} is not valid: it must be {DNS_LABEL_RULE}"),
            );
        }
        if !names.insert(name.as_str()) {
            return fail(
                format!("{tp}.metadata.name"),
                format!("{name:?} is the name of an earlier claim template"),
            );
        }
        if let Some(j) = spec
            .template
            .spec
            .volumes
            .iter()
            .position(|v| &v.name == name)
        {
            return fail(
                format!("{tp}.metadata.name"),
                format!(
                    "{name:?} is also spec.template.spec.volumes[{j}]: a claim template \
                     is the volume of that name, so the pod template must not define it"
                ),
            );
        }
        check_labels(&format!("{tp}.metadata.labels"), &t.metadata.labels)?;
        check_annotations(
            &format!("{tp}.metadata.annotations"),
            &t.metadata.annotations,
        )?;
        let body = PersistentVolumeClaimBody {
            spec: t.spec.clone(),
        };
        check_claim(&body).map_err(|f| Failure {
            path: format!("{tp}.{}", f.path),
            message: f.message,
        })?;
    }
    // The pods mount the claim templates as volumes the template itself
    // does not list: check the template as the controller will write it.
    let mut template = spec.template.clone();
    for t in &spec.volume_claim_templates {
        template.spec.volumes.push(Volume {
            name: t.metadata.name.clone(),
            persistent_volume_claim: Some(ClaimVolume {
                claim_name: claim_name(&t.metadata.name, "set", 0),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    check_pod_set(
        spec.replicas,
        &spec.selector,
        &template,
        Kind::StatefulSet,
        ck,
    )?;
    let Some(st) = &spec.update_strategy else {
        return Ok(());
    };
    let Some(ru) = &st.rolling_update else {
        return Ok(());
    };
    let rp = "spec.updateStrategy.rollingUpdate";
    if st.strategy_type == Some(StatefulSetStrategyType::OnDelete) {
        return fail(rp, "may not be set when type is OnDelete");
    }
    if let Some(p) = ru.partition
        && p > workloads::MAX_REPLICAS
    {
        return fail(
            format!("{rp}.partition"),
            format!(
                "{p} is over {}, the largest a Kubernetes int32 holds",
                workloads::MAX_REPLICAS
            ),
        );
    }
    if let Some(v) = &ru.max_unavailable {
        let path = format!("{rp}.maxUnavailable");
        check_count_or_percent(&path, v, Some(100))?;
        if is_zero(v) {
            return fail(path, "must be at least 1 (or a percentage above 0%)");
        }
    }
    Ok(())
}
