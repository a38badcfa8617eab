//! Which user a container's processes run as.
//!
//! A container runs as the uid (and gid) its spec asks for, else as the
//! node's `agent.process_run_as`. Uid 0 and gid 0 are refused unless the
//! node allows root. A daemon that is not root cannot change users at all:
//! its containers run as the daemon's own user, and a spec asking for
//! another is refused rather than silently run as someone else.

use serde::{Deserialize, Serialize};

/// A uid and a gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Parses `name`, `uid`, `name:gid` or `uid:gid` without looking anything
/// up: the user part, and the gid when given. For config validation.
pub fn parse_user_spec(s: &str) -> Result<(UserPart<'_>, Option<u32>), String> {
    let (user, group) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if user.is_empty() {
        return Err(format!("{s:?}: a user name or uid is needed before ':'"));
    }
    let gid = match group {
        Some(g) => Some(
            g.parse::<u32>()
                .map_err(|_| format!("{s:?}: the group after ':' must be a numeric gid"))?,
        ),
        None => None,
    };
    let user = match user.parse::<u32>() {
        Ok(uid) => UserPart::Uid(uid),
        Err(_)
            if user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
        {
            UserPart::Name(user)
        }
        Err(_) => return Err(format!("{s:?}: {user:?} is neither a uid nor a user name")),
    };
    Ok((user, gid))
}

/// The user half of a `user[:gid]` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserPart<'a> {
    /// A numeric uid.
    Uid(u32),
    /// A name to look up in the host's user database.
    Name(&'a str),
}

/// Resolves `name`, `uid`, `name:gid` or `uid:gid` on this host. Without a
/// gid, the user's primary group from the user database; a uid the
/// database does not know gets the gid of the same number.
pub fn resolve_user(s: &str) -> Result<Identity, String> {
    let (user, gid) = parse_user_spec(s)?;
    let (uid, primary) = match user {
        UserPart::Uid(uid) => (uid, primary_gid(uid)),
        UserPart::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
            Ok(None) => return Err(format!("{s:?}: no user {name:?} on this host")),
            Err(e) => return Err(format!("{s:?}: cannot look up user {name:?}: {e}")),
        },
    };
    Ok(Identity {
        uid,
        gid: gid.unwrap_or(primary),
    })
}

/// The primary group of `uid` in the host's user database, else `uid` itself.
pub(super) fn primary_gid(uid: u32) -> u32 {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.gid.as_raw(),
        _ => uid,
    }
}

/// What a node lets its process containers run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UserPolicy {
    /// For a spec that names no user.
    pub default: Identity,
    /// May a container run as uid 0 or gid 0.
    pub allow_root: bool,
    /// The daemon's own user when it is not root (it cannot switch users then).
    pub unprivileged: Option<Identity>,
}

/// The spec's user fields, as the runtime gets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Wanted {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub non_root: bool,
}

