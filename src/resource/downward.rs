//! The downward API: a pod's own fields and its containers' resources, as
//! environment values (`env.valueFrom.fieldRef`/`resourceFieldRef`) and as
//! files (`downwardAPI` volumes and projections). Parsing is shared by the
//! manifest check and the agent, so what is accepted is what is served.

use std::collections::BTreeMap;

use super::types::{Container, ResourceFieldSelector};

/// A pod field the downward API can expose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodField {
    /// `metadata.name`
    Name,
    /// `metadata.namespace`
    Namespace,
    /// `metadata.uid`
    Uid,
    /// `metadata.labels`: every label, one `key="value"` a line (files only).
    Labels,
    /// `metadata.annotations`: every annotation (files only).
    Annotations,
    /// `metadata.labels['key']`
    Label(String),
    /// `metadata.annotations['key']`
    Annotation(String),
    /// `spec.nodeName`
    NodeName,
    /// `status.podIP`
    PodIp,
    /// `status.hostIP`
    HostIp,
}

/// The field paths accepted, for error messages.
pub const FIELD_PATHS: &str = "metadata.name, metadata.namespace, metadata.uid, \
metadata.labels['<key>'], metadata.annotations['<key>'], spec.nodeName, status.podIP, status.hostIP \
(and metadata.labels, metadata.annotations in volumes)";

/// Parses a `fieldPath`; whole label and annotation maps only where
/// `whole_maps` (volumes: they do not fit one environment value).
pub fn parse_field_path(p: &str, whole_maps: bool) -> Result<PodField, String> {
    let keyed = |prefix: &str| -> Option<String> {
        let rest = p.strip_prefix(prefix)?.strip_prefix("['")?;
        let key = rest.strip_suffix("']")?;
        (!key.is_empty() && !key.contains('\'')).then(|| key.to_string())
    };
    let f = match p {
        "metadata.name" => PodField::Name,
        "metadata.namespace" => PodField::Namespace,
        "metadata.uid" => PodField::Uid,
        "metadata.labels" if whole_maps => PodField::Labels,
        "metadata.annotations" if whole_maps => PodField::Annotations,
        "spec.nodeName" => PodField::NodeName,
        "status.podIP" => PodField::PodIp,
        "status.hostIP" => PodField::HostIp,
        _ => {
            if let Some(k) = keyed("metadata.labels") {
                PodField::Label(k)
            } else if let Some(k) = keyed("metadata.annotations") {
                PodField::Annotation(k)
            } else {
                return Err(format!(
                    "unsupported field path {p:?}: expected one of {FIELD_PATHS}"
                ));
            }
        }
    };
    Ok(f)
}

/// What the downward API reads of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodFacts<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its uid.
    pub uid: &'a str,
    /// Its labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Its annotations.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The node it is bound to.
    pub node_name: &'a str,
    /// Its IP, once known.
    pub pod_ip: &'a str,
    /// Its node's IP.
    pub host_ip: &'a str,
}

