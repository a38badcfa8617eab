//! Table cells of `get ingress` and `get ingressclass`, as kubectl prints them.

use serde_json::Value;

use super::cells::s;
use crate::resource::types::DEFAULT_INGRESS_CLASS;

/// CLASS, HOSTS, ADDRESS and PORTS of an Ingress.
pub(crate) fn ingress_cells(it: &Value) -> Vec<String> {
    let spec = s(it, &["spec"]);
    let class = spec["ingressClassName"]
        .as_str()
        .or_else(|| {
            s(
                it,
                &["metadata", "annotations", "kubernetes.io/ingress.class"],
            )
            .as_str()
        })
        .unwrap_or(DEFAULT_INGRESS_CLASS)
        .to_string();
    let mut hosts: Vec<&str> = Vec::new();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let h = rule["host"].as_str().unwrap_or("*");
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    let addrs: Vec<&str> = s(it, &["status", "loadBalancer", "ingress"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["ip"].as_str().or_else(|| a["hostname"].as_str()))
        .collect();
    let tls = spec["tls"].as_array().is_some_and(|t| !t.is_empty());
    vec![
        class,
        hosts,
        addrs.join(","),
        if tls { "80, 443" } else { "80" }.to_string(),
    ]
}

/// CONTROLLER and PARAMETERS of an IngressClass.
pub(crate) fn class_cells(it: &Value) -> Vec<String> {
    let spec = s(it, &["spec"]);
    let params = &spec["parameters"];
    let params = if params.is_object() {
        format!(
            "{}/{}",
            params["kind"].as_str().unwrap_or(""),
            params["name"].as_str().unwrap_or("")
        )
    } else {
        "<none>".to_string()
    };
    vec![
        spec["controller"].as_str().unwrap_or("").to_string(),
        params,
    ]
}