impl UserPolicy {
    /// Who a container runs as, or why it may not run. `primary` gives the
    /// primary gid of a uid asked for without a group.
    pub fn decide(&self, w: Wanted, primary: impl Fn(u32) -> u32) -> Result<Identity, String> {
        let asked = match (w.uid, w.gid) {
            (Some(uid), gid) => Identity {
                uid,
                gid: gid.unwrap_or_else(|| primary(uid)),
            },
            (None, Some(gid)) => Identity {
                gid,
                ..self.default
            },
            (None, None) => self.default,
        };
        let id = match self.unprivileged {
            None => asked,
            Some(own) => {
                if w.uid.is_some_and(|u| u != own.uid) || w.gid.is_some_and(|g| g != own.gid) {
                    return Err(format!(
                        "cannot run as uid {} gid {}: this node's process runtime is not root \
                         and runs every container as its own uid {} gid {}",
                        asked.uid, asked.gid, own.uid, own.gid
                    ));
                }
                own
            }
        };
        if w.non_root && id.uid == 0 {
            return Err("container has runAsNonRoot and would run as root (uid 0)".into());
        }
        if !self.allow_root && self.unprivileged.is_none() && (id.uid == 0 || id.gid == 0) {
            return Err(format!(
                "running as uid {} gid {} (root) is not allowed on this node \
                 (agent.process_allow_root is false); set runAsUser and runAsGroup to other ids",
                id.uid, id.gid
            ));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: Identity = Identity {
        uid: 65534,
        gid: 65534,
    };

    fn policy(allow_root: bool) -> UserPolicy {
        UserPolicy {
            default: NOBODY,
            allow_root,
            unprivileged: None,
        }
    }

    fn want(uid: Option<u32>, gid: Option<u32>, non_root: bool) -> Wanted {
        Wanted { uid, gid, non_root }
    }

    #[test]
    fn parses_user_settings() {
        assert_eq!(
            parse_user_spec("nobody"),
            Ok((UserPart::Name("nobody"), None))
        );
        assert_eq!(parse_user_spec("1000"), Ok((UserPart::Uid(1000), None)));
        assert_eq!(
            parse_user_spec("1000:50"),
            Ok((UserPart::Uid(1000), Some(50)))
        );
        assert_eq!(
            parse_user_spec("www-data:33"),
            Ok((UserPart::Name("www-data"), Some(33)))
        );
        for bad in ["", ":5", "1000:", "1000:staff", "a b", "a/b", "x:-1"] {
            assert!(parse_user_spec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn resolves_numeric_users_and_root() {
        assert_eq!(resolve_user("1234:99"), Ok(Identity { uid: 1234, gid: 99 }));
        assert_eq!(resolve_user("0"), Ok(Identity { uid: 0, gid: 0 }));
        assert_eq!(resolve_user("root"), Ok(Identity { uid: 0, gid: 0 }));
        let e = resolve_user("no-such-user-shoal").expect_err("unknown name");
        assert!(e.contains("no user"), "{e}");
    }

    #[test]
    fn decides_who_a_container_runs_as() {
        let p = policy(false);
        let primary = |uid| uid + 1;
        assert_eq!(p.decide(want(None, None, false), primary), Ok(NOBODY));
        assert_eq!(
            p.decide(want(Some(1000), None, true), primary),
            Ok(Identity {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            p.decide(want(Some(1000), Some(7), false), primary),
            Ok(Identity { uid: 1000, gid: 7 })
        );
        assert_eq!(
            p.decide(want(None, Some(7), false), primary),
            Ok(Identity { uid: 65534, gid: 7 })
        );
        for (w, needle) in [
            (want(Some(0), None, false), "not allowed on this node"),
            (want(Some(1000), Some(0), false), "not allowed on this node"),
            (want(Some(0), None, true), "runAsNonRoot"),
        ] {
            let e = p.decide(w, primary).expect_err("refused");
            assert!(e.contains(needle), "{w:?}: {e}");
        }
        let root = policy(true);
        assert_eq!(
            root.decide(want(Some(0), None, false), |_| 0),
            Ok(Identity { uid: 0, gid: 0 })
        );
        let e = root
            .decide(want(Some(0), None, true), |_| 0)
            .expect_err("runAsNonRoot wins over allow_root");
        assert!(e.contains("runAsNonRoot"), "{e}");
        // A root default is refused too unless allowed.
        let root_default = UserPolicy {
            default: Identity { uid: 0, gid: 0 },
            ..policy(false)
        };
        assert!(
            root_default
                .decide(want(None, None, false), primary)
                .is_err()
        );
    }

    #[test]
    fn an_unprivileged_daemon_runs_everything_as_itself() {
        let me = Identity {
            uid: 1000,
            gid: 1000,
        };
        let p = UserPolicy {
            default: NOBODY,
            allow_root: false,
            unprivileged: Some(me),
        };
        assert_eq!(p.decide(want(None, None, true), |u| u), Ok(me));
        assert_eq!(p.decide(want(Some(1000), Some(1000), false), |u| u), Ok(me));
        let e = p
            .decide(want(Some(1001), None, false), |u| u)
            .expect_err("another uid");
        assert!(e.contains("not root"), "{e}");
    }
}