/// A field's value; absent labels and annotations are empty, as in Kubernetes.
pub fn field_value(f: &PodField, pod: &PodFacts<'_>) -> String {
    let get = |m: Option<&BTreeMap<String, String>>, k: &str| {
        m.and_then(|m| m.get(k)).cloned().unwrap_or_default()
    };
    // Kubernetes' format: sorted `key="value"` lines, values quoted with escapes.
    let all = |m: Option<&BTreeMap<String, String>>| {
        m.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match f {
        PodField::Name => pod.name.to_string(),
        PodField::Namespace => pod.namespace.to_string(),
        PodField::Uid => pod.uid.to_string(),
        PodField::Labels => all(pod.labels),
        PodField::Annotations => all(pod.annotations),
        PodField::Label(k) => get(pod.labels, k),
        PodField::Annotation(k) => get(pod.annotations, k),
        PodField::NodeName => pod.node_name.to_string(),
        PodField::PodIp => pod.pod_ip.to_string(),
        PodField::HostIp => pod.host_ip.to_string(),
    }
}

/// The resources `resourceFieldRef` can name.
pub const RESOURCES: [&str; 4] = [
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

/// Checks a `resource` name and its divisor; the message says what is wrong.
pub fn check_resource(sel: &ResourceFieldSelector) -> Result<(), String> {
    if !RESOURCES.contains(&sel.resource.as_str()) {
        return Err(format!(
            "unsupported resource {:?}: expected one of {}",
            sel.resource,
            RESOURCES.join(", ")
        ));
    }
    divisor(sel).map(|_| ())
}

fn is_cpu(sel: &ResourceFieldSelector) -> bool {
    sel.resource.ends_with(".cpu")
}

/// The divisor in millicores (cpu) or bytes (memory); never 0.
fn divisor(sel: &ResourceFieldSelector) -> Result<u64, String> {
    let Some(q) = &sel.divisor else {
        return Ok(if is_cpu(sel) { 1000 } else { 1 });
    };
    let v = if is_cpu(sel) {
        q.cpu_millis().map_err(|e| format!("divisor: {e}"))?
    } else {
        q.memory_bytes().map_err(|e| format!("divisor: {e}"))?
    };
    if v == 0 {
        return Err(format!("divisor {q} must be more than 0"));
    }
    Ok(v)
}

/// A container's resource divided by the divisor, rounded up as Kubernetes
/// does; a limit that is not set is the node's allocatable (`(millicores,
/// bytes)`), a request not set falls back to the limit, else 0.
pub fn resource_value(
    sel: &ResourceFieldSelector,
    c: &Container,
    allocatable: (u64, u64),
) -> Result<String, String> {
    check_resource(sel)?;
    let d = divisor(sel)?;
    let res = c.resources.clone().unwrap_or_default();
    let (kind, name) = sel.resource.split_once('.').unwrap_or_default();
    let read =
        |m: &BTreeMap<String, crate::resource::types::Quantity>| -> Result<Option<u64>, String> {
            match m.get(name) {
                None => Ok(None),
                Some(q) if name == "cpu" => q.cpu_millis().map(Some).map_err(|e| e.to_string()),
                Some(q) => q.memory_bytes().map(Some).map_err(|e| e.to_string()),
            }
        };
    let node = if name == "cpu" {
        allocatable.0
    } else {
        allocatable.1
    };
    let v = match kind {
        "limits" => read(&res.limits)?.unwrap_or(node),
        _ => match read(&res.requests)? {
            Some(v) => v,
            None => read(&res.limits)?.unwrap_or(0),
        },
    };
    Ok(v.div_ceil(d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::{Quantity, ResourceRequirements};

    #[test]
    fn field_paths_parse_and_read() {
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("b".into(), "x\"y".into()),
        ]);
        let pod = PodFacts {
            name: "p",
            namespace: "ns",
            uid: "u-1",
            labels: Some(&labels),
            annotations: None,
            node_name: "n1",
            pod_ip: "10.0.0.2",
            host_ip: "192.168.1.1",
        };
        let cases: [(&str, bool, Result<&str, &str>); 12] = [
            ("metadata.name", false, Ok("p")),
            ("metadata.namespace", false, Ok("ns")),
            ("metadata.uid", false, Ok("u-1")),
            ("metadata.labels['app']", false, Ok("web")),
            ("metadata.labels['none']", false, Ok("")),
            ("metadata.annotations['a']", false, Ok("")),
            ("metadata.labels", true, Ok("app=\"web\"\nb=\"x\\\"y\"")),
            ("metadata.labels", false, Err("unsupported field path")),
            ("spec.nodeName", false, Ok("n1")),
            ("status.podIP", false, Ok("10.0.0.2")),
            ("status.hostIP", false, Ok("192.168.1.1")),
            ("metadata.labels[app]", false, Err("unsupported field path")),
        ];
        for (path, whole, want) in cases {
            let got = parse_field_path(path, whole).map(|f| field_value(&f, &pod));
            match want {
                Ok(v) => assert_eq!(got.as_deref(), Ok(v), "{path}"),
                Err(e) => assert!(got.expect_err(path).contains(e), "{path}"),
            }
        }
    }

    #[test]
    fn resources_divide_round_up_and_fall_back() {
        let c = Container {
            resources: Some(ResourceRequirements {
                requests: BTreeMap::from([("cpu".into(), Quantity("250m".into()))]),
                limits: BTreeMap::from([
                    ("cpu".into(), Quantity("1500m".into())),
                    ("memory".into(), Quantity("64Mi".into())),
                ]),
            }),
            ..Default::default()
        };
        let sel = |r: &str, d: Option<&str>| ResourceFieldSelector {
            container_name: None,
            resource: r.into(),
            divisor: d.map(|d| Quantity(d.into())),
        };
        let node = (4000, 8 << 30);
        let cases: [(ResourceFieldSelector, Result<&str, &str>); 8] = [
            (sel("limits.cpu", None), Ok("2")),
            (sel("limits.cpu", Some("1m")), Ok("1500")),
            (sel("requests.cpu", Some("1m")), Ok("250")),
            (sel("limits.memory", Some("1Mi")), Ok("64")),
            (sel("requests.memory", None), Ok("67108864")),
            (sel("limits.cpu", Some("0")), Err("must be more than 0")),
            (sel("limits.gpu", None), Err("unsupported resource")),
            (sel("limits.memory", Some("1Gi")), Ok("1")),
        ];
        for (s, want) in cases {
            let got = resource_value(&s, &c, node);
            match want {
                Ok(v) => assert_eq!(got.as_deref(), Ok(v), "{s:?}"),
                Err(e) => assert!(got.expect_err("error").contains(e), "{s:?}"),
            }
        }
        let bare = Container::default();
        assert_eq!(
            resource_value(&sel("limits.cpu", Some("1m")), &bare, node).as_deref(),
            Ok("4000")
        );
        assert_eq!(
            resource_value(&sel("requests.memory", None), &bare, node).as_deref(),
            Ok("0")
        );
    }
}
