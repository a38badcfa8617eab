//! Discovery as Kubernetes serves it (`/version`, `/api`, `/apis`, the
//! resource list of each group version) and the smallest OpenAPI v3 that
//! tells kubectl shoal validates fields on the server, all built from the
//! Kind table so a new kind appears without an edit here.
//!
//! Aggregated discovery (`as=APIGroupDiscoveryList`) is not served: the
//! plain documents carry `Content-Type: application/json`, from which
//! client-go falls back to the per-group requests.

use serde_json::{Value, json};

use crate::resource::Kind;

/// The Kubernetes release whose API shoal's kinds follow (for `/version`).
pub const KUBE_MINOR: &str = "32";

/// Kinds that `kubectl get all` lists.
const ALL_CATEGORY: &[Kind] = &[
    Kind::Pod,
    Kind::Service,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::DaemonSet,
    Kind::StatefulSet,
    Kind::Job,
    Kind::CronJob,
    Kind::HorizontalPodAutoscaler,
];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-shoal.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

/// Every named group (`apps`, `batch`, ...) with its one version, in the
/// order the Kind table first names them.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in Kind::ALL {
        if let Some(gv) = k.api_version().split_once('/')
            && !out.contains(&gv)
        {
            out.push(gv);
        }
    }
    out
}

/// The resource metrics group (`kubectl top`), served by `api::usage` on
/// nodes that run the usage service.
pub const METRICS_GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// `/apis`; with the metrics group when this node serves it.
pub fn group_list(metrics: bool) -> Value {
    let mut all = groups();
    if metrics && let Some(gv) = METRICS_GROUP_VERSION.split_once('/') {
        all.push(gv);
    }
    let groups: Vec<Value> = all
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The verbs a kind's resource offers: what users may not write is
/// read-only here as at `/v1`.
pub fn verbs(kind: Kind) -> &'static [&'static str] {
    if kind.user_writable() {
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ]
    } else {
        &["get", "list", "watch"]
    }
}

