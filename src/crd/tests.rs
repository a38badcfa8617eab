use super::*;

fn crd() -> Value {
    json!({
        "spec": {
            "group": "example.com",
            "names": {"plural": "websites", "kind": "Website", "shortNames": ["ws"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
                }}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}
                ]
            }]
        }
    })
}

fn checked(v: Value) -> Result<CrdBody, Invalid> {
    check(
        "websites.example.com",
        serde_json::from_value(v).expect("decodes"),
    )
}

fn refused(v: Value, path: &str) -> String {
    let e = checked(v).expect_err("refused");
    assert_eq!(e.path, path, "{e}");
    e.message
}

#[test]
fn a_definition_is_defaulted() {
    let b = checked(crd()).unwrap();
    assert_eq!(b.spec.names.singular, "website");
    assert_eq!(b.spec.names.list_kind, "WebsiteList");
    let o: Object = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "websites.example.com"},
        "spec": serde_json::to_value(&b.spec).unwrap(),
    }))
    .unwrap();
    let d = Definition::from_object(&o).unwrap();
    assert!(d.namespaced);
    assert!(d.served("v1").unwrap().status);
    assert!(d.served("v2").is_none());
    assert!(d.answers_to("ws") && d.answers_to("websites") && d.answers_to("website.example.com"));
    assert_eq!(
        d.key(Some("default"), "a").storage_key(),
        b"CustomObject/default/websites.example.com/a"
    );
    assert!(key_in(&d.key(Some("default"), "a"), "websites.example.com"));
    assert!(!key_in(&d.key(Some("default"), "a"), "sites.example.com"));
}

#[test]
fn the_name_must_be_plural_dot_group() {
    let e = check("web.example.com", serde_json::from_value(crd()).unwrap()).unwrap_err();
    assert_eq!(e.path, "metadata.name");
    assert!(e.message.contains("websites.example.com"), "{e}");
}

#[test]
fn bad_definitions_name_the_field() {
    let mut v = crd();
    v["spec"]["group"] = json!("apps");
    refused(v, "spec.group");
    let mut v = crd();
    v["spec"]["group"] = json!("storage.k8s.io");
    assert!(refused(v, "spec.group").contains("served by shoal"));
    let mut v = crd();
    v["spec"]["scope"] = json!("Global");
    refused(v, "spec.scope");
    let mut v = crd();
    v["spec"]["names"]["shortNames"] = json!(["po"]);
    assert!(refused(v, "spec.names.shortNames").contains("Pod"));
    let mut v = crd();
    v["spec"]["versions"][0]["storage"] = json!(false);
    assert!(refused(v, "spec.versions").contains("exactly one"));
    let mut v = crd();
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] =
        json!("map");
    refused(
        v,
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
    );
    let mut v = crd();
    v["spec"]["versions"][0]["additionalPrinterColumns"][0]["jsonPath"] = json!("spec..x");
    refused(v, "spec.versions[0].additionalPrinterColumns[0].jsonPath");
    let mut v = crd();
    v["spec"]["versions"][0]["subresources"]["scale"] =
        json!({"specReplicasPath": ".status.replicas", "statusReplicasPath": ".status.replicas"});
    assert!(
        refused(v, "spec.versions[0].subresources.scale.specReplicasPath").contains("under .spec")
    );
    let mut v = crd();
    v["spec"]["versions"][0]["subresources"]["scale"] = json!({"specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.pods[0]"});
    refused(v, "spec.versions[0].subresources.scale.statusReplicasPath");
    let mut v = crd();
    v["spec"]["versions"][0]["subresources"]["scale"] = json!({"specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".metadata.labels"});
    refused(v, "spec.versions[0].subresources.scale.labelSelectorPath");
    let mut v = crd();
    v["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    refused(v, "spec.versions[0].schema.openAPIV3Schema");
}

#[test]
fn names_conflict_within_a_group() {
    let a = checked(crd()).unwrap().spec;
    let mut b = a.clone();
    b.names.plural = "sites".into();
    b.names.kind = "Site".into();
    b.names.singular = "site".into();
    assert_eq!(conflict(&a, &b).as_deref(), Some("name \"ws\""));
    b.names.short_names.clear();
    assert_eq!(conflict(&a, &b), None);
    b.group = "other.com".into();
    b.names.kind = "Website".into();
    assert_eq!(conflict(&a, &b), None);
}

#[test]
fn printer_columns_read_simple_paths() {
    let o = json!({"spec": {"replicas": 3}, "status": {"conditions": [{"type": "Ready"}]}});
    assert_eq!(column_value(&o, ".spec.replicas"), Some(&json!(3)));
    assert_eq!(
        column_value(&o, "{.status.conditions[0].type}"),
        Some(&json!("Ready"))
    );
    assert_eq!(column_value(&o, ".spec.missing"), None);
    assert!(json_path("spec.replicas").is_none());
    assert!(json_path(".a[x]").is_none());
}

#[test]
fn the_status_accepts_the_names() {
    let b = checked(crd()).unwrap();
    let s = accepted_status(&b, "2026-12-01T00:00:00Z");
    let types: Vec<&str> = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["NamesAccepted", "Established"]);
    assert_eq!(s["acceptedNames"]["listKind"], "WebsiteList");
    assert_eq!(s["storedVersions"], json!(["v1"]));
}

#[test]
fn tables_show_the_printer_columns() {
    let cols = checked(crd()).unwrap().spec.versions[0]
        .additional_printer_columns
        .clone();
    let items = [
        json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {"replicas": 3}}),
        json!({"metadata": {"name": "b", "namespace": "team"}, "spec": {}}),
    ];
    let rows = table_rows(&cols, &items, true);
    assert_eq!(rows[0], ["NAMESPACE", "NAME", "REPLICAS"]);
    assert_eq!(rows[1], ["default", "a", "3"]);
    assert_eq!(rows[2], ["team", "b", "<none>"]);
    let rows = table_rows(&[], &items[..1], false);
    assert_eq!(rows[0], ["NAME", "AGE"]);
}

#[test]
fn scale_reads_and_sets_its_paths() {
    let scale = ScaleSubresource {
        spec_replicas_path: ".spec.size.count".into(),
        status_replicas_path: ".status.replicas".into(),
        label_selector_path: Some(".status.selector".into()),
    };
    scale.check("s").expect("valid paths");
    let mut o = json!({"spec": {"domain": "x"}, "status": {"replicas": 2, "selector": "app=x"}});
    assert_eq!(
        scale.read(&o),
        (0, 2, Some("app=x".into())),
        "unset desired reads 0"
    );
    scale.set_replicas(&mut o, 5).expect("sets");
    assert_eq!(
        o["spec"]["size"]["count"], 5,
        "made the missing object: {o}"
    );
    assert_eq!(scale.read(&o).0, 5);
    let mut o = json!({"spec": {"size": 3}});
    assert!(
        scale
            .set_replicas(&mut o, 1)
            .unwrap_err()
            .contains("spec.size")
    );
}
