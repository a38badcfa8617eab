//! The rules every write follows, shared by the state machine that applies
//! committed commands and by dry runs (`Store::preview`), which decide on
//! this node's replica what a command would do and write nothing.

use super::{Op, Outcome, Precondition, TxnError};
use crate::resource::{Kind, Object, ObjectKey};

impl Op {
    /// The key the op reads or writes; `None` for the quota setting.
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            Op::Put { key, .. }
            | Op::Delete { key, .. }
            | Op::SetStatus { key, .. }
            | Op::Check { key, .. } => Some(key),
            Op::SetQuota { .. } => None,
        }
    }
}

/// The precondition an op carries.
pub(super) fn precondition_of(op: &Op) -> Precondition {
    match op {
        Op::Put { precondition, .. } | Op::Delete { precondition, .. } => *precondition,
        Op::SetStatus { .. } => Precondition::MustExist,
        Op::Check { version, .. } => Precondition::Version(*version),
        Op::SetQuota { .. } => Precondition::None,
    }
}

/// Whether `op` on `key` may apply over `current`, what the key holds now.
pub(super) fn check(op: &Op, key: &ObjectKey, current: Option<&Object>) -> Result<(), TxnError> {
    let current_rv = current.map(|o| o.resource_version());
    match (op, precondition_of(op)) {
        (_, Precondition::MustNotExist) if current.is_some() => {
            Err(TxnError::AlreadyExists { key: key.clone() })
        }
        (_, Precondition::MustExist) if current.is_none() => {
            Err(TxnError::NotFound { key: key.clone() })
        }
        (Op::Delete { .. } | Op::SetStatus { .. }, _) if current.is_none() => {
            Err(TxnError::NotFound { key: key.clone() })
        }
        (Op::SetStatus { uid: Some(uid), .. }, _)
            if current.and_then(|o| o.metadata.uid.as_ref()) != Some(uid) =>
        {
            Err(TxnError::NotFound { key: key.clone() })
        }
        (_, Precondition::Version(v)) if current_rv != Some(v) => match current_rv {
            Some(actual) => Err(TxnError::Conflict {
                key: key.clone(),
                expected: v,
                actual,
            }),
            None => Err(TxnError::NotFound { key: key.clone() }),
        },
        _ => Ok(()),
    }
}

/// What a put of `new` under `key` leaves stored over `current`, at
/// `revision`: `None` when it changes nothing the store keeps (the write
/// is Unchanged). What the server owns carries over from `current` (uid,
/// creation time, a deletion begun, finalizers and status a write leaves
/// out); `generation` counts spec changes; a new object gets `new_uid()`.
pub(super) fn put(
    key: &ObjectKey,
    current: Option<&Object>,
    mut new: Object,
    new_uid: impl FnOnce() -> String,
    revision: u64,
) -> Option<(Object, Outcome)> {
    let outcome = match current {
        Some(old)
            if old.same_desired_state(&new)
                && !new.body.contains_key("status")
                && new
                    .metadata
                    .deletion_timestamp
                    .as_ref()
                    .is_none_or(|t| Some(t) == old.metadata.deletion_timestamp.as_ref())
                && new.metadata.finalizers.as_ref().is_none_or(|f| {
                    Some(f) == old.metadata.finalizers.as_ref()
                        || (f.is_empty() && old.metadata.finalizers.is_none())
                }) =>
        {
            return None;
        }
        Some(old) => {
            new.metadata.uid = old.metadata.uid.clone();
            new.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
            // A deletion once begun is not undone by a re-apply.
            if new.metadata.deletion_timestamp.is_none() {
                new.metadata.deletion_timestamp = old.metadata.deletion_timestamp.clone();
            }
            if new.metadata.finalizers.is_none() {
                new.metadata.finalizers = old.metadata.finalizers.clone();
            }
            let spec_changed = old.body.get("spec") != new.body.get("spec");
            let generation = old.metadata.generation.unwrap_or(1);
            new.metadata.generation = Some(if spec_changed {
                generation + 1
            } else {
                generation
            });
            if !new.body.contains_key("status")
                && let Some(s) = old.body.get("status")
            {
                new.body.insert("status".into(), s.clone());
            }
            Outcome::Updated
        }
        None => {
            new.metadata.uid = Some(new_uid());
            new.metadata.generation = Some(1);
            Outcome::Created
        }
    };
    // An emptied list is stored as none, as Kubernetes shows it.
    if new.metadata.finalizers.as_ref().is_some_and(Vec::is_empty) {
        new.metadata.finalizers = None;
    }
    new.metadata.resource_version = Some(revision.to_string());
    new.metadata.namespace = if key.kind.namespaced() {
        Some(key.namespace.clone())
    } else {
        None
    };
    if key.kind == Kind::CustomObject {
        // Its own kind stays; the key's name folds in its definition
        // (`PLURAL.GROUP/NAME`, see crate::crd), and a cluster-scoped one
        // has no namespace.
        let name = key.name.split_once('/').map_or(&*key.name, |(_, n)| n);
        new.metadata.name = name.to_string();
        new.metadata.namespace = new.metadata.namespace.filter(|n| !n.is_empty());
    } else {
        new.metadata.name = key.name.clone();
        new.kind = key.kind.as_str().to_string();
    }
    Some((new, outcome))
}

