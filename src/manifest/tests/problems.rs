//! Reporting every problem of a file at once, and names made from `generateName`.

use super::*;

#[test]
fn every_problem_of_every_document_is_reported_at_once() {
    let bad_deployment = deployment_with(
        "image: busybox",
        "image: busybox\n        imagee: x\n        resizePolicy: []\n        securityContext: {seLinuxOptions: {level: s0}}",
    );
    let text = format!(
        "{bad_deployment}---\n{NGINX}---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{ports: [{{port: 80}}], sessionAffinity: ClientIP, externalName: x, sessionAffinityConfig: {{}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: a}}]}}\n"
    );
    let e = err(&text);
    let lines: Vec<&str> = e.lines().collect();
    let has = |want: &str| lines.iter().any(|l| l.contains(want));
    assert!(
        has("document 1 (Deployment web): spec.template.spec.containers[0].imagee"),
        "{e}"
    );
    assert!(
        has("document 1 (Deployment web): spec.template.spec.containers[0].resizePolicy"),
        "{e}"
    );
    assert!(
        has(
            "document 1 (Deployment web): spec.template.spec.containers[0].securityContext.seLinuxOptions"
        ),
        "{e}"
    );
    assert!(has("document 3 (Service s): spec.externalName"), "{e}");
    // A missing field is reported once, not chased.
    assert!(has("document 4 (Pod p): spec.containers[0].image"), "{e}");
    assert!(
        !has("document 2"),
        "the valid document has nothing to say: {e}"
    );
    assert!(lines.iter().all(|l| l.starts_with("document ")), "{e}");
    // Nothing of the file is kept: the valid document is not stored either.
    assert!(parse_manifests(NGINX).is_ok());
}

#[test]
fn generate_name_names_each_new_object() {
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: backup-}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: a, image: b}]}}}\n";
    let a = ok(job);
    let b = ok(job);
    let (na, nb) = (&a.objects[0].metadata.name, &b.objects[0].metadata.name);
    assert!(
        na.starts_with("backup-") && na.len() == "backup-".len() + 5,
        "{na}"
    );
    assert_ne!(na, nb, "each apply makes a new object");
    assert_eq!(
        a.objects[0].metadata.generate_name.as_deref(),
        Some("backup-")
    );
    // A name wins over generateName, as in Kubernetes.
    let named = ok(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, generateName: p-}\nspec: {containers: [{name: a, image: b}]}\n",
    );
    assert_eq!(named.objects[0].metadata.name, "p");
    // A long prefix is cut so the name fits the kind's rule.
    let long = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{generateName: {}-}}\nspec: {{containers: [{{name: a, image: b}}]}}\n",
        "x".repeat(80)
    );
    assert_eq!(ok(&long).objects[0].metadata.name.len(), 63);
    let e = err(
        "apiVersion: v1\nkind: Pod\nmetadata: {generateName: Bad_}\nspec: {containers: [{name: a, image: b}]}\n",
    );
    assert!(
        e.contains("metadata.generateName: \"Bad_\" cannot start a valid name"),
        "{e}"
    );
}
