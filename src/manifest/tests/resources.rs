//! Container resources beside cpu and memory: ephemeral-storage, extended
//! resources and `claims`, each error naming its field.

use super::*;

fn pod(resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: a, image: b, resources: {resources}}}]}}\n"
    )
}

#[test]
fn extended_and_ephemeral_storage_are_accepted() {
    for r in [
        "{limits: {example.com/dongle: 2}}",
        "{requests: {nvidia.com/gpu: 1}, limits: {nvidia.com/gpu: \"1\"}}",
        "{requests: {ephemeral-storage: 100Mi}, limits: {ephemeral-storage: 1Gi}}",
        "{limits: {ephemeral-storage: 2G, example.com/dongle: 2000m}}",
    ] {
        ok(&pod(r));
    }
}

#[test]
fn resource_errors_name_the_field() {
    let p = "spec.containers[0].resources";
    let cases = [
        (
            "{requests: {example.com/dongle: 1}}",
            format!(
                "{p}.requests[\"example.com/dongle\"]: example.com/dongle is an extended resource: set its limit too"
            ),
        ),
        (
            "{requests: {example.com/dongle: 1}, limits: {example.com/dongle: 2}}",
            format!(
                "{p}.requests[\"example.com/dongle\"]: 1 must be equal to the example.com/dongle limit of 2"
            ),
        ),
        (
            "{limits: {example.com/dongle: 1.5}}",
            format!("{p}.limits[\"example.com/dongle\"]: \"1.5\" must be a whole number"),
        ),
        (
            "{limits: {kubernetes.io/dongle: 1}}",
            format!(
                "{p}.limits[\"kubernetes.io/dongle\"]: \"kubernetes.io/dongle\" is not an extended resource"
            ),
        ),
        (
            "{limits: {shoal.io/volume-storage: 1}}",
            format!("{p}.limits[\"shoal.io/volume-storage\"]: \"shoal.io/volume-storage\" is not"),
        ),
        (
            "{limits: {Bad_Domain/x: 1}}",
            format!(
                "{p}.limits[\"Bad_Domain/x\"]: \"Bad_Domain/x\" is not a valid extended resource name"
            ),
        ),
        (
            "{limits: {dongle: 1}}",
            format!(
                "{p}.limits.dongle: resource not supported: shoal supports cpu, memory, ephemeral-storage"
            ),
        ),
        (
            "{limits: {hugepages-2Mi: 1Gi}}",
            format!("{p}.limits.hugepages-2Mi: hugepages are not supported by shoal"),
        ),
        (
            "{limits: {ephemeral-storage: lots}}",
            format!("{p}.limits.ephemeral-storage: invalid quantity \"lots\""),
        ),
        (
            "{requests: {ephemeral-storage: 2Gi}, limits: {ephemeral-storage: 1Gi}}",
            format!("{p}.requests.ephemeral-storage: request 2Gi must not exceed the limit 1Gi"),
        ),
        (
            "{claims: [{name: gpu}]}",
            format!("{p}.claims: not supported by shoal: dynamic resource allocation"),
        ),
    ];
    for (r, want) in cases {
        let e = err(&pod(r));
        assert!(e.contains(&want), "{r}: {e}\nwanted: {want}");
    }
}
