//! Checks of an Ingress and an IngressClass (`networking.k8s.io/v1`).

use super::*;
use crate::resource::types::{
    ANN_PROXY_BODY_SIZE, ANN_PROXY_CONNECT_TIMEOUT, ANN_PROXY_READ_TIMEOUT, ANN_REWRITE_TARGET,
    ANN_SSL_REDIRECT, DEFAULT_INGRESS_CLASS, INGRESS_CONTROLLER, IngressBackend, IngressBody,
    IngressClassBody, parse_body_size, parse_timeout_secs,
};

pub(super) fn check_ingress(b: &IngressBody, meta: &ObjectMeta, ck: &mut Checker) -> Res {
    let spec = &b.spec;
    if let Some(c) = &spec.ingress_class_name {
        check_dns_subdomain("spec.ingressClassName", c)?;
    }
    if let Some(d) = &spec.default_backend {
        check_backend("spec.defaultBackend", d)?;
    }
    if spec.default_backend.is_none() && spec.rules.is_empty() {
        return fail(
            "spec",
            "neither rules nor defaultBackend: the Ingress would route nothing",
        );
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let p = format!("spec.rules[{i}]");
        if let Some(h) = &rule.host {
            check_host(&format!("{p}.host"), h)?;
        }
        let Some(http) = &rule.http else {
            return fail(
                format!("{p}.http"),
                "missing: shoal routes only HTTP rules (http.paths)",
            );
        };
        if http.paths.is_empty() {
            return fail(format!("{p}.http.paths"), "must list at least one path");
        }
        for (j, path) in http.paths.iter().enumerate() {
            let pp = format!("{p}.http.paths[{j}]");
            if let Some(s) = &path.path {
                check_path(&format!("{pp}.path"), s)?;
            }
            check_backend(&format!("{pp}.backend"), &path.backend)?;
        }
    }
    for (i, t) in spec.tls.iter().enumerate() {
        let p = format!("spec.tls[{i}]");
        for (j, h) in t.hosts.iter().enumerate() {
            check_host(&format!("{p}.hosts[{j}]"), h)?;
        }
        match &t.secret_name {
            Some(s) => check_dns_subdomain(&format!("{p}.secretName"), s)?,
            None => {
                return fail(
                    format!("{p}.secretName"),
                    "missing: shoal serves TLS only with the certificate of a kubernetes.io/tls \
                     Secret",
                );
            }
        }
    }
    check_ingress_annotations(&meta.annotations)?;
    if let Some(c) = spec.class(&meta.annotations)
        && c != DEFAULT_INGRESS_CLASS
    {
        ck.warn(
            "spec.ingressClassName",
            &format!(
                "{c:?} is not shoal's built-in class {DEFAULT_INGRESS_CLASS:?}: nodes serve it \
                 only if an IngressClass {c:?} names controller {INGRESS_CONTROLLER}"
            ),
        );
    }
    Ok(())
}

fn check_ingress_annotations(ann: &BTreeMap<String, String>) -> Res {
    let path = |k: &str| join("metadata.annotations", k);
    if let Some(v) = ann.get(ANN_PROXY_BODY_SIZE) {
        parse_body_size(v).or_else(|e| fail(path(ANN_PROXY_BODY_SIZE), e))?;
    }
    for k in [ANN_PROXY_READ_TIMEOUT, ANN_PROXY_CONNECT_TIMEOUT] {
        if let Some(v) = ann.get(k) {
            parse_timeout_secs(v).or_else(|e| fail(path(k), e))?;
        }
    }
    if let Some(v) = ann.get(ANN_SSL_REDIRECT)
        && v != "true"
        && v != "false"
    {
        return fail(
            path(ANN_SSL_REDIRECT),
            format!("{v:?} is not \"true\" or \"false\""),
        );
    }
    if let Some(v) = ann.get(ANN_REWRITE_TARGET)
        && !v.starts_with('/')
    {
        return fail(
            path(ANN_REWRITE_TARGET),
            format!("{v:?} must be a path starting with '/'"),
        );
    }
    Ok(())
}

/// A host is a DNS subdomain, lower case, with `*.` allowed only as the
/// whole first label; never an IP address (Kubernetes refuses those too).
pub(super) fn check_host(path: &str, host: &str) -> Res {
    let rest = host.strip_prefix("*.").unwrap_or(host);
    if rest.contains('*') {
        return fail(
            path,
            format!(
                "{host:?}: a wildcard is allowed only as the whole first label (\"*.example.com\")"
            ),
        );
    }
    if rest.parse::<std::net::IpAddr>().is_ok() {
        return fail(
            path,
            format!("{host:?} is an IP address: a host must be a DNS name"),
        );
    }
    if !is_dns_subdomain(rest) {
        return fail(
            path,
            format!(
                "{host:?} is not a valid host: it must be {DNS_SUBDOMAIN_RULE}, optionally after \"*.\""
            ),
        );
    }
    Ok(())
}

fn check_path(path: &str, p: &str) -> Res {
    if !p.starts_with('/') {
        return fail(path, format!("{p:?} must start with '/'"));
    }
    if p.len() > 2048 {
        return fail(path, "longer than 2048 characters");
    }
    if p.bytes()
        .any(|c| c.is_ascii_control() || c == b' ' || c == b'?' || c == b'#')
    {
        return fail(
            path,
            format!("{p:?} holds a space, control character, '?' or '#': a path has none"),
        );
    }
    Ok(())
}

fn check_backend(path: &str, b: &IngressBackend) -> Res {
    if b.resource.is_some() {
        return fail(
            format!("{path}.resource"),
            "resource backends are not supported by shoal: name a Service (backend.service)",
        );
    }
    let Some(svc) = &b.service else {
        return fail(
            format!("{path}.service"),
            "missing: name a Service and its port",
        );
    };
    let sp = format!("{path}.service");
    if !is_dns_1035_label(&svc.name) {
        return fail(
            format!("{sp}.name"),
            format!(
                "{:?} is not a Service name: it must be {DNS_1035_RULE}",
                svc.name
            ),
        );
    }
    match (&svc.port.name, svc.port.number) {
        (Some(_), Some(_)) => fail(format!("{sp}.port"), "give either number or name, not both"),
        (None, None) => fail(
            format!("{sp}.port"),
            "missing: give the Service port's number or name",
        ),
        (None, Some(0)) => fail(format!("{sp}.port.number"), "must be 1 to 65535"),
        (Some(n), None) => check_port_name(&format!("{sp}.port.name"), n),
        (None, Some(_)) => Ok(()),
    }
}

pub(super) fn check_ingress_class(
    b: &IngressClassBody,
    meta: &ObjectMeta,
    ck: &mut Checker,
) -> Res {
    match b.spec.controller.as_deref() {
        None => {
            return fail(
                "spec.controller",
                format!("missing: name the controller ({INGRESS_CONTROLLER} for shoal's nodes)"),
            );
        }
        Some(c) if c != INGRESS_CONTROLLER => ck.warn(
            "spec.controller",
            &format!(
                "{c:?}: Ingresses of this class are not served by shoal ({INGRESS_CONTROLLER})"
            ),
        ),
        Some(_) => {}
    }
    if meta.name == DEFAULT_INGRESS_CLASS
        && b.spec.controller.as_deref() != Some(INGRESS_CONTROLLER)
    {
        return fail(
            "spec.controller",
            format!(
                "the class {DEFAULT_INGRESS_CLASS:?} is built in: its controller is {INGRESS_CONTROLLER}"
            ),
        );
    }
    if b.spec.parameters.is_some() {
        ck.not_acted_on("spec.parameters");
    }
    Ok(())
}
