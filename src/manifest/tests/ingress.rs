//! Ingress and IngressClass manifests.

use super::*;
use crate::resource::types::{IngressBody, PathType};

const INGRESS: &str = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    shoal.io/proxy-body-size: 8m
spec:
  ingressClassName: shoal
  tls:
  - hosts: [www.example.com]
    secretName: www-tls
  defaultBackend:
    service: {name: fallback, port: {number: 80}}
  rules:
  - host: www.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web, port: {number: 80}}
      - path: /api
        pathType: Exact
        backend:
          service: {name: api, port: {name: http}}
  - host: '*.example.com'
    http:
      paths:
      - pathType: ImplementationSpecific
        backend:
          service: {name: web, port: {number: 80}}
";

#[test]
fn an_ingress_is_accepted_as_kubernetes_writes_it() {
    let p = ok(INGRESS);
    let o = &p.objects[0];
    assert_eq!(o.kind(), Some(Kind::Ingress));
    assert_eq!(o.metadata.namespace.as_deref(), Some("default"));
    let b = IngressBody::from_object(o).expect("body");
    assert_eq!(b.spec.rules.len(), 2);
    let paths = &b.spec.rules[0].http.as_ref().expect("http").paths;
    assert_eq!(paths[1].path_type, PathType::Exact);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    for s in ["ing", "ingress", "ingresses", "Ingress"] {
        assert_eq!(Kind::from_user(s), Some(Kind::Ingress), "{s}");
    }
    assert_eq!(Kind::from_user("ingressclass"), Some(Kind::IngressClass));
    assert!(!Kind::IngressClass.namespaced());
}

#[test]
fn ingress_errors_name_their_field() {
    let cases = [
        (
            INGRESS.replace("host: www.example.com", "host: www.*.com"),
            "spec.rules[0].host",
            "only as the whole first label",
        ),
        (
            INGRESS.replace("host: '*.example.com'", "host: '*example.com'"),
            "spec.rules[1].host",
            "only as the whole first label",
        ),
        (
            INGRESS.replace("host: www.example.com", "host: 10.0.0.1"),
            "spec.rules[0].host",
            "IP address",
        ),
        (
            INGRESS.replace("host: www.example.com", "host: WWW.example.com"),
            "spec.rules[0].host",
            "DNS-1123 subdomain",
        ),
        (
            INGRESS.replace("- path: /api", "- path: api"),
            "spec.rules[0].http.paths[1].path",
            "must start with '/'",
        ),
        (
            INGRESS.replace("pathType: Exact", "pathType: Regex"),
            "spec.rules[0].http.paths[1].pathType",
            "unknown variant",
        ),
        (
            INGRESS.replace("{name: api, port: {name: http}}", "{name: api, port: {}}"),
            "spec.rules[0].http.paths[1].backend.service.port",
            "number or name",
        ),
        (
            INGRESS.replace(
                "{name: api, port: {name: http}}",
                "{name: api, port: {name: http, number: 80}}",
            ),
            "spec.rules[0].http.paths[1].backend.service.port",
            "not both",
        ),
        (
            INGRESS.replace(
                "{name: api, port: {name: http}}",
                "{name: Api, port: {number: 1}}",
            ),
            "spec.rules[0].http.paths[1].backend.service.name",
            "DNS-1035",
        ),
        (
            INGRESS.replace(
                "service: {name: fallback, port: {number: 80}}",
                "resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static}",
            ),
            "spec.defaultBackend.resource",
            "resource backends are not supported",
        ),
        (
            INGRESS.replace("secretName: www-tls", "secretName: Www"),
            "spec.tls[0].secretName",
            "DNS-1123",
        ),
        (
            INGRESS.replace(
                "shoal.io/proxy-body-size: 8m",
                "shoal.io/proxy-body-size: lots",
            ),
            "metadata.annotations[\"shoal.io/proxy-body-size\"]",
            "not a size",
        ),
        (
            INGRESS.replace(
                "shoal.io/proxy-body-size: 8m",
                "shoal.io/proxy-read-timeout: '0'",
            ),
            "shoal.io/proxy-read-timeout",
            "1 to 3600",
        ),
        (
            INGRESS.replace(
                "shoal.io/proxy-body-size: 8m",
                "shoal.io/ssl-redirect: 'no'",
            ),
            "shoal.io/ssl-redirect",
            "\"true\" or \"false\"",
        ),
        (
            INGRESS.replace(
                "apiVersion: networking.k8s.io/v1",
                "apiVersion: extensions/v1beta1",
            ),
            "apiVersion",
            "networking.k8s.io/v1",
        ),
    ];
    for (text, path, what) in cases {
        let e = err(&text);
        assert!(e.contains(path), "{path}: {e}");
        assert!(e.contains(what), "{what}: {e}");
    }
}

#[test]
fn an_ingress_must_route_something() {
    let e = err("
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: empty}
spec: {}
");
    assert!(e.contains("neither rules nor defaultBackend"), "{e}");
    let e = err("
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: nohttp}
spec:
  rules: [{host: a.example.com}]
");
    assert!(e.contains("spec.rules[0].http"), "{e}");
}

#[test]
fn another_class_is_accepted_with_a_warning() {
    let p = ok(&INGRESS.replace("ingressClassName: shoal", "ingressClassName: nginx"));
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("not shoal's built-in class"));
}

#[test]
fn ingress_classes() {
    let class = |name: &str, controller: &str| {
        format!(
            "
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {name}}}
spec: {{controller: {controller}}}
"
        )
    };
    let p = ok(&class("internal", "shoal.io/ingress"));
    assert_eq!(p.objects[0].metadata.namespace, None);
    assert!(p.warnings.is_empty());
    let p = ok(&class("nginx", "k8s.io/ingress-nginx"));
    assert!(
        p.warnings[0].contains("not served by shoal"),
        "{:?}",
        p.warnings
    );
    let e = err(&class("shoal", "k8s.io/ingress-nginx"));
    assert!(
        e.contains("spec.controller") && e.contains("built in"),
        "{e}"
    );
    let e = err("
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: x}
spec: {}
");
    assert!(e.contains("spec.controller: missing"), "{e}");
}
