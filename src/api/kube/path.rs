//! What a Kubernetes resource path names: `/api/v1/namespaces/NS/pods/NAME`
//! and `/apis/GROUP/VERSION/...`, resolved against shoal's Kind table.

use crate::resource::Kind;

/// The object or collection a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    /// `None` for a cluster-scoped kind, or for a namespaced kind listed
    /// across all namespaces.
    pub namespace: Option<String>,
    /// `None` for a collection.
    pub name: Option<String>,
    /// A subresource (`status`, `scale`, `log`, ...), none of which shoal
    /// serves at these paths yet.
    pub subresource: Option<String>,
}

/// Why a path names nothing shoal serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the server could not find the requested resource ({plural} in {group_version})")]
    UnknownResource {
        group_version: String,
        plural: String,
    },
    #[error("{kind} is cluster-scoped: it has no namespace in its path")]
    ClusterScoped { kind: Kind },
    #[error("{kind} is namespaced: use .../namespaces/NAMESPACE/{plural}/NAME", plural = kind.plural())]
    Namespaced { kind: Kind },
    #[error("the server could not find the requested resource ({path})")]
    Malformed { path: String },
}

/// The kind served at `plural` in `group_version` (`v1`, `apps/v1`): URLs
/// take only the exact plural, as Kubernetes'.
pub fn kind_at(group_version: &str, plural: &str) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural && k.api_version() == group_version)
}

/// Parses what follows `/api/v1/` or `/apis/GROUP/VERSION/`.
pub fn parse(group_version: &str, rest: &str) -> Result<Target, PathError> {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(PathError::Malformed {
            path: rest.to_string(),
        });
    }
    let kind = |plural: &str| {
        kind_at(group_version, plural).ok_or_else(|| PathError::UnknownResource {
            group_version: group_version.to_string(),
            plural: plural.to_string(),
        })
    };
    let owned = |s: &str| Some(s.to_string());
    let t = match segs.as_slice() {
        // A namespace's own subresources (`status`, `finalize`) are not
        // kinds: `namespaces/NS/status` is the namespace, not a listing.
        ["namespaces", ns, plural, rest @ ..]
            if group_version != "v1" || !matches!(*plural, "status" | "finalize") =>
        {
            let kind = kind(plural)?;
            if !kind.namespaced() {
                return Err(PathError::ClusterScoped { kind });
            }
            let (name, subresource) = match rest {
                [] => (None, None),
                [name] => (owned(name), None),
                [name, sub] => (owned(name), owned(sub)),
                _ => {
                    return Err(PathError::Malformed {
                        path: rest.join("/"),
                    });
                }
            };
            Target {
                kind,
                namespace: owned(ns),
                name,
                subresource,
            }
        }
        [plural, rest @ ..] => {
            let kind = kind(plural)?;
            let (name, subresource) = match rest {
                [] => (None, None),
                [name] => (owned(name), None),
                [name, sub] => (owned(name), owned(sub)),
                _ => {
                    return Err(PathError::Malformed {
                        path: rest.join("/"),
                    });
                }
            };
            if kind.namespaced() && name.is_some() {
                return Err(PathError::Namespaced { kind });
            }
            Target {
                kind,
                namespace: None,
                name,
                subresource,
            }
        }
        [] => {
            return Err(PathError::Malformed {
                path: rest.to_string(),
            });
        }
    };
    Ok(t)
}

/// `deployments.apps`, `pods`: how Kubernetes names a resource in messages.
pub fn qualified(kind: Kind) -> String {
    match kind.api_version().split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.plural()),
        None => kind.plural().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_objects_and_collections() {
        let t = parse("apps/v1", "namespaces/web/deployments/front").unwrap();
        assert_eq!(t.kind, Kind::Deployment);
        assert_eq!(t.namespace.as_deref(), Some("web"));
        assert_eq!(t.name.as_deref(), Some("front"));
        assert_eq!(t.subresource, None);
        let t = parse("v1", "namespaces/default/pods").unwrap();
        assert_eq!((t.kind, t.name), (Kind::Pod, None));
        let t = parse("v1", "namespaces/default/pods/p/log").unwrap();
        assert_eq!(t.subresource.as_deref(), Some("log"));
        // All namespaces.
        let t = parse("v1", "pods").unwrap();
        assert_eq!((t.kind, t.namespace), (Kind::Pod, None));
    }

    #[test]
    fn cluster_scoped_and_namespaces_themselves() {
        let t = parse("v1", "nodes/n1").unwrap();
        assert_eq!((t.kind, t.name.as_deref()), (Kind::Node, Some("n1")));
        let t = parse("v1", "namespaces/prod").unwrap();
        assert_eq!((t.kind, t.name.as_deref()), (Kind::Namespace, Some("prod")));
        let t = parse("v1", "namespaces/prod/status").unwrap();
        assert_eq!(t.kind, Kind::Namespace);
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse("storage.k8s.io/v1", "storageclasses").unwrap();
        assert_eq!(t.kind, Kind::StorageClass);
    }

    #[test]
    fn refusals_name_the_problem() {
        // Deployments are apps/v1, not core.
        assert!(matches!(
            parse("v1", "namespaces/d/deployments"),
            Err(PathError::UnknownResource { .. })
        ));
        // Short names are for kubectl, not for URLs.
        assert!(matches!(
            parse("v1", "po"),
            Err(PathError::UnknownResource { .. })
        ));
        assert_eq!(
            parse("v1", "namespaces/d/nodes/n1"),
            Err(PathError::ClusterScoped { kind: Kind::Node })
        );
        assert_eq!(
            parse("v1", "pods/p"),
            Err(PathError::Namespaced { kind: Kind::Pod })
        );
        assert!(matches!(
            parse("v1", "namespaces/d/pods/p/log/more"),
            Err(PathError::Malformed { .. })
        ));
        assert!(matches!(
            parse("v1", "pods//x"),
            Err(PathError::Malformed { .. })
        ));
    }

    #[test]
    fn every_kind_has_one_path() {
        for k in Kind::ALL {
            assert_eq!(kind_at(k.api_version(), k.plural()), Some(k), "{k}");
        }
        assert_eq!(qualified(Kind::Deployment), "deployments.apps");
        assert_eq!(qualified(Kind::Pod), "pods");
    }
}
