//! ServiceAccounts: every namespace that is not terminating has a `default`
//! account (made again if deleted, as Kubernetes does), and every account
//! has an API token: a `Token` object (only the hash) and a Secret of type
//! `kubernetes.io/service-account-token` holding the token itself, both
//! owned by the account so garbage collection takes them with it (which is
//! what revokes the token). Level-triggered and fenced: each write is
//! conditional on the namespace or account, and the Token and Secret, being
//! as the pass read them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::ControllerError;
use crate::resource::types::{
    DEFAULT_ACCOUNT, ROLE_ANNOTATION, Role, SECRET_ACCOUNT_ANNOTATION, TOKEN_SECRET_TYPE,
    TokenBody, account_role, decode_base64, encode_base64, token_name, token_secret_name,
};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, OwnerReference};
use crate::store::{Command, Op, Precondition, Store};

/// Most writes one pass makes, so a cluster with many accounts is brought
/// up to date over several passes without crowding other writes out.
pub const WRITES_PER_PASS: usize = 64;

/// What one pass should write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create `default` in this namespace, if it is still at this version.
    CreateDefault { namespace: String, version: u64 },
    /// Mint a token for the account (at `version`, with `uid`), replacing
    /// the Token and Secret at the versions read (`None`: absent).
    Mint {
        account: ObjectKey,
        version: u64,
        uid: String,
        role: Role,
        token: Option<u64>,
        secret: Option<u64>,
    },
}

/// What a pass reads: Namespaces, ServiceAccounts, the accounts' Tokens
/// (by name) and their token Secrets (opened, by namespace and name).
pub struct Observed<'a> {
    /// Every Namespace.
    pub namespaces: &'a [Object],
    /// Every ServiceAccount.
    pub accounts: &'a [Object],
    /// The accounts' Tokens, by name.
    pub tokens: &'a BTreeMap<String, Object>,
    /// The accounts' token Secrets, by (namespace, name).
    pub secrets: &'a BTreeMap<(String, String), Object>,
}

fn owned_by(o: &Object, uid: &str) -> bool {
    o.metadata
        .controller_ref()
        .is_some_and(|r| r.kind == Kind::ServiceAccount.as_str() && r.uid == uid)
}

/// The `token` a Secret holds, in clear.
fn secret_token(s: &Object) -> Option<String> {
    let b64 = s.body.get("data")?.get("token")?.as_str()?;
    String::from_utf8(decode_base64(b64).ok()?).ok()
}

/// Decides a pass. Pure: the table tests drive it.
pub fn decide(obs: &Observed<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    let live: BTreeSet<&str> = obs
        .namespaces
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| n.metadata.name.as_str())
        .collect();
    let has_default: BTreeSet<&str> = obs
        .accounts
        .iter()
        .filter(|a| a.metadata.name == DEFAULT_ACCOUNT)
        .filter_map(|a| a.metadata.namespace.as_deref())
        .collect();
    for ns in obs.namespaces {
        let name = ns.metadata.name.as_str();
        if live.contains(name) && !has_default.contains(name) {
            out.push(Action::CreateDefault {
                namespace: name.to_string(),
                version: ns.resource_version(),
            });
        }
    }
    for a in obs.accounts {
        let (Some(key), Some(uid)) = (a.key(), a.metadata.uid.as_deref()) else {
            continue;
        };
        if !live.contains(key.namespace.as_str()) {
            continue;
        }
        // Refused when stored; one written before that rule gets no token.
        let Ok(role) = account_role(
            a.metadata
                .annotations
                .get(ROLE_ANNOTATION)
                .map(String::as_str),
        ) else {
            continue;
        };
        let token = obs.tokens.get(&token_name(&key.namespace, &key.name));
        let secret = obs
            .secrets
            .get(&(key.namespace.clone(), token_secret_name(&key.name)));
        // Someone else's object under the name (a user's Secret, or the
        // Token of a deleted account with the same name, which garbage
        // collection is about to take): not ours to replace.
        if token.is_some_and(|t| !owned_by(t, uid)) || secret.is_some_and(|s| !owned_by(s, uid)) {
            continue;
        }
        let token_body = token.and_then(|t| crate::resource::types::Body::from_object(t).ok());
        let current = match (&token_body, secret.and_then(secret_token)) {
            (Some(TokenBody { spec }), Some(plain)) => {
                spec.role == role
                    && crate::resource::token::stored_hash(&plain).as_deref()
                        == Some(spec.secret_sha256.as_str())
            }
            _ => false,
        };
        if !current {
            out.push(Action::Mint {
                account: key,
                version: a.resource_version(),
                uid: uid.to_string(),
                role,
                token: token.map(Object::resource_version),
                secret: secret.map(Object::resource_version),
            });
        }
    }
    out.truncate(WRITES_PER_PASS);
    out
}

fn precondition(version: Option<u64>) -> Precondition {
    match version {
        Some(v) => Precondition::Version(v),
        None => Precondition::MustNotExist,
    }
}

