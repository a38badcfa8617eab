//! The storage kinds: claims, volumes and classes, and the field each error names.

use super::*;
use crate::resource::types::{
    AccessMode, PersistentVolumeBody, PersistentVolumeClaimBody, StorageClassBody,
    VolumeBindingMode,
};

const CLAIM: &str = "
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
";

const VOLUME: &str = "
apiVersion: v1
kind: PersistentVolume
metadata:
  name: disk
  namespace: ignored
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  local: {path: /srv/disk}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [n2]}
";

const CLASS: &str = "
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: shoal.io/local
";

fn with(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "{from:?} not in the template");
    base.replacen(from, to, 1)
}

#[test]
fn a_claim_is_accepted_and_stays_in_its_namespace() {
    let p = ok(CLAIM);
    let o = &p.objects[0];
    assert_eq!(o.key().map(|k| k.namespace), Some("default".to_string()));
    let b = PersistentVolumeClaimBody::from_object(o).unwrap();
    assert_eq!(b.spec.access_modes, vec![AccessMode::ReadWriteOnce]);
    assert_eq!(b.spec.requested_bytes(), Some(1 << 30));
    assert_eq!(
        b.spec.storage_class_name, None,
        "the default class is chosen at binding"
    );
}

#[test]
fn a_claims_finalizers_are_the_systems() {
    // The store keeps the stored list when a write leaves the field out,
    // which only holds if no client write can carry one.
    let e = err(&with(
        CLAIM,
        "  name: data\n",
        "  name: data\n  finalizers: [kubernetes.io/pvc-protection]\n",
    ));
    assert!(
        e.contains("metadata.finalizers: field not supported by shoal"),
        "{e}"
    );
}

#[test]
fn claims_name_the_field_that_is_wrong() {
    for (from, to, want) in [
        (
            "accessModes: [ReadWriteOnce]",
            "accessModes: []",
            "spec.accessModes: at least one access mode is required",
        ),
        (
            "accessModes: [ReadWriteOnce]",
            "accessModes: [ReadWriteMany]",
            "spec.accessModes[0]: ReadWriteMany is not supported: shoal's volumes live on one node",
        ),
        (
            "accessModes: [ReadWriteOnce]",
            "accessModes: [ReadWriteOnce, ReadWriteOnce]",
            "spec.accessModes[1]: ReadWriteOnce is listed twice",
        ),
        (
            "accessModes: [ReadWriteOnce]",
            "accessModes: [ReadWriteOnce, ReadWriteOncePod]",
            "spec.accessModes: ReadWriteOncePod cannot be combined",
        ),
        (
            "accessModes: [ReadWriteOnce]",
            "accessModes: [ReadWriteSometimes]",
            "spec.accessModes[0]: unknown variant `ReadWriteSometimes`",
        ),
        (
            "storage: 1Gi",
            "storage: 1Gb",
            "spec.resources.requests.storage: invalid quantity \"1Gb\"",
        ),
        (
            "storage: 1Gi",
            "storage: 0",
            "spec.resources.requests.storage: must be more than zero",
        ),
        (
            "storage: 1Gi",
            "cpu: 1",
            "spec.resources.requests.cpu: only storage is supported",
        ),
        (
            "    requests:\n      storage: 1Gi",
            "    requests: {storage: 2Gi}\n    limits: {storage: 1Gi}",
            "spec.resources.limits.storage: must be at least spec.resources.requests.storage",
        ),
        (
            "    requests:\n      storage: 1Gi",
            "    limits: {storage: 1Gi}",
            "spec.resources.requests.storage: missing: the volume's size",
        ),
        (
            "spec:\n",
            "spec:\n  storageClassName: Fast_Disks\n",
            "spec.storageClassName: \"Fast_Disks\" is not valid",
        ),
        (
            "spec:\n",
            "spec:\n  volumeMode: Block\n",
            "spec.volumeMode: Block is not supported",
        ),
        (
            "spec:\n",
            "spec:\n  selector: {matchExpressions: [{key: a, operator: In}]}\n",
            "spec.selector.matchExpressions[0].values: must not be empty for operator In",
        ),
        (
            "spec:\n",
            "spec:\n  storageClass: local\n",
            "spec.storageClass: unknown field (did you mean `storageClassName`?)",
        ),
    ] {
        let e = err(&with(CLAIM, from, to));
        assert!(e.contains(want), "{to:?}: want {want:?} in\n{e}");
        assert!(
            e.starts_with("document 1 (PersistentVolumeClaim data): "),
            "{e}"
        );
    }
    ok(&with(CLAIM, "spec:\n", "spec:\n  storageClassName: \"\"\n"));
    ok(&with(CLAIM, "spec:\n", "spec:\n  volumeMode: Filesystem\n"));
    ok(&with(CLAIM, "[ReadWriteOnce]", "[ReadWriteOncePod]"));
}

