//! Checks of the storage kinds: PersistentVolumeClaim, PersistentVolume and
//! StorageClass.

use super::*;
use crate::resource::types::{
    AccessMode, CsiVolumeSource, DEFAULT_CLASS_ANNOTATION, DOCKER_DRIVER_PARAMETER,
    DOCKER_PROVISIONER, LOCAL_PROVISIONER, PROVISIONED_BY, PersistentVolumeBody,
    PersistentVolumeClaimBody, Quantity, ReclaimPolicy, StorageClassBody, VolumeBindingMode,
    VolumeMode,
};

/// Kubernetes claim fields outside shoal's subset.
pub(super) const PVC_SPEC_UNSUPPORTED: &[&str] =
    &["dataSource", "dataSourceRef", "volumeAttributesClassName"];
/// Kubernetes volume fields outside shoal's subset (other volume sources
/// fall to "unknown field").
pub(super) const PV_SPEC_UNSUPPORTED: &[&str] = &["mountOptions", "volumeAttributesClassName"];

const BLOCK_REFUSED: &str = "Block is not supported: shoal's volumes are directories mounted into containers; use Filesystem (the default)";
const RECYCLE_REFUSED: &str =
    "Recycle is not supported (Kubernetes deprecated it): use Delete or Retain";

/// Checks a list of access modes at `path`.
fn check_access_modes(path: &str, modes: &[AccessMode]) -> Res {
    if modes.is_empty() {
        return fail(
            path,
            "at least one access mode is required: ReadWriteOnce or ReadWriteOncePod",
        );
    }
    for (i, m) in modes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if matches!(m, AccessMode::ReadOnlyMany | AccessMode::ReadWriteMany) {
            return fail(
                p,
                format!(
                    "{m:?} is not supported: shoal's volumes live on one node; use ReadWriteOnce or ReadWriteOncePod"
                ),
            );
        }
        if modes[..i].contains(m) {
            return fail(p, format!("{m:?} is listed twice"));
        }
    }
    if modes.contains(&AccessMode::ReadWriteOncePod) && modes.len() > 1 {
        return fail(
            path,
            "ReadWriteOncePod cannot be combined with another access mode",
        );
    }
    Ok(())
}

/// Checks a `storage` quantity map (a claim's requests, a volume's capacity).
fn check_storage_map(
    path: &str,
    map: &BTreeMap<String, Quantity>,
    required: bool,
) -> Res<Option<u64>> {
    if let Some(k) = map.keys().find(|k| k.as_str() != "storage") {
        return fail(
            join(path, k),
            "only storage is supported (the volume's size in bytes, such as 1Gi)",
        );
    }
    let p = join(path, "storage");
    let Some(q) = map.get("storage") else {
        if required {
            return fail(p, "missing: the volume's size, such as 1Gi");
        }
        return Ok(None);
    };
    let bytes = q.memory_bytes().or_else(|e| fail(&p, e.to_string()))?;
    if bytes == 0 {
        return fail(p, "must be more than zero");
    }
    Ok(Some(bytes))
}

fn check_volume_mode(path: &str, mode: Option<VolumeMode>) -> Res {
    match mode {
        Some(VolumeMode::Block) => fail(path, BLOCK_REFUSED),
        _ => Ok(()),
    }
}

fn check_class_name(path: &str, name: Option<&str>) -> Res {
    match name {
        // "" asks for no class: only volumes made by hand.
        None | Some("") => Ok(()),
        Some(n) => check_dns_subdomain(path, n),
    }
}

pub(super) fn check_claim(b: &PersistentVolumeClaimBody) -> Res {
    let s = &b.spec;
    check_access_modes("spec.accessModes", &s.access_modes)?;
    let requested = check_storage_map("spec.resources.requests", &s.resources.requests, true)?;
    let limit = check_storage_map("spec.resources.limits", &s.resources.limits, false)?;
    if let (Some(r), Some(l)) = (requested, limit)
        && l < r
    {
        return fail(
            "spec.resources.limits.storage",
            "must be at least spec.resources.requests.storage",
        );
    }
    check_class_name("spec.storageClassName", s.storage_class_name.as_deref())?;
    check_volume_mode("spec.volumeMode", s.volume_mode)?;
    if let Some(v) = &s.volume_name {
        check_dns_subdomain("spec.volumeName", v)?;
    }
    if let Some(sel) = &s.selector {
        super::workloads::check_selector(sel, "spec.selector")?;
    }
    Ok(())
}

