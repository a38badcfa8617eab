//! A pod's ServiceAccount on the node: the agent adds to the pod spec it
//! runs (never to the stored one) a Secret volume of the account's token
//! Secret, mounted read-only at [`MOUNT_PATH`] in every container (init
//! containers included) that does not already mount something there, and
//! `KUBERNETES_SERVICE_HOST`/`_PORT` pointing at this node's API. The
//! volume's name has a dot, which no pod volume may have (they are DNS
//! labels), so it cannot collide with the user's. The files are written
//! like any Secret volume's (on a tmpfs, swapped atomically), with
//! `ca.crt` added when the API serves TLS.
//!
//! A pod whose account does not exist does not start: Kubernetes refuses
//! it at admission, but one apply often creates the account and its pods
//! together, so the agent holds the pod until the account is there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::resource::types::{
    Body, Container, EnvVar, PodSpec, SecretVolume, ServiceAccountBody, Volume, VolumeMount,
    token_secret_name,
};
use crate::resource::{Kind, Object, ObjectKey};

use super::volumes::{Objects, VolumeError};

/// The name of the volume the agent adds.
pub const VOLUME: &str = "kube-api-access.shoal";
/// Where the token, namespace and CA appear in containers, as in Kubernetes.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// This node's API as containers reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiEndpoint {
    /// The address containers connect to; `None` when the API listens on
    /// loopback only, which a container cannot reach.
    pub host: Option<String>,
    /// The API's port.
    pub port: u16,
    /// The cluster CA (PEM) when the API serves TLS.
    pub ca_pem: Option<String>,
}

/// What the agent knows of the pod's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// No such ServiceAccount in the pod's namespace (yet).
    Missing,
    /// It exists, with its `automountServiceAccountToken`.
    Found { automount: Option<bool> },
    /// It exists, but its controller has not made its token Secret yet.
    Unminted { automount: Option<bool> },
}

/// Reads the pod's account from the local replica.
pub fn lookup(store: &crate::store::Store, namespace: &str, name: &str) -> Account {
    let key = ObjectKey::new(Kind::ServiceAccount, namespace, name);
    let Ok(Some(o)) = store.get(&key) else {
        return Account::Missing;
    };
    let automount = ServiceAccountBody::from_object(&o)
        .ok()
        .and_then(|b| b.automount_service_account_token);
    // Sealed: only its owner matters here. A Secret of that name that the
    // account does not own (a user's) must not be mounted as its token.
    let secret = ObjectKey::new(Kind::Secret, namespace, &token_secret_name(name));
    let ours = |s: &Object| {
        let owner = s.metadata.controller_ref();
        owner.is_some_and(|r| r.kind == Kind::ServiceAccount.as_str())
            && owner.map(|r| r.uid.as_str()) == o.metadata.uid.as_deref()
    };
    match store.get_sealed(&secret) {
        Ok(Some(s)) if ours(&s) => Account::Found { automount },
        _ => Account::Unminted { automount },
    }
}