/// `/api/v1` or `/apis/GROUP/VERSION`; `None` for a group version shoal
/// does not serve.
pub fn resource_list(group_version: &str) -> Option<Value> {
    if group_version == METRICS_GROUP_VERSION {
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": false,
                 "kind": "NodeMetrics", "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": true,
                 "kind": "PodMetrics", "verbs": ["get", "list"]},
            ],
        }));
    }
    let resources: Vec<Value> = Kind::ALL
        .into_iter()
        .filter(|k| k.api_version() == group_version)
        .map(|k| {
            let mut r = json!({
                "name": k.plural(),
                "singularName": k.as_str().to_ascii_lowercase(),
                "namespaced": k.namespaced(),
                "kind": k.as_str(),
                "verbs": verbs(k),
            });
            if !k.short_names().is_empty() {
                r["shortNames"] = json!(k.short_names());
            }
            if ALL_CATEGORY.contains(&k) {
                r["categories"] = json!(["all"]);
            }
            r
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut resources = resources;
    if group_version == "v1" {
        // The pod subresources served: kubectl drain looks for
        // `pods/eviction` (and deletes pods outright, past every
        // disruption budget, when a server does not list it).
        resources.push(json!({
            "name": "pods/eviction", "singularName": "", "namespaced": true,
            "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"],
        }));
        resources.push(json!({
            "name": "pods/log", "singularName": "", "namespaced": true,
            "kind": "Pod", "verbs": ["get"],
        }));
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// Where a group version's documents live: `api/v1`, `apis/apps/v1`.
fn gv_path(group_version: &str) -> String {
    match group_version {
        "v1" => "api/v1".to_string(),
        gv => format!("apis/{gv}"),
    }
}

/// `/openapi/v3`: one document per group version.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<&str> = vec!["v1"];
    gvs.extend(Kind::ALL.iter().map(|k| k.api_version()));
    for gv in gvs {
        let p = gv_path(gv);
        // The hash lets clients cache a document until shoal changes.
        let url = format!("/openapi/v3/{p}?hash=shoal-{}", env!("CARGO_PKG_VERSION"));
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`: the PATCH of
/// each object, with the `fieldValidation` parameter. That is what kubectl
/// looks for to leave validation to the server, which shoal does strictly
/// for every kind (an unknown field is an error naming its path). No
/// schemas yet: `kubectl explain` has nothing to show.
pub fn openapi_group_version(group_version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for k in Kind::ALL
        .into_iter()
        .filter(|k| k.api_version() == group_version)
    {
        let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
        let base = format!("/{}", gv_path(group_version));
        let path = if k.namespaced() {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", k.plural())
        } else {
            format!("{base}/{}/{{name}}", k.plural())
        };
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", k.as_str()),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": k.as_str()},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            })
        };
        let mut item = json!({"get": op("get")});
        if k.user_writable() {
            item["put"] = op("put");
            item["patch"] = op("patch");
            item["delete"] = op("delete");
        }
        paths.insert(path, item);
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "shoal", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable_once() {
        let mut seen = 0;
        let mut gvs = vec!["v1".to_string()];
        gvs.extend(groups().iter().map(|(g, v)| format!("{g}/{v}")));
        for gv in &gvs {
            let list = resource_list(gv).expect(gv);
            for r in list["resources"].as_array().unwrap() {
                if r["name"].as_str().unwrap().contains('/') {
                    continue;
                }
                let kind = Kind::from_manifest(r["kind"].as_str().unwrap()).unwrap();
                assert_eq!(r["name"], kind.plural());
                assert_eq!(r["namespaced"], kind.namespaced());
                seen += 1;
            }
        }
        assert_eq!(seen, Kind::ALL.len());
        // kubectl drain evicts only when it finds this entry.
        let core = resource_list("v1").unwrap();
        let eviction = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("pods/eviction is listed");
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        assert!(resource_list("apps/v2").is_none());
        let apps = resource_list("apps/v1").unwrap();
        let deploy = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        assert!(
            deploy["verbs"]
                .as_array()
                .unwrap()
                .contains(&json!("patch"))
        );
        let core = resource_list("v1").unwrap();
        let events = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "events")
            .unwrap();
        assert_eq!(events["verbs"], json!(["get", "list", "watch"]));
    }

    #[test]
    fn groups_are_listed_with_their_version() {
        assert!(!group_list(false).to_string().contains("metrics.k8s.io"));
        assert!(group_list(true).to_string().contains("metrics.k8s.io"));
        assert_eq!(
            resource_list(METRICS_GROUP_VERSION).unwrap()["resources"][1]["kind"],
            "PodMetrics"
        );
        let g = group_list(false);
        let names: Vec<&str> = g["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"apps") && names.contains(&"batch"),
            "{names:?}"
        );
        assert!(!names.contains(&""), "the core group is at /api");
        assert_eq!(g["groups"][0]["preferredVersion"]["version"], "v1");
    }

    /// Short names are the Kind table's: each one parses back to its kind,
    /// and every short spelling `from_user` takes is listed.
    #[test]
    fn short_names_match_the_kind_table() {
        for k in Kind::ALL {
            for s in k.short_names() {
                assert_eq!(Kind::from_user(s), Some(k), "{s}");
            }
        }
        let letters: Vec<char> = ('a'..='z').collect();
        let mut words: Vec<String> = Vec::new();
        for a in &letters {
            for b in &letters {
                words.push(format!("{a}{b}"));
                for c in &letters {
                    words.push(format!("{a}{b}{c}"));
                }
            }
        }
        for w in words {
            if let Some(k) = Kind::from_user(&w)
                && w != k.plural()
                && w != k.as_str().to_ascii_lowercase()
            {
                assert!(k.short_names().contains(&w.as_str()), "{w} for {k}");
            }
        }
    }

    #[test]
    fn openapi_offers_field_validation_for_every_writable_kind() {
        let root = openapi_root();
        assert!(
            root["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1")
        );
        let doc = openapi_group_version("apps/v1").unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(p["parameters"][0]["name"], "fieldValidation");
        let core = openapi_group_version("v1").unwrap();
        assert!(core["paths"].get("/api/v1/nodes/{name}").is_some());
        assert!(openapi_group_version("nope/v1").is_none());
    }
}
