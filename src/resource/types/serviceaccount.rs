//! The ServiceAccount kind (v1): an identity for pods. Its controller mints
//! it an API token, kept in a Secret the agent mounts into its pods.

use serde::{Deserialize, Serialize};

use super::{Body, Role};
use crate::resource::Kind;

/// The annotation choosing the role of a ServiceAccount's token.
pub const ROLE_ANNOTATION: &str = "shoal.io/role";
/// The Secret type Kubernetes gives a ServiceAccount's token Secret.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the ServiceAccount a token Secret belongs to.
pub const SECRET_ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The ServiceAccount a pod runs as when it names none.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Body of a `ServiceAccount`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountBody {
    /// Whether pods get the token mounted; a pod's own setting wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// Stored, not acted on: shoal pulls images without registry credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<NameRef>,
    /// Stored, not acted on: the token Secret is the controller's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<NameRef>,
}

impl Body for ServiceAccountBody {
    const KIND: Kind = Kind::ServiceAccount;
}

/// A reference to an object by name (Kubernetes' `LocalObjectReference`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameRef {
    /// The object's name, in the account's namespace.
    #[serde(default)]
    pub name: String,
}

/// The role a ServiceAccount's token gets from its annotation: `view` when
/// absent. `admin` is refused: anyone who may create a pod could then run
/// one as the account and read an admin token out of it.
pub fn account_role(annotation: Option<&str>) -> Result<Role, String> {
    match annotation {
        None | Some("view") => Ok(Role::View),
        Some("edit") => Ok(Role::Edit),
        Some("admin") => Err(format!(
            "{ROLE_ANNOTATION}: \"admin\" is refused: whoever may create a pod could run it \
             as this account and read an admin token; use view or edit"
        )),
        Some(other) => Err(format!(
            "{ROLE_ANNOTATION}: {other:?} is not a role a ServiceAccount may have: use view \
             (the default) or edit"
        )),
    }
}

/// The name of the Secret holding a ServiceAccount's token.
pub fn token_secret_name(account: &str) -> String {
    format!("{account}-token")
}

/// The name of a ServiceAccount's Token object (cluster-scoped, so the
/// namespace is in it; a namespace has no dot, so the name is unambiguous).
pub fn token_name(namespace: &str, account: &str) -> String {
    format!("{TOKEN_PREFIX}{namespace}.{account}")
}

/// The prefix of ServiceAccounts' Token names, which `/v1/tokens` refuses.
pub const TOKEN_PREFIX: &str = "serviceaccount.";
