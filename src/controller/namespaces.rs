//! Namespaces: the built-in ones exist from the cluster's first pass on
//! (`shoal-system`'s uid is the cluster id, as tools take `kube-system`'s
//! in Kubernetes), every namespace shows a phase, and a Terminating one is
//! emptied and then deleted. Objects with finalizers (claims, protected
//! while a pod uses them) are marked for deletion rather than deleted, and
//! the namespace waits for them, saying so in its conditions as Kubernetes'
//! `NamespaceFinalizersRemaining` does.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::resource::status::NamespaceStatus;
use crate::resource::{BUILTIN_NAMESPACES, Kind, Object, ObjectKey, ObjectMeta};
use crate::store::{Command, Op, Precondition, Store};

/// Most deletes in one write while a namespace empties.
const DELETE_CHUNK: usize = 200;

/// What one pass should write, decided from the namespaces and the
/// namespaced objects the replica holds.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Namespaces to create (built-in ones, and ones objects use without a
    /// Namespace object, from clusters older than namespace admission).
    pub create: Vec<String>,
    /// Namespaces that show no phase yet, with their versions: set
    /// `Active`, only if unchanged since read (a delete may have begun).
    pub activate: Vec<(ObjectKey, u64)>,
    /// Objects of Terminating namespaces to delete, with their versions.
    pub delete: Vec<(ObjectKey, u64)>,
    /// Objects of Terminating namespaces that hold finalizers and are not
    /// marked yet: mark them (their owner's controller deletes them).
    pub mark: Vec<(ObjectKey, u64)>,
    /// Terminating namespaces whose status should change to the one given
    /// (the condition naming the finalizers they wait for).
    pub status: Vec<(ObjectKey, Value)>,
    /// Terminating namespaces that are empty: delete them.
    pub finish: Vec<(ObjectKey, u64)>,
}

/// The condition type Kubernetes gives a namespace waiting for finalizers.
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The status of a Terminating namespace whose objects still hold
/// `finalizers` (name to number of objects), or `None` when it already says so.
fn waiting_status(ns: &Object, finalizers: &BTreeMap<String, usize>) -> Option<Value> {
    let what: Vec<String> = finalizers
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    let message = format!(
        "Some content in the namespace has finalizers remaining: {}",
        what.join(", ")
    );
    let current = ns.body.get("status").cloned().unwrap_or_else(|| json!({}));
    let said = current["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == FINALIZERS_REMAINING && c["message"] == message.as_str())
    });
    if said {
        return None;
    }
    Some(json!({
        "phase": "Terminating",
        "conditions": [{
            "type": FINALIZERS_REMAINING,
            "status": "True",
            "reason": "SomeFinalizersRemain",
            "message": message,
            "lastTransitionTime": crate::resource::time::now_rfc3339(),
        }],
    }))
}

fn phase(ns: &Object) -> Option<String> {
    ns.status_or_default::<NamespaceStatus>().phase
}

/// Decides a pass. `contents` are every namespaced object (any kind).
pub fn plan(namespaces: &[Object], contents: &[Object]) -> Plan {
    let mut plan = Plan::default();
    let known: BTreeSet<&str> = namespaces
        .iter()
        .map(|n| n.metadata.name.as_str())
        .collect();
    let mut wanted: BTreeSet<&str> = BUILTIN_NAMESPACES.into_iter().collect();
    // Adoption only when the cluster is first given namespaces: afterwards
    // the API refuses objects in missing namespaces.
    if !known.contains(crate::resource::SYSTEM_NAMESPACE) {
        wanted.extend(
            contents
                .iter()
                .filter_map(|o| o.metadata.namespace.as_deref()),
        );
    }
    plan.create = wanted
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(str::to_string)
        .collect();
    let terminating: BTreeSet<&str> = namespaces
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .map(|n| n.metadata.name.as_str())
        .collect();
    // Per terminating namespace: finalizer name to objects holding it.
    let mut held: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for o in contents {
        let Some(ns) = o
            .metadata
            .namespace
            .as_deref()
            .filter(|n| terminating.contains(n))
        else {
            continue;
        };
        let Some(key) = o.key() else { continue };
        match o.metadata.finalizers.as_deref() {
            Some(fs) if !fs.is_empty() => {
                for f in fs {
                    *held.entry(ns).or_default().entry(f.clone()).or_default() += 1;
                }
                if o.metadata.deletion_timestamp.is_none() {
                    plan.mark.push((key, o.resource_version()));
                }
            }
            _ => plan.delete.push((key, o.resource_version())),
        }
    }
    for ns in namespaces {
        let Some(key) = ns.key() else { continue };
        if ns.metadata.deletion_timestamp.is_some() {
            if let Some(fs) = held.get(ns.metadata.name.as_str())
                && let Some(status) = waiting_status(ns, fs)
            {
                plan.status.push((key.clone(), status));
            }
            let empty = !contents
                .iter()
                .any(|o| o.metadata.namespace.as_deref() == Some(ns.metadata.name.as_str()));
            if empty {
                plan.finish.push((key, ns.resource_version()));
            }
        } else if phase(ns).is_none() {
            plan.activate.push((key, ns.resource_version()));
        }
    }
    plan
}

