//! Ingress status: `status.loadBalancer.ingress` lists the addresses of the
//! nodes gossip sees up (every node serves every Ingress of a served class), and an
//! Ingress of a class shoal does not serve gets an empty list and a
//! `NotServed` warning Event that says why. Written only on change.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::ControllerError;
use crate::ingress::routes::served;
use crate::resource::status::{IngressLoadBalancerIngress, IngressStatus, NodeStatus};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// The addresses Ingresses are served at: the InternalIP of every node
/// that is up (Node objects carry no stored Ready condition: liveness is
/// gossip's).
pub fn node_addresses(nodes: &[Object], alive: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
    let mut out = BTreeSet::new();
    for n in nodes {
        if !alive(&n.metadata.name) {
            continue;
        }
        let st: NodeStatus = n.status_or_default();
        for a in st.addresses.iter().filter(|a| a.type_ == "InternalIP") {
            out.insert(a.address.clone());
        }
    }
    out.into_iter().collect()
}

/// The status an Ingress should have, and the reason it is not served.
pub fn plan(ing: &Object, classes: &[Object], addrs: &[String]) -> (IngressStatus, Option<String>) {
    let mut st = IngressStatus::default();
    match served(ing, classes) {
        Ok(_) => {
            st.load_balancer.ingress = addrs
                .iter()
                .map(|a| IngressLoadBalancerIngress {
                    ip: Some(a.clone()),
                    hostname: None,
                })
                .collect();
            (st, None)
        }
        Err(reason) => (st, Some(reason)),
    }
}

/// Brings every Ingress's status (and NotServed event) up to date.
pub async fn reconcile(store: &Store, nodes: &[Object], alive: &(dyn Fn(&str) -> bool + Sync)) {
    let list = |k: Kind| store.list(k, None).map(|(v, _)| v);
    let (Ok(ingresses), Ok(classes)) = (list(Kind::Ingress), list(Kind::IngressClass)) else {
        return;
    };
    if let Ok(events) = list(Kind::Event) {
        super::gc::collect(store, "Ingress", &ingresses, &events).await;
    }
    let addrs = node_addresses(nodes, alive);
    for ing in &ingresses {
        let Some(key) = ing.key() else { continue };
        if let Err(e) = sync_one(store, ing, &key, &classes, &addrs).await {
            e.log("ingress", &key.to_string());
        }
    }
}

async fn sync_one(
    store: &Store,
    ing: &Object,
    key: &ObjectKey,
    classes: &[Object],
    addrs: &[String],
) -> Result<(), ControllerError> {
    let (want, not_served) = plan(ing, classes, addrs);
    let mut ops = Vec::new();
    let have: Option<IngressStatus> = ing.status().ok();
    if have.as_ref() != Some(&want) || ing.body.get("status").is_none() {
        ops.push(Op::SetStatus {
            key: key.clone(),
            uid: ing.metadata.uid.clone(),
            status: serde_json::to_vec(&want).map_err(|e| e.to_string())?,
        });
    }
    if let Some(reason) = not_served {
        let name = format!("{}.ingress.notserved", key.name);
        let ev_key = ObjectKey::new(Kind::Event, &key.namespace, &name);
        let current = store.get(&ev_key)?;
        let same = current.as_ref().is_some_and(|e| {
            e.body.get("message").and_then(Value::as_str) == Some(reason.as_str())
        });
        if !same {
            ops.push(event(ing, key, &name, &reason)?);
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    store.write(Command { ops }).await?;
    Ok(())
}

fn event(ing: &Object, key: &ObjectKey, name: &str, reason: &str) -> Result<Op, ControllerError> {
    let now = crate::resource::time::now_rfc3339();
    let body = json!({
        "involvedObject": {
            "kind": "Ingress",
            "apiVersion": Kind::Ingress.api_version(),
            "namespace": key.namespace,
            "name": key.name,
            "uid": ing.metadata.uid,
        },
        "reason": "NotServed",
        "message": reason,
        "type": "Warning",
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "ingress"},
    });
    let Value::Object(body) = body else {
        return Err("event body is not an object".into());
    };
    let obj = Object {
        api_version: "v1".into(),
        kind: "Event".into(),
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: Some(key.namespace.clone()),
            creation_timestamp: Some(now.clone()),
            owner_references: vec![OwnerReference::to(ing, true)],
            ..Default::default()
        },
        body,
    };
    Ok(Op::Put {
        key: ObjectKey::new(Kind::Event, &key.namespace, name),
        object: serde_json::to_vec(&obj).map_err(|e| e.to_string())?,
        precondition: Precondition::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Object {
        serde_json::from_value(v).expect("an object")
    }

    fn node(name: &str, ip: &str) -> Object {
        obj(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}]}}),
        )
    }

    fn ingress(class: Option<&str>) -> Object {
        let mut spec =
            json!({"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}});
        if let Some(c) = class {
            spec["ingressClassName"] = json!(c);
        }
        obj(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "i", "namespace": "default"}, "spec": spec}),
        )
    }

    #[test]
    fn live_nodes_addresses_fill_the_status_of_served_ingresses() {
        let nodes = [
            node("b", "10.0.0.2"),
            node("a", "10.0.0.1"),
            node("c", "10.0.0.3"),
            node("d", "10.0.0.1"),
        ];
        let addrs = node_addresses(&nodes, &|n| n != "c");
        assert_eq!(addrs, ["10.0.0.1", "10.0.0.2"]);
        let (st, why) = plan(&ingress(None), &[], &addrs);
        assert_eq!(why, None);
        let v = serde_json::to_value(&st).expect("json");
        assert_eq!(
            v,
            json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}})
        );
        let (st, why) = plan(&ingress(Some("nginx")), &[], &addrs);
        assert!(st.load_balancer.ingress.is_empty());
        assert!(why.is_some_and(|w| w.contains("\"nginx\" does not exist")));
    }
}
