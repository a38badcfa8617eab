//! `shoal attach`: a session like exec's, but to the container's main
//! process rather than a new one; it travels to the pod's node the same
//! way, and the same reads, writes, resizes and close drive it.

use std::sync::Arc;

use super::super::sessions::{Located, locate};
use super::{ExecConn, ExecError, ExecService, Request};
use crate::runtime::AttachRequest;

/// A session attached to a container's main process.
pub struct Attached {
    /// The session.
    pub conn: ExecConn,
    /// The container attached to (the pod's only one when none was named).
    pub container: String,
    /// Whether the container has a terminal (its output is then one stream).
    pub tty: bool,
}

impl ExecService {
    /// Attaches to a pod's container, on whichever node runs it. `stdin`
    /// needs a container created with `stdin: true`; the terminal is the
    /// container's own, so `size` only applies to a `tty: true` container.
    pub async fn attach(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> Result<Attached, ExecError> {
        let at = locate(&self.store, namespace, pod, container)?;
        if let Some(why) = refusal(&at, pod, stdin) {
            return Err(ExecError::BadRequest(why));
        }
        let mut conn = self.conn_to(&at.node)?;
        let out = conn
            .ask(Request::Attach {
                pod_uid: at.uid,
                container: at.container.clone(),
                req: AttachRequest {
                    stdin,
                    size: size.filter(|_| at.tty),
                },
            })
            .await?;
        conn.session = out.session;
        Ok(Attached {
            conn,
            container: at.container,
            tty: at.tty,
        })
    }
}

/// Why an attach is refused before the pod's node is asked.
fn refusal(at: &Located, pod: &str, stdin: bool) -> Option<String> {
    (stdin && !at.stdin).then(|| {
        format!(
            "container {} of pod {pod} was not created with stdin: true: there is no stdin to attach to (set spec.containers[{}].stdin, or attach without -i)",
            at.container, at.index
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_needs_a_container_created_with_one() {
        let at = |stdin| Located {
            node: "n1".into(),
            uid: "u".into(),
            container: "main".into(),
            index: 1,
            stdin,
            tty: false,
        };
        assert_eq!(refusal(&at(true), "p", true), None);
        assert_eq!(refusal(&at(false), "p", false), None);
        assert_eq!(refusal(&at(true), "p", false), None);
        let e = refusal(&at(false), "p", true).expect("refused");
        assert!(
            e.contains("container main of pod p was not created with stdin: true")
                && e.contains("spec.containers[1].stdin"),
            "{e}"
        );
    }
}