#[test]
fn a_volume_is_cluster_scoped_and_checked() {
    let p = ok(VOLUME);
    let o = &p.objects[0];
    assert_eq!(
        o.metadata.namespace, None,
        "PersistentVolumes have no namespace"
    );
    let b = PersistentVolumeBody::from_object(o).unwrap();
    assert_eq!(b.spec.pinned_node(), Some("n2"));
    assert_eq!(b.spec.capacity_bytes(), Some(10 << 30));
    for (from, to, want) in [
        (
            "capacity: {storage: 10Gi}",
            "capacity: {}",
            "spec.capacity.storage: missing",
        ),
        (
            "persistentVolumeReclaimPolicy: Retain",
            "persistentVolumeReclaimPolicy: Recycle",
            "spec.persistentVolumeReclaimPolicy: Recycle is not supported",
        ),
        (
            "local: {path: /srv/disk}",
            "local: {path: srv/disk}",
            "spec.local.path: \"srv/disk\" must be an absolute path",
        ),
        (
            "  local: {path: /srv/disk}\n",
            "",
            "spec: a PersistentVolume needs a source",
        ),
        (
            "        - {key: kubernetes.io/hostname, operator: In, values: [n2]}",
            "        - {key: -bad-, operator: In, values: [n2]}",
            "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].key: invalid key",
        ),
        (
            "capacity: {storage: 10Gi}",
            "capacity: {storage: 10Gi}\n  mountOptions: [hard]",
            "spec.mountOptions: field not supported by shoal",
        ),
    ] {
        let e = err(&with(VOLUME, from, to));
        assert!(e.contains(want), "{to:?}: want {want:?} in\n{e}");
    }
    let no_affinity = VOLUME.split("  nodeAffinity:").next().unwrap_or("");
    let e = err(no_affinity);
    assert!(
        e.contains("spec.nodeAffinity: missing: a local volume needs the node"),
        "{e}"
    );
}

#[test]
fn classes_take_only_the_local_provisioner_and_bind_on_first_use() {
    let p = ok(CLASS);
    let b = StorageClassBody::from_object(&p.objects[0]).unwrap();
    assert_eq!(
        b.volume_binding_mode,
        Some(VolumeBindingMode::WaitForFirstConsumer),
        "stored explicitly"
    );
    assert_eq!(p.objects[0].metadata.namespace, None);
    for (from, to, want) in [
        (
            "provisioner: shoal.io/local",
            "provisioner: kubernetes.io/aws-ebs",
            "provisioner: \"kubernetes.io/aws-ebs\" is not a provisioner shoal has",
        ),
        (
            "provisioner: shoal.io/local",
            "provisioner: shoal.io/local\nvolumeBindingMode: Immediate",
            "volumeBindingMode: Immediate is not supported by shoal.io/local",
        ),
        (
            "provisioner: shoal.io/local",
            "provisioner: shoal.io/local\nparameters: {type: tmpfs}",
            "parameters.type: the shoal.io/local provisioner takes no parameters",
        ),
        (
            "provisioner: shoal.io/local",
            "provisioner: shoal.io/local\nreclaimPolicy: Recycle",
            "reclaimPolicy: Recycle is not supported",
        ),
        (
            "provisioner: shoal.io/local",
            "provisioner: shoal.io/local\nallowVolumeExpansion: true",
            "allowVolumeExpansion: not supported",
        ),
        (
            "  name: fast",
            "  name: fast\n  annotations: {storageclass.kubernetes.io/is-default-class: \"yes\"}",
            "must be \"true\" or \"false\"",
        ),
        (
            "apiVersion: storage.k8s.io/v1",
            "apiVersion: v1",
            "apiVersion: \"v1\" is not supported for StorageClass: use \"storage.k8s.io/v1\"",
        ),
    ] {
        let e = err(&with(CLASS, from, to));
        assert!(e.contains(want), "{to:?}: want {want:?} in\n{e}");
    }
}

