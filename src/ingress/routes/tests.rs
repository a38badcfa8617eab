use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::*;
use crate::discovery::{PortEntry, ServiceEntry};

fn ingress(name: &str, created: &str, spec: Value) -> Object {
    ingress_ann(name, created, json!({}), spec)
}

fn ingress_ann(name: &str, created: &str, ann: Value, spec: Value) -> Object {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                     "annotations": ann},
        "spec": spec,
    }))
    .expect("a valid object")
}

fn class(name: &str, controller: &str, default: bool) -> Object {
    let ann = if default {
        json!({"ingressclass.kubernetes.io/is-default-class": "true"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "annotations": ann},
        "spec": {"controller": controller},
    }))
    .expect("a valid object")
}

fn path(p: &str, ty: &str, svc: &str) -> Value {
    json!({"path": p, "pathType": ty,
           "backend": {"service": {"name": svc, "port": {"number": 80}}}})
}

fn rule(host: Option<&str>, paths: Vec<Value>) -> Value {
    let mut r = json!({"http": {"paths": paths}});
    if let Some(h) = host {
        r["host"] = json!(h);
    }
    r
}

/// The Service a lookup reaches, or "-" for none.
fn svc(t: &RouteTable, host: &str, p: &str) -> String {
    t.lookup(host, p)
        .map_or("-".into(), |r| r.backend.service.clone())
}

fn table(ings: &[Object]) -> RouteTable {
    build(ings, &[], &ServiceTable::default())
}

#[test]
fn prefix_matches_by_path_element() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({"rules": [rule(Some("x.test"), vec![path("/foo", "Prefix", "foo")])]}),
    )]);
    assert_eq!(svc(&t, "x.test", "/foo"), "foo");
    assert_eq!(svc(&t, "x.test", "/foo/"), "foo");
    assert_eq!(svc(&t, "x.test", "/foo/bar"), "foo");
    assert_eq!(svc(&t, "x.test", "/foobar"), "-");
    assert_eq!(svc(&t, "x.test", "/"), "-");
    assert_eq!(svc(&t, "y.test", "/foo"), "-");
}

#[test]
fn a_trailing_slash_on_a_prefix_is_ignored() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({"rules": [rule(None, vec![path("/foo/", "Prefix", "foo")])]}),
    )]);
    assert_eq!(svc(&t, "any", "/foo"), "foo");
    assert_eq!(svc(&t, "any", "/foo/x"), "foo");
    assert_eq!(svc(&t, "any", "/foox"), "-");
}

#[test]
fn route_ids_are_dense() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({"rules": [rule(None, vec![path("/", "Prefix", "r"), path("/a", "Exact", "a")])]}),
    )]);
    assert_eq!(t.route_count, 2);
    let mut ids = [
        t.lookup("h", "/").map(|r| r.id),
        t.lookup("h", "/a").map(|r| r.id),
    ];
    ids.sort();
    assert_eq!(ids, [Some(0), Some(1)]);
}

#[test]
fn longest_prefix_wins_whatever_the_order() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({"rules": [rule(None, vec![
            path("/", "Prefix", "root"),
            path("/a", "Prefix", "a"),
            path("/a/b/c", "Prefix", "abc"),
            path("/a/b", "ImplementationSpecific", "ab"),
        ])]}),
    )]);
    assert_eq!(svc(&t, "h", "/"), "root");
    assert_eq!(svc(&t, "h", "/x"), "root");
    assert_eq!(svc(&t, "h", "/a"), "a");
    assert_eq!(svc(&t, "h", "/a/bc"), "a");
    assert_eq!(svc(&t, "h", "/a/b"), "ab");
    assert_eq!(svc(&t, "h", "/a/b/c/d"), "abc");
}

#[test]
fn exact_beats_prefix_and_matches_only_itself() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({"rules": [rule(None, vec![
            path("/api", "Prefix", "prefix"),
            path("/api", "Exact", "exact"),
        ])]}),
    )]);
    assert_eq!(svc(&t, "h", "/api"), "exact");
    assert_eq!(svc(&t, "h", "/api/"), "prefix");
    assert_eq!(svc(&t, "h", "/api/v1"), "prefix");
}

