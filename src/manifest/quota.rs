//! Checks of a ResourceQuota: the resources shoal enforces, with
//! quantities that parse.

use super::*;
use crate::resource::extended::{is_extended, parse_count};
use crate::resource::types::{
    QUOTA_RESOURCES, ResourceQuotaBody, is_quota_resource, parse_memory_bytes,
};

pub(super) fn check(body: Map<String, Value>) -> Res<Map<String, Value>> {
    let b: ResourceQuotaBody = decode(body)?;
    if !b.spec.scopes.is_empty() || b.spec.scope_selector.is_some() {
        let field = if b.spec.scopes.is_empty() {
            "scopeSelector"
        } else {
            "scopes"
        };
        return fail(
            format!("spec.{field}"),
            "quota scopes are not supported by shoal: a quota covers every pod of its namespace",
        );
    }
    for (k, q) in &b.spec.hard {
        let path = join("spec.hard", k);
        if !is_quota_resource(k) {
            return fail(
                path,
                format!(
                    "shoal enforces quotas on {} and requests.<extended resource> only",
                    QUOTA_RESOURCES.join(", ")
                ),
            );
        }
        let parsed = if k.ends_with("cpu") {
            q.cpu_millis().map(|_| ()).map_err(|e| e.to_string())
        } else if k.ends_with("memory") || k.ends_with("ephemeral-storage") {
            parse_memory_bytes(q.as_str())
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if let Some(name) = k.strip_prefix("requests.").filter(|n| is_extended(n)) {
            parse_count(q.as_str())
                .map(|_| ())
                .map_err(|e| format!("{name}: {e}"))
        } else {
            q.as_str()
                .parse::<u64>()
                .map(|_| ())
                .map_err(|_| format!("{:?} is not a whole number of pods", q.as_str()))
        };
        if let Err(e) = parsed {
            return fail(path, e);
        }
    }
    encode(&b)
}