#[test]
fn pods_mount_claims_by_name() {
    let p = ok(&deployment_with(
        "    spec:\n",
        "    spec:\n      volumes: [{name: data, persistentVolumeClaim: {claimName: db, readOnly: true}}]\n",
    ));
    let b = crate::resource::types::DeploymentBody::from_object(&p.objects[0]).unwrap();
    let v = &b.spec.template.spec.volumes[0];
    let c = v.persistent_volume_claim.as_ref().expect("a claim volume");
    assert_eq!((c.claim_name.as_str(), c.read_only), ("db", Some(true)));
    let e = err(&deployment_with(
        "    spec:\n",
        "    spec:\n      volumes: [{name: data, persistentVolumeClaim: {claimName: Bad_Name}}]\n",
    ));
    assert!(
        e.contains("spec.template.spec.volumes[0].persistentVolumeClaim.claimName: \"Bad_Name\" is not valid"),
        "{e}"
    );
    let e = err(&deployment_with(
        "    spec:\n",
        "    spec:\n      volumes: [{name: data, emptyDir: {}, persistentVolumeClaim: {claimName: db}}]\n",
    ));
    assert!(e.contains("more than one volume source"), "{e}");
}

#[test]
fn docker_classes_pass_parameters_and_bind_at_once() {
    let docker = with(
        CLASS,
        "provisioner: shoal.io/local",
        "provisioner: shoal.io/docker\nparameters: {type: nfs, o: \"addr=10.0.0.5,rw\", device: \":/export\"}",
    );
    let p = ok(&docker);
    let b = StorageClassBody::from_object(&p.objects[0]).unwrap();
    assert_eq!(
        b.volume_binding_mode,
        Some(VolumeBindingMode::Immediate),
        "stored explicitly"
    );
    assert_eq!(b.parameters["o"], "addr=10.0.0.5,rw");
    for (from, to, want) in [
        (
            "type: nfs",
            "type: nfs, driver: \"-bad\"",
            "parameters.driver: \"-bad\" is not a Docker volume name",
        ),
        (
            "type: nfs",
            "\"bad key\": nfs",
            "parameters[\"bad key\"]: an option name is letters",
        ),
        (
            "provisioner: shoal.io/docker",
            "provisioner: shoal.io/docker\nvolumeBindingMode: WaitForFirstConsumer",
            "volumeBindingMode: WaitForFirstConsumer is not supported by shoal.io/docker",
        ),
    ] {
        let e = err(&with(&docker, from, to));
        assert!(e.contains(want), "{to:?}: want {want:?} in\n{e}");
    }
    // A volume of the engine's driver: csi with driver shoal.io/docker.
    let local_source = "  local: {path: /srv/disk}\n";
    let csi = "  csi: {driver: shoal.io/docker, volumeHandle: shared-data, volumeAttributes: {type: tmpfs, device: tmpfs}}\n";
    ok(&with(VOLUME, local_source, csi));
    for (from, to, want) in [
        (
            "driver: shoal.io/docker",
            "driver: ebs.csi.aws.com",
            "spec.csi.driver: \"ebs.csi.aws.com\" is not a driver shoal has",
        ),
        (
            "volumeHandle: shared-data",
            "volumeHandle: \"../x\"",
            "spec.csi.volumeHandle: \"../x\" is not a Docker volume name",
        ),
    ] {
        let e = err(&with(&with(VOLUME, local_source, csi), from, to));
        assert!(e.contains(want), "{to:?}: want {want:?} in\n{e}");
    }
    let both = with(VOLUME, local_source, &format!("{local_source}{csi}"));
    assert!(
        err(&both).contains("spec.csi: only one source"),
        "{}",
        err(&both)
    );
}