#[test]
fn exact_host_beats_wildcard_which_beats_no_host() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({"rules": [
            rule(None, vec![path("/", "Prefix", "any")]),
            rule(Some("*.example.com"), vec![path("/", "Prefix", "wild")]),
            rule(Some("www.example.com"), vec![path("/", "Prefix", "www")]),
        ]}),
    )]);
    assert_eq!(svc(&t, "www.example.com", "/"), "www");
    assert_eq!(svc(&t, "api.example.com", "/x"), "wild");
    // A wildcard covers exactly one label, as in Kubernetes.
    assert_eq!(svc(&t, "a.b.example.com", "/"), "any");
    assert_eq!(svc(&t, "example.com", "/"), "any");
    assert_eq!(svc(&t, "other.org", "/"), "any");
}

#[test]
fn a_host_without_a_matching_path_falls_through_to_less_specific_rules() {
    let t = table(&[ingress(
        "a",
        "1",
        json!({
        "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
        "rules": [
            rule(Some("x.test"), vec![path("/only", "Exact", "only")]),
            rule(Some("*.test"), vec![path("/w", "Prefix", "wild")]),
        ]}),
    )]);
    assert_eq!(svc(&t, "x.test", "/only"), "only");
    assert_eq!(svc(&t, "x.test", "/w/1"), "wild");
    assert_eq!(svc(&t, "x.test", "/other"), "fallback");
    assert_eq!(svc(&t, "nowhere", "/"), "fallback");
}

#[test]
fn the_older_ingress_keeps_a_contested_route() {
    let older = ingress(
        "old",
        "2026-01-01T00:00:00Z",
        json!({"rules": [rule(Some("h"), vec![path("/", "Prefix", "old")])]}),
    );
    let newer = ingress(
        "new",
        "2026-02-01T00:00:00Z",
        json!({"rules": [rule(Some("h"), vec![path("/", "Prefix", "new"), path("/n", "Prefix", "n")])]}),
    );
    for order in [
        vec![older.clone(), newer.clone()],
        vec![newer.clone(), older.clone()],
    ] {
        let t = table(&order);
        assert_eq!(svc(&t, "h", "/x"), "old");
        assert_eq!(svc(&t, "h", "/n/1"), "n", "rules merge across Ingresses");
    }
}

#[test]
fn classes_decide_what_is_served() {
    let spec = |c: Option<&str>| {
        let mut s = json!({"rules": [rule(Some("h"), vec![path("/", "Prefix", "s")])]});
        if let Some(c) = c {
            s["ingressClassName"] = json!(c);
        }
        s
    };
    let none = ingress("none", "1", spec(None));
    let builtin = ingress("builtin", "1", spec(Some("shoal")));
    let custom = ingress("custom", "1", spec(Some("mine")));
    let nginx = ingress("nginx", "1", spec(Some("nginx")));
    let missing = ingress("missing", "1", spec(Some("gone")));
    let classes = [
        class("mine", INGRESS_CONTROLLER, false),
        class("nginx", "k8s.io/ingress-nginx", false),
    ];
    let all = [none, builtin, custom, nginx, missing];
    let t = build(&all, &classes, &ServiceTable::default());
    let ignored: Vec<&str> = t.ignored.iter().map(|i| i.ingress.as_str()).collect();
    assert_eq!(ignored, ["default/missing", "default/nginx"]);
    assert!(t.ignored[1].reason.contains("k8s.io/ingress-nginx"));
    assert!(t.ignored[0].reason.contains("does not exist"));
    // Another controller's default class takes Ingresses that name none.
    let classes = [class("nginx", "k8s.io/ingress-nginx", true)];
    let t = build(&all[..1], &classes, &ServiceTable::default());
    assert_eq!(t.ignored.len(), 1);
    assert_eq!(svc(&t, "h", "/"), "-");
    // The legacy annotation still counts.
    let legacy = ingress_ann(
        "legacy",
        "1",
        json!({"kubernetes.io/ingress.class": "nginx"}),
        spec(None),
    );
    let t = build(&[legacy], &[], &ServiceTable::default());
    assert_eq!(t.ignored.len(), 1);
}

fn services() -> ServiceTable {
    let ep = |last: u8| Endpoint {
        ip: Ipv4Addr::new(10, 0, 0, last),
        port: 8080,
        pod: format!("p{last}"),
        node: "n".into(),
    };
    let mut t = ServiceTable::default();
    t.services.insert(
        ("default".into(), "web".into()),
        ServiceEntry {
            name: "web".into(),
            namespace: "default".into(),
            cluster_ip: None,
            client_ip_affinity: None,
            ports: vec![
                PortEntry {
                    name: Some("http".into()),
                    port: 80,
                    node_port: None,
                    endpoints: vec![ep(1), ep(2)],
                },
                PortEntry {
                    name: Some("admin".into()),
                    port: 9000,
                    node_port: None,
                    endpoints: vec![ep(3)],
                },
            ],
        },
    );
    t
}