/// Adds the account's volume, mounts and variables to `spec` (what the
/// agent runs). Pure. `process`: the process runtime, which cannot mount:
/// there the token is mounted only if asked for explicitly, and then the
/// pod is refused with the reason, since a silent skip would leave a
/// program without the credential it was promised.
pub fn inject(
    spec: &mut PodSpec,
    account: &Account,
    api: Option<&ApiEndpoint>,
    process: bool,
) -> Result<(), VolumeError> {
    let name = spec.account_name().to_string();
    let (automount, minted) = match account {
        Account::Missing => {
            return Err(VolumeError::Config(format!(
                "serviceaccount {name:?} not found: the pod starts once it is created"
            )));
        }
        Account::Found { automount } => (automount, true),
        Account::Unminted { automount } => (automount, false),
    };
    if let Some(api) = api
        && let Some(host) = &api.host
    {
        let mut vars = vec![
            ("KUBERNETES_SERVICE_HOST", host.clone()),
            ("KUBERNETES_SERVICE_PORT", api.port.to_string()),
        ];
        if api.ca_pem.is_some() {
            vars.push(("KUBERNETES_SERVICE_PORT_HTTPS", api.port.to_string()));
        }
        for c in spec
            .init_containers
            .iter_mut()
            .chain(spec.containers.iter_mut())
        {
            for (k, v) in &vars {
                if !c.env.iter().any(|e| e.name == *k) {
                    c.env.push(EnvVar {
                        name: k.to_string(),
                        value: Some(v.clone()),
                        value_from: None,
                    });
                }
            }
        }
    }
    let explicit = spec.automount_service_account_token.or(*automount);
    if explicit == Some(false) {
        return Ok(());
    }
    if process {
        if explicit == Some(true) {
            return Err(VolumeError::Config(format!(
                "automountServiceAccountToken is true, but the process runtime cannot mount \
                 the token of serviceaccount {name:?}: run this pod on a node with the docker \
                 runtime, or set automountServiceAccountToken: false"
            )));
        }
        return Ok(());
    }
    if !minted {
        // Said so rather than "secret not found", which would send the
        // user looking for a Secret they never made.
        return Err(VolumeError::Config(format!(
            "the token of serviceaccount {name:?} is not made yet: the pod starts once its \
             controller has made it (as Secret {:?}, which must not be taken by another \
             Secret)",
            token_secret_name(&name)
        )));
    }
    spec.volumes.push(Volume {
        name: VOLUME.into(),
        secret: Some(SecretVolume {
            secret_name: token_secret_name(&name),
            ..Default::default()
        }),
        ..Default::default()
    });
    let at = |p: &str| p.trim_end_matches('/') == MOUNT_PATH;
    for c in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        // Kubernetes skips the automount where the container mounts
        // something of its own there.
        if c.volume_mounts.iter().any(|m| at(&m.mount_path)) {
            continue;
        }
        c.volume_mounts.push(VolumeMount {
            name: VOLUME.into(),
            mount_path: MOUNT_PATH.into(),
            read_only: Some(true),
            sub_path: None,
        });
    }
    Ok(())
}

/// The variables [`inject`] sets.
const API_VARS: [&str; 3] = [
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBERNETES_SERVICE_PORT_HTTPS",
];

/// The container as the user wrote it, for its spec hash: what [`inject`]
/// adds must not make every container of a node restart when the agent
/// starts adding it (an upgrade) or the API's address changes. A pod's env
/// cannot change in place (Pod specs are immutable but for images), so
/// leaving the user's own copies of these variables out loses nothing.
pub fn as_written(c: &Container) -> std::borrow::Cow<'_, Container> {
    let ours = |m: &VolumeMount| m.name == VOLUME;
    let var = |e: &EnvVar| API_VARS.contains(&e.name.as_str());
    if !c.volume_mounts.iter().any(ours) && !c.env.iter().any(var) {
        return std::borrow::Cow::Borrowed(c);
    }
    let mut c = c.clone();
    c.volume_mounts.retain(|m| !ours(m));
    c.env.retain(|e| !var(e));
    std::borrow::Cow::Owned(c)
}

/// The agent's side of a pod: its spec with the account's additions, and
/// why its containers must wait, if they must.
pub fn prepare(
    ctx: &super::Ctx,
    pod: &Object,
    mut spec: PodSpec,
) -> (PodSpec, Option<VolumeError>) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let account = lookup(&ctx.store, ns, spec.account_name());
    let process = ctx.runtime.name() == crate::runtime::RuntimeKind::Process.as_str();
    let err = inject(&mut spec, &account, ctx.api.get(), process).err();
    (spec, err)
}

/// The volumes' objects with `ca.crt` added to the account's token Secret
/// when the API serves TLS (the CA is this node's, not a stored object).
pub struct WithCa<'a> {
    /// The objects of the pod's namespace.
    pub inner: &'a dyn Objects,
    /// The token Secret's name.
    pub secret: String,
    /// The CA, PEM.
    pub ca: Option<Vec<u8>>,
}

impl Objects for WithCa<'_> {
    fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        self.inner.config_map(name)
    }
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let mut data = self.inner.secret(name)?;
        if name == self.secret
            && let (Some(d), Some(ca)) = (data.as_mut(), &self.ca)
        {
            d.insert("ca.crt".into(), ca.clone());
        }
        Ok(data)
    }
    fn claim_dir(&self, claim: &str) -> Result<PathBuf, VolumeError> {
        self.inner.claim_dir(claim)
    }
    fn claim_volume(
        &self,
        claim: &str,
    ) -> Result<Option<(String, crate::runtime::NamedVolume)>, VolumeError> {
        self.inner.claim_volume(claim)
    }
}

#[cfg(test)]
mod tests;