fn put(key: ObjectKey, obj: &Object, version: Option<u64>) -> Result<Op, ControllerError> {
    Ok(Op::Put {
        key,
        object: serde_json::to_vec(obj).map_err(|e| ControllerError::Invalid(e.to_string()))?,
        precondition: precondition(version),
    })
}

fn object(kind: Kind, metadata: ObjectMeta, body: serde_json::Value) -> Object {
    Object {
        api_version: kind.api_version().into(),
        kind: kind.as_str().into(),
        metadata,
        body: match body {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
    }
}

/// The writes of one action.
pub fn ops(action: &Action) -> Result<Vec<Op>, ControllerError> {
    match action {
        Action::CreateDefault { namespace, version } => {
            let key = ObjectKey::new(Kind::ServiceAccount, namespace, DEFAULT_ACCOUNT);
            let meta = ObjectMeta {
                name: DEFAULT_ACCOUNT.into(),
                namespace: Some(namespace.clone()),
                ..Default::default()
            };
            Ok(vec![
                Op::Check {
                    key: ObjectKey::new(Kind::Namespace, "", namespace),
                    version: *version,
                },
                put(key, &object(Kind::ServiceAccount, meta, json!({})), None)?,
            ])
        }
        Action::Mint {
            account,
            version,
            uid,
            role,
            token,
            secret,
        } => {
            let owner = OwnerReference {
                api_version: "v1".into(),
                kind: Kind::ServiceAccount.as_str().into(),
                name: account.name.clone(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            };
            let name = token_name(&account.namespace, &account.name);
            let (plain, hash) = crate::resource::token::new_token(&name);
            let token_obj = object(
                Kind::Token,
                ObjectMeta {
                    name: name.clone(),
                    owner_references: vec![owner.clone()],
                    ..Default::default()
                },
                json!({"spec": {
                    "role": role.as_str(),
                    "secretSha256": hash,
                    "description": format!(
                        "ServiceAccount {}/{}", account.namespace, account.name
                    ),
                }}),
            );
            let secret_name = token_secret_name(&account.name);
            let secret_obj = object(
                Kind::Secret,
                ObjectMeta {
                    name: secret_name.clone(),
                    namespace: Some(account.namespace.clone()),
                    annotations: BTreeMap::from([(
                        SECRET_ACCOUNT_ANNOTATION.to_string(),
                        account.name.clone(),
                    )]),
                    owner_references: vec![owner],
                    ..Default::default()
                },
                json!({
                    "type": TOKEN_SECRET_TYPE,
                    "data": {
                        "token": encode_base64(plain.as_bytes()),
                        "namespace": encode_base64(account.namespace.as_bytes()),
                    },
                }),
            );
            Ok(vec![
                Op::Check {
                    key: account.clone(),
                    version: *version,
                },
                put(ObjectKey::new(Kind::Token, "", &name), &token_obj, *token)?,
                put(
                    ObjectKey::new(Kind::Secret, &account.namespace, &secret_name),
                    &secret_obj,
                    *secret,
                )?,
            ])
        }
    }
}

/// One pass; `accounts` as listed this pass.
pub async fn reconcile(store: &Store, namespaces: &[Object], accounts: &[Object]) {
    if let Err(e) = pass(store, namespaces, accounts).await {
        e.log("serviceaccounts", "*");
    }
}

async fn pass(
    store: &Store,
    namespaces: &[Object],
    accounts: &[Object],
) -> Result<(), ControllerError> {
    let tokens: BTreeMap<String, Object> = store
        .list(Kind::Token, None)?
        .0
        .into_iter()
        .filter(|t| {
            t.metadata
                .name
                .starts_with(crate::resource::types::TOKEN_PREFIX)
        })
        .map(|t| (t.metadata.name.clone(), t))
        .collect();
    let mut secrets = BTreeMap::new();
    for a in accounts {
        let ns = a.metadata.namespace.clone().unwrap_or_default();
        let name = token_secret_name(&a.metadata.name);
        // One that does not open is treated as absent only if ours: the
        // mint replaces it at the version read.
        if let Ok(Some(s)) = store.get(&ObjectKey::new(Kind::Secret, &ns, &name)) {
            secrets.insert((ns, name), s);
        } else if let Ok(Some(s)) = store.get_sealed(&ObjectKey::new(Kind::Secret, &ns, &name)) {
            secrets.insert((ns, name), s);
        }
    }
    let actions = decide(&Observed {
        namespaces,
        accounts,
        tokens: &tokens,
        secrets: &secrets,
    });
    for a in &actions {
        let result = match ops(a) {
            Ok(ops) => store.write(Command { ops }).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                ::metrics::counter!(super::metrics::SERVICEACCOUNT_CHANGES_TOTAL).increment(1);
            }
            Err(e) => e.log("serviceaccounts", &format!("{a:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
