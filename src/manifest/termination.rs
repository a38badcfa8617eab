//! A container's termination message fields.

use super::*;
use crate::resource::types::Container;

/// `terminationMessagePath` is an absolute path, bind-mounted as a file:
/// no `..`, no `:` (Docker's mount syntax), not the root.
pub(super) fn check_termination_message(c: &Container, cp: &str) -> Res {
    let Some(p) = &c.termination_message_path else {
        return Ok(());
    };
    if !p.starts_with('/') || p == "/" || p.contains(':') || p.split('/').any(|s| s == "..") {
        return fail(
            format!("{cp}.terminationMessagePath"),
            format!("{p:?} must be an absolute path to a file, without '..' or ':'"),
        );
    }
    Ok(())
}