#[test]
fn backends_resolve_by_port_number_or_name() {
    let by_name = json!({"path": "/admin", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"name": "admin"}}}});
    let t = build(
        &[ingress(
            "a",
            "1",
            json!({"rules": [rule(None, vec![
                path("/", "Prefix", "web"),
                by_name,
                path("/gone", "Prefix", "nosuch"),
            ])]}),
        )],
        &[],
        &services(),
    );
    let eps = |p: &str| {
        let r = t.lookup("h", p).expect("a route");
        t.endpoints
            .get(&r.backend)
            .map(|e| e.iter().map(|e| e.ip.octets()[3]).collect::<Vec<_>>())
    };
    assert_eq!(eps("/"), Some(vec![1, 2]));
    assert_eq!(eps("/admin/x"), Some(vec![3]));
    assert_eq!(eps("/gone"), None, "a missing Service has no entry");
    assert_eq!(t.backends().len(), 3);
}

#[test]
fn annotations_set_route_options_and_tls_hosts_redirect() {
    let t = table(&[ingress_ann(
        "a",
        "1",
        json!({"shoal.io/proxy-body-size": "8m", "shoal.io/proxy-read-timeout": "5",
               "shoal.io/rewrite-target": "/"}),
        json!({"tls": [{"hosts": ["secure.test", "*.wild.test"], "secretName": "cert"}],
               "rules": [rule(Some("secure.test"), vec![path("/app", "Prefix", "s")]),
                         rule(Some("plain.test"), vec![path("/", "Prefix", "p")]),
                         rule(Some("*.wild.test"), vec![path("/", "Prefix", "w")])]}),
    )]);
    let r = t.lookup("secure.test", "/app/x").expect("a route");
    assert_eq!(r.body_limit, Some(8 << 20));
    assert_eq!(r.read_timeout, Duration::from_secs(5));
    assert!(r.ssl_redirect);
    assert_eq!(rewrite(r, "/app/x/y"), "/x/y");
    assert_eq!(rewrite(r, "/app"), "/");
    assert!(!t.lookup("plain.test", "/").expect("a route").ssl_redirect);
    assert!(t.lookup("a.wild.test", "/").expect("a route").ssl_redirect);
    assert_eq!(
        t.tls_for("secure.test").map(|s| s.secret.as_str()),
        Some("cert")
    );
    assert_eq!(
        t.tls_for("x.wild.test").map(|s| s.secret.as_str()),
        Some("cert")
    );
    assert_eq!(t.tls_for("plain.test"), None);
    let off = table(&[ingress_ann(
        "b",
        "1",
        json!({"shoal.io/ssl-redirect": "false", "shoal.io/proxy-body-size": "0"}),
        json!({"tls": [{"hosts": ["s.test"], "secretName": "c"}],
               "rules": [rule(Some("s.test"), vec![path("/", "Prefix", "s")])]}),
    )]);
    let r = off.lookup("s.test", "/").expect("a route");
    assert!(!r.ssl_redirect);
    assert_eq!(r.body_limit, None);
    assert_eq!(r.read_timeout, DEFAULT_READ_TIMEOUT);
}

#[test]
fn rewrite_keeps_the_rest_of_the_path() {
    let mut r = Route {
        id: 0,
        ingress: "d/a".into(),
        host: "*".into(),
        class: "shoal".into(),
        backend: BackendKey {
            namespace: "d".into(),
            service: "s".into(),
            port: PortRef::Number(80),
        },
        matched: "/api".into(),
        body_limit: None,
        read_timeout: DEFAULT_READ_TIMEOUT,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        rewrite_target: None,
        ssl_redirect: false,
    };
    assert_eq!(rewrite(&r, "/api/x"), "/api/x");
    r.rewrite_target = Some("/v2".into());
    assert_eq!(rewrite(&r, "/api/x"), "/v2/x");
    assert_eq!(rewrite(&r, "/api"), "/v2");
    r.rewrite_target = Some("/v2/".into());
    assert_eq!(rewrite(&r, "/api/x"), "/v2/x");
    r.matched = "/".into();
    r.rewrite_target = Some("/base".into());
    assert_eq!(rewrite(&r, "/x/y"), "/base/x/y");
}

#[test]
fn a_deleting_ingress_is_not_served() {
    let mut ing = ingress(
        "a",
        "1",
        json!({"rules": [rule(None, vec![path("/", "Prefix", "s")])]}),
    );
    ing.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
    assert_eq!(svc(&table(&[ing]), "h", "/"), "-");
}