pub(super) fn check_volume(b: &PersistentVolumeBody, meta: &ObjectMeta) -> Res {
    // One shoal provisioned lives in the node's data dir, which it names.
    let provisioned =
        meta.annotations.get(PROVISIONED_BY).map(String::as_str) == Some(LOCAL_PROVISIONER);
    let s = &b.spec;
    check_storage_map("spec.capacity", &s.capacity, true)?;
    check_access_modes("spec.accessModes", &s.access_modes)?;
    if s.persistent_volume_reclaim_policy == Some(ReclaimPolicy::Recycle) {
        return fail("spec.persistentVolumeReclaimPolicy", RECYCLE_REFUSED);
    }
    check_class_name("spec.storageClassName", s.storage_class_name.as_deref())?;
    check_volume_mode("spec.volumeMode", s.volume_mode)?;
    if let Some(c) = &s.csi {
        check_csi(c, s.local.is_some() || s.host_path.is_some())?;
    } else {
        match (&s.local, &s.host_path) {
            (None, None) if provisioned => {
                if b.spec.pinned_node().is_none() {
                    return fail(
                        "spec.nodeAffinity",
                        "missing: a volume of shoal.io/local lives on one node (kubernetes.io/hostname In [NODE])",
                    );
                }
            }
            (None, None) => {
                return fail(
                    "spec",
                    "a PersistentVolume needs a source: local (with nodeAffinity), hostPath or csi (driver shoal.io/docker)",
                );
            }
            (Some(_), Some(_)) => {
                return fail("spec.hostPath", "only one source: local or hostPath");
            }
            (Some(l), None) => {
                if !l.path.starts_with('/') {
                    return fail(
                        "spec.local.path",
                        format!("{:?} must be an absolute path", l.path),
                    );
                }
                if s.node_affinity.is_none() {
                    return fail(
                        "spec.nodeAffinity",
                        "missing: a local volume needs the node it lives on (required.nodeSelectorTerms with kubernetes.io/hostname In [NODE])",
                    );
                }
            }
            (None, Some(h)) => {
                if !h.path.starts_with('/') {
                    return fail(
                        "spec.hostPath.path",
                        format!("{:?} must be an absolute path", h.path),
                    );
                }
            }
        }
    }
    if let Some(a) = &s.node_affinity {
        let path = "spec.nodeAffinity.required.nodeSelectorTerms";
        if a.required.node_selector_terms.is_empty() {
            return fail(path, "at least one term is required");
        }
        for (i, t) in a.required.node_selector_terms.iter().enumerate() {
            if !t.match_fields.is_empty() {
                return fail(
                    format!("{path}[{i}].matchFields"),
                    "not supported on a volume: select the node by its labels",
                );
            }
            if t.match_expressions.is_empty() {
                return fail(
                    format!("{path}[{i}].matchExpressions"),
                    "at least one expression is required",
                );
            }
            for (j, e) in t.match_expressions.iter().enumerate() {
                check_qualified_name(&format!("{path}[{i}].matchExpressions[{j}].key"), &e.key)?;
            }
        }
    }
    if let Some(c) = &s.claim_ref {
        check_dns_label("spec.claimRef.namespace", &c.namespace)?;
        check_dns_subdomain("spec.claimRef.name", &c.name)?;
    }
    Ok(())
}

