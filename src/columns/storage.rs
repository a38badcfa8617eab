//! Table cells of the storage kinds, in kubectl's columns: claims, volumes
//! and classes.

use serde_json::Value;

use super::cells::{s, status_of};
use crate::resource::status::{PersistentVolumeClaimStatus, PersistentVolumeStatus};
use crate::resource::types::{AccessMode, DEFAULT_CLASS_ANNOTATION, HOSTNAME_LABEL};

fn text(it: &Value, path: &[&str]) -> String {
    s(it, path).as_str().unwrap_or("").to_string()
}

/// `RWO,RWOP` from a list of access modes as stored.
fn modes(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| serde_json::from_value::<AccessMode>(m.clone()).ok())
        .map(AccessMode::short)
        .collect::<Vec<_>>()
        .join(",")
}

fn terminating(it: &Value) -> bool {
    s(it, &["metadata", "deletionTimestamp"]).is_string()
}

/// STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS (AGE is added by the caller).
pub(crate) fn claim_cells(it: &Value) -> Vec<String> {
    let st: PersistentVolumeClaimStatus = status_of(it);
    let phase = if terminating(it) {
        "Terminating".to_string()
    } else {
        st.phase.clone().unwrap_or_else(|| "Pending".into())
    };
    let capacity = st
        .capacity
        .get("storage")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let status_modes = serde_json::to_value(&st.access_modes).unwrap_or(Value::Null);
    vec![
        phase,
        text(it, &["spec", "volumeName"]),
        capacity,
        modes(&status_modes),
        text(it, &["spec", "storageClassName"]),
    ]
}

/// CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS (then AGE
/// and NODE, which the caller orders).
pub(crate) fn volume_cells(it: &Value) -> Vec<String> {
    let st: PersistentVolumeStatus = status_of(it);
    let phase = if terminating(it) {
        "Terminating".to_string()
    } else {
        st.phase.clone().unwrap_or_else(|| "Available".into())
    };
    let claim = match (
        s(it, &["spec", "claimRef", "namespace"]).as_str(),
        s(it, &["spec", "claimRef", "name"]).as_str(),
    ) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => String::new(),
    };
    let policy = s(it, &["spec", "persistentVolumeReclaimPolicy"])
        .as_str()
        .unwrap_or("Retain")
        .to_string();
    vec![
        text(it, &["spec", "capacity", "storage"]),
        modes(s(it, &["spec", "accessModes"])),
        policy,
        phase,
        claim,
        text(it, &["spec", "storageClassName"]),
    ]
}

/// The node a volume's affinity pins it to, or `<none>`.
pub(crate) fn volume_node(it: &Value) -> String {
    s(
        it,
        &["spec", "nodeAffinity", "required", "nodeSelectorTerms"],
    )
    .as_array()
    .into_iter()
    .flatten()
    .flat_map(|t| s(t, &["matchExpressions"]).as_array().into_iter().flatten())
    .find(|e| s(e, &["key"]).as_str() == Some(HOSTNAME_LABEL))
    .and_then(|e| s(e, &["values"]).as_array()?.first()?.as_str())
    .unwrap_or("<none>")
    .to_string()
}

/// A class's NAME cell: ` (default)` after the default class, as kubectl.
pub(crate) fn class_name(it: &Value) -> String {
    let name = text(it, &["metadata", "name"]);
    let default = s(it, &["metadata", "annotations", DEFAULT_CLASS_ANNOTATION]).as_str();
    if default == Some("true") {
        format!("{name} (default)")
    } else {
        name
    }
}

/// PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION.
pub(crate) fn class_cells(it: &Value) -> Vec<String> {
    vec![
        text(it, &["provisioner"]),
        s(it, &["reclaimPolicy"])
            .as_str()
            .unwrap_or("Delete")
            .to_string(),
        s(it, &["volumeBindingMode"])
            .as_str()
            .unwrap_or("Immediate")
            .to_string(),
        s(it, &["allowVolumeExpansion"])
            .as_bool()
            .unwrap_or(false)
            .to_string(),
    ]
}