fn namespace_object(name: &str) -> Object {
    Object {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        metadata: ObjectMeta {
            name: name.to_string(),
            creation_timestamp: Some(crate::resource::time::now_rfc3339()),
            ..ObjectMeta::default()
        },
        body: [(
            "status".to_string(),
            serde_json::to_value(NamespaceStatus::phase("Active")).unwrap_or_default(),
        )]
        .into_iter()
        .collect(),
    }
}

/// Runs one pass: reads the replica, writes what [`plan`] decides.
pub async fn reconcile(store: &Store) {
    let Ok((namespaces, _)) = store.list(Kind::Namespace, None) else {
        warn!("namespaces: cannot read the replica");
        return;
    };
    let mut contents = Vec::new();
    let mut custom = Vec::new();
    let needs_contents = namespaces
        .iter()
        .any(|n| n.metadata.deletion_timestamp.is_some())
        || !namespaces
            .iter()
            .any(|n| n.metadata.name == crate::resource::SYSTEM_NAMESPACE);
    if needs_contents {
        for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
            match store.list(kind, None) {
                Ok((items, _)) => contents.extend(items),
                Err(e) => {
                    warn!("namespaces: cannot list {kind}: {e}");
                    return;
                }
            }
        }
        // Custom objects are named by their definition (crate::crd): those
        // of a stored definition are deleted with their namespace below,
        // and the namespace waits for them as for any content.
        match (
            store.list(Kind::CustomResourceDefinition, None),
            store.list(Kind::CustomObject, None),
        ) {
            (Ok((defs, _)), Ok((objects, _))) => {
                let defs: Vec<_> = defs
                    .iter()
                    .filter_map(crate::crd::Definition::from_object)
                    .collect();
                custom = crate::crd::keyed(objects, &defs);
                contents.extend(custom.iter().map(|(_, o)| o.clone()));
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!("namespaces: cannot list custom objects: {e}");
                return;
            }
        }
    }
    let plan = plan(&namespaces, &contents);
    let mut writes: Vec<(String, Vec<Op>)> = Vec::new();
    for name in &plan.create {
        let Ok(object) = serde_json::to_vec(&namespace_object(name)) else {
            continue;
        };
        writes.push((
            format!("create namespace {name}"),
            vec![Op::Put {
                key: ObjectKey::new(Kind::Namespace, "", name),
                object,
                precondition: Precondition::MustNotExist,
            }],
        ));
    }
    for (key, version) in &plan.activate {
        let status = serde_json::to_vec(&json!({ "phase": "Active" })).unwrap_or_default();
        writes.push((
            format!("activate {key}"),
            vec![
                Op::Check {
                    key: key.clone(),
                    version: *version,
                },
                Op::SetStatus {
                    key: key.clone(),
                    uid: None,
                    status,
                },
            ],
        ));
    }
    for chunk in plan.delete.chunks(DELETE_CHUNK) {
        let ops = chunk
            .iter()
            .map(|(key, v)| Op::Delete {
                key: key.clone(),
                precondition: Precondition::Version(*v),
            })
            .collect();
        writes.push((
            format!("delete {} objects of terminating namespaces", chunk.len()),
            ops,
        ));
    }
    let terminating: Vec<&str> = namespaces
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .map(|n| n.metadata.name.as_str())
        .collect();
    let custom: Vec<_> = custom
        .iter()
        .filter(|(k, _)| terminating.contains(&k.namespace.as_str()))
        .collect();
    for chunk in custom.chunks(DELETE_CHUNK) {
        let ops = chunk
            .iter()
            .map(|(key, o)| Op::Delete {
                key: key.clone(),
                precondition: Precondition::Version(o.resource_version()),
            })
            .collect();
        writes.push((
            format!(
                "delete {} custom objects of terminating namespaces",
                chunk.len()
            ),
            ops,
        ));
    }
    for (key, v) in &plan.mark {
        let Some(mut o) = contents
            .iter()
            .find(|o| o.key().as_ref() == Some(key))
            .cloned()
        else {
            continue;
        };
        o.metadata.deletion_timestamp = Some(crate::resource::time::now_rfc3339());
        let Ok(object) = serde_json::to_vec(&o) else {
            continue;
        };
        writes.push((
            format!("mark {key} for deletion (it has finalizers)"),
            vec![Op::Put {
                key: key.clone(),
                object,
                precondition: Precondition::Version(*v),
            }],
        ));
    }
    for (key, status) in &plan.status {
        let Ok(status) = serde_json::to_vec(status) else {
            continue;
        };
        writes.push((
            format!("{key} waits for finalizers"),
            vec![Op::SetStatus {
                key: key.clone(),
                uid: None,
                status,
            }],
        ));
    }
    for (key, v) in &plan.finish {
        writes.push((
            format!("delete emptied {key}"),
            vec![Op::Delete {
                key: key.clone(),
                precondition: Precondition::Version(*v),
            }],
        ));
    }
    for (what, ops) in writes {
        match store.write(Command { ops }).await {
            Ok(_) => info!("namespaces: {what}"),
            Err(e) => super::ControllerError::from(e).log("namespace", &what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: Option<&str>, name: &str) -> Object {
        Object {
            api_version: "v1".into(),
            kind: kind.into(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: ns.map(str::to_string),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            body: Default::default(),
        }
    }

    fn active(name: &str) -> Object {
        let mut n = obj("Namespace", None, name);
        n.body.insert("status".into(), json!({"phase": "Active"}));
        n
    }

    #[test]
    fn a_new_cluster_gets_the_builtin_namespaces_and_adopts_used_ones() {
        let p = plan(&[], &[obj("ConfigMap", Some("team-a"), "c")]);
        assert_eq!(p.create, vec!["default", "shoal-system", "team-a"]);
    }

    #[test]
    fn an_idle_cluster_writes_nothing() {
        let nss = [active("default"), active("shoal-system"), active("web")];
        let p = plan(&nss, &[obj("Pod", Some("web"), "p")]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn once_initialised_a_missing_namespace_is_not_adopted() {
        let nss = [active("default"), active("shoal-system")];
        let p = plan(&nss, &[obj("Pod", Some("ghost"), "p")]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn a_namespace_without_phase_is_activated() {
        let nss = [
            active("default"),
            active("shoal-system"),
            obj("Namespace", None, "new"),
        ];
        let p = plan(&nss, &[]);
        assert_eq!(
            p.activate,
            vec![(ObjectKey::new(Kind::Namespace, "", "new"), 7)]
        );
    }

    #[test]
    fn a_terminating_namespace_is_emptied_then_deleted() {
        let mut gone = active("gone");
        gone.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        let nss = [active("default"), active("shoal-system"), gone];
        let contents = [
            obj("Pod", Some("gone"), "p"),
            obj("Pod", Some("default"), "q"),
        ];
        let p = plan(&nss, &contents);
        assert_eq!(p.delete, vec![(ObjectKey::new(Kind::Pod, "gone", "p"), 7)]);
        assert!(p.finish.is_empty());
        let p = plan(&nss, &contents[1..]);
        assert!(p.delete.is_empty());
        assert_eq!(
            p.finish,
            vec![(ObjectKey::new(Kind::Namespace, "", "gone"), 7)]
        );
    }

    #[test]
    fn a_protected_claim_is_marked_and_the_namespace_says_it_waits() {
        let mut gone = active("gone");
        gone.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        let nss = [active("default"), active("shoal-system"), gone];
        let mut claim = obj("PersistentVolumeClaim", Some("gone"), "data");
        claim.metadata.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
        let p = plan(&nss, &[claim.clone(), obj("Pod", Some("gone"), "p")]);
        let claim_key = ObjectKey::new(Kind::PersistentVolumeClaim, "gone", "data");
        assert_eq!(p.mark, vec![(claim_key, 7)]);
        assert_eq!(p.delete, vec![(ObjectKey::new(Kind::Pod, "gone", "p"), 7)]);
        assert!(p.finish.is_empty(), "the claim is still there");
        let [(key, status)] = &p.status[..] else {
            panic!("one status write: {:?}", p.status);
        };
        assert_eq!(key, &ObjectKey::new(Kind::Namespace, "", "gone"));
        assert_eq!(status["phase"], "Terminating");
        assert_eq!(status["conditions"][0]["type"], FINALIZERS_REMAINING);
        assert_eq!(
            status["conditions"][0]["message"],
            "Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection in 1 resource instances"
        );

        // Marked already, and the namespace says so: nothing more to write.
        claim.metadata.deletion_timestamp = Some("2026-01-01T00:00:01Z".into());
        let mut nss = nss;
        nss[2].body.insert("status".into(), status.clone());
        let p = plan(&nss, &[claim]);
        assert!(p.mark.is_empty() && p.delete.is_empty() && p.status.is_empty());
        assert!(p.finish.is_empty());
    }
}