impl super::Store {
    /// What `cmd` would do, decided on this node's replica once it has
    /// caught up with the leader (a read barrier), and never written:
    /// Kubernetes' `dryRun=All`. Each op sees the ones before it. A new
    /// object gets a uid of its own and no resourceVersion; an updated one
    /// keeps its current resourceVersion. The state quota is not checked.
    pub async fn preview(
        &self,
        cmd: &super::Command,
    ) -> Result<Vec<super::OpOutcome>, super::StoreError> {
        use std::collections::HashMap;
        let size = cmd.size_bytes();
        if size > super::MAX_COMMAND_BYTES {
            return Err(TxnError::TooLarge {
                bytes: size,
                limit: super::MAX_COMMAND_BYTES,
            }
            .into());
        }
        self.barrier().await?;
        let mut seen: HashMap<&ObjectKey, Option<Object>> = HashMap::new();
        let mut out = Vec::new();
        let encode = |o: &Object| serde_json::to_vec(o).unwrap_or_default();
        for op in &cmd.ops {
            let Some(key) = op.key() else { continue };
            let current = match seen.get(key) {
                Some(o) => o.clone(),
                None => self.get(key)?,
            };
            check(op, key, current.as_ref())?;
            let rv = current.as_ref().map_or(0, Object::resource_version);
            let (after, outcome) = match (op, current) {
                (Op::Check { .. }, _) | (_, None) if !matches!(op, Op::Put { .. }) => continue,
                (Op::SetStatus { status, .. }, Some(mut o)) => {
                    let status: serde_json::Value =
                        serde_json::from_slice(status).map_err(|e| TxnError::Invalid {
                            key: key.clone(),
                            msg: format!("undecodable status: {e}"),
                        })?;
                    o.body.insert("status".into(), status);
                    (Some(o), Outcome::Updated)
                }
                (Op::Delete { .. }, Some(o)) => {
                    out.push(super::OpOutcome {
                        key: key.clone(),
                        outcome: Outcome::Deleted,
                        resource_version: rv,
                        object: encode(&o),
                    });
                    seen.insert(key, None);
                    continue;
                }
                (Op::Put { object, .. }, current) => {
                    let new: Object =
                        serde_json::from_slice(object).map_err(|e| TxnError::Invalid {
                            key: key.clone(),
                            msg: format!("undecodable object: {e}"),
                        })?;
                    match put(key, current.as_ref(), new, dry_run_uid, rv) {
                        Some((mut o, outcome)) => {
                            if outcome == Outcome::Created {
                                o.metadata.resource_version = None;
                            }
                            (Some(o), outcome)
                        }
                        None => (current, Outcome::Unchanged),
                    }
                }
                _ => continue,
            };
            if let Some(o) = &after {
                out.push(super::OpOutcome {
                    key: key.clone(),
                    outcome,
                    resource_version: rv,
                    object: encode(o),
                });
            }
            seen.insert(key, after);
        }
        Ok(out)
    }
}

/// A uid for an object a dry run creates: random, as the one a real
/// create would get is derived from the Raft entry that never is.
fn dry_run_uid() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    uid_text(&b)
}

/// Sixteen bytes written as a uid (`8-4-4-4-12` hex digits).
pub(super) fn uid_text(b: &[u8]) -> String {
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}