/// A `csi` volume source: only `shoal.io/docker`, a Docker volume name and
/// driver options the engine can take.
fn check_csi(c: &CsiVolumeSource, other_source: bool) -> Res {
    if other_source {
        return fail("spec.csi", "only one source: local, hostPath or csi");
    }
    if c.driver != DOCKER_PROVISIONER {
        return fail(
            "spec.csi.driver",
            format!(
                "{:?} is not a driver shoal has: only {DOCKER_PROVISIONER:?} (a Docker named volume)",
                c.driver
            ),
        );
    }
    check_docker_name("spec.csi.volumeHandle", &c.volume_handle)?;
    check_driver_options("spec.csi.volumeAttributes", &c.volume_attributes)
}

/// A Docker volume name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as the engine takes.
fn check_docker_name(path: &str, name: &str) -> Res {
    let ok = name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        fail(
            path,
            format!("{name:?} is not a Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"),
        )
    }
}

/// Options for a Docker volume driver (`driver` names the driver itself):
/// keys of letters, digits, `_`, `.` and `-`; `driver` not empty.
fn check_driver_options(path: &str, options: &BTreeMap<String, String>) -> Res {
    for (k, v) in options {
        let ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return fail(
                join(path, k),
                "an option name is letters, digits, '_', '.' and '-'",
            );
        }
        if k == DOCKER_DRIVER_PARAMETER {
            check_docker_name(&join(path, k), v)?;
        }
    }
    Ok(())
}

pub(super) fn check_storage_class(b: &mut StorageClassBody, meta: &ObjectMeta) -> Res {
    if b.provisioner == DOCKER_PROVISIONER {
        check_driver_options("parameters", &b.parameters)?;
        match b.volume_binding_mode {
            Some(VolumeBindingMode::WaitForFirstConsumer) => {
                return fail(
                    "volumeBindingMode",
                    format!(
                        "WaitForFirstConsumer is not supported by {DOCKER_PROVISIONER}: its volumes are not tied to a node; use Immediate (the default)"
                    ),
                );
            }
            None => b.volume_binding_mode = Some(VolumeBindingMode::Immediate),
            Some(VolumeBindingMode::Immediate) => {}
        }
        return check_class_common(b, meta);
    }
    if b.provisioner != LOCAL_PROVISIONER {
        return fail(
            "provisioner",
            format!(
                "{:?} is not a provisioner shoal has: use {LOCAL_PROVISIONER:?} (a directory on the node that runs the claim's first pod) or {DOCKER_PROVISIONER:?} (a Docker volume made by a volume driver of the engine, parameters passed to it)",
                b.provisioner
            ),
        );
    }
    if let Some(k) = b.parameters.keys().next() {
        return fail(
            join("parameters", k),
            format!("the {LOCAL_PROVISIONER} provisioner takes no parameters"),
        );
    }
    match b.volume_binding_mode {
        Some(VolumeBindingMode::Immediate) => {
            return fail(
                "volumeBindingMode",
                format!(
                    "Immediate is not supported by {LOCAL_PROVISIONER}: a local volume's node is chosen by its first pod; use WaitForFirstConsumer (the default for this provisioner)"
                ),
            );
        }
        // Stored explicitly so `get` shows what binding does.
        None => b.volume_binding_mode = Some(VolumeBindingMode::WaitForFirstConsumer),
        Some(VolumeBindingMode::WaitForFirstConsumer) => {}
    }
    check_class_common(b, meta)
}

/// What every class is checked for, whatever its provisioner.
fn check_class_common(b: &StorageClassBody, meta: &ObjectMeta) -> Res {
    if b.reclaim_policy == Some(ReclaimPolicy::Recycle) {
        return fail("reclaimPolicy", RECYCLE_REFUSED);
    }
    if b.allow_volume_expansion == Some(true) {
        return fail(
            "allowVolumeExpansion",
            "not supported: shoal's volumes cannot be resized yet",
        );
    }
    if let Some(v) = meta.annotations.get(DEFAULT_CLASS_ANNOTATION)
        && v != "true"
        && v != "false"
    {
        return fail(
            join("metadata.annotations", DEFAULT_CLASS_ANNOTATION),
            format!("{v:?} must be \"true\" or \"false\""),
        );
    }
    Ok(())
}
