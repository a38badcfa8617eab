//! Checks of a LimitRange, with Kubernetes' rules.

use super::*;
use crate::resource::types::{LimitRangeBody, Quantity};

pub(super) fn check_limit_range(b: &LimitRangeBody) -> Res {
    for (i, item) in b.spec.limits.iter().enumerate() {
        let ip = format!("spec.limits[{i}]");
        match item.type_.as_str() {
            "Container" | "Pod" => {}
            "PersistentVolumeClaim" => {
                return fail(
                    format!("{ip}.type"),
                    "PersistentVolumeClaim items are not enforced by shoal (claims are sized \
                     by their StorageClass); only Container and Pod",
                );
            }
            other => {
                return fail(
                    format!("{ip}.type"),
                    format!("{other:?}: supported values are \"Container\" and \"Pod\""),
                );
            }
        }
        let fields = [
            ("max", &item.max),
            ("min", &item.min),
            ("default", &item.default),
            ("defaultRequest", &item.default_request),
            ("maxLimitRequestRatio", &item.max_limit_request_ratio),
        ];
        for (field, m) in fields {
            if item.type_ == "Pod" && matches!(field, "default" | "defaultRequest") && !m.is_empty()
            {
                return fail(
                    format!("{ip}.{field}"),
                    "may not be specified when type is Pod (defaults are per container)",
                );
            }
            for (k, q) in m {
                let qp = format!("{ip}.{field}.{k}");
                if !crate::resource::types::LIMIT_RANGE_RESOURCES.contains(&k.as_str()) {
                    return fail(
                        qp,
                        "resource not supported by shoal's LimitRange (only cpu and memory)",
                    );
                }
                parse(&qp, k, q)?;
            }
        }
        let mut item = item.clone();
        item.set_defaults();
        for k in crate::resource::types::LIMIT_RANGE_RESOURCES {
            let get = |m: &std::collections::BTreeMap<String, Quantity>| {
                m.get(k).and_then(|q| parse("", k, q).ok())
            };
            let (min, max) = (get(&item.min), get(&item.max));
            let (def, req) = (get(&item.default), get(&item.default_request));
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                return fail(
                    format!("{ip}.min.{k}"),
                    format!(
                        "min value {} is greater than max value {}",
                        q(&item.min, k),
                        q(&item.max, k)
                    ),
                );
            }
            if let (Some(r), Some(l)) = (req, def)
                && r > l
            {
                return fail(
                    format!("{ip}.defaultRequest.{k}"),
                    format!(
                        "default request value {} is greater than default limit value {}",
                        q(&item.default_request, k),
                        q(&item.default, k)
                    ),
                );
            }
            for (name, v) in [("default", def), ("defaultRequest", req)] {
                if let Some(v) = v
                    && (min.is_some_and(|lo| v < lo) || max.is_some_and(|hi| v > hi))
                {
                    return fail(format!("{ip}.{name}.{k}"), "must lie between min and max");
                }
            }
        }
    }
    Ok(())
}

fn q(m: &std::collections::BTreeMap<String, Quantity>, k: &str) -> String {
    m.get(k).map(|q| q.as_str().to_string()).unwrap_or_default()
}

/// A quantity in base units (millicores or bytes), or its error at `path`.
fn parse(path: &str, resource: &str, q: &Quantity) -> Res<u64> {
    let r = match resource {
        "cpu" => q.cpu_millis(),
        _ => crate::resource::types::parse_memory_bytes(q.as_str()),
    };
    r.or_else(|e| fail(path, format!("{:?}: {e}", q.as_str())))
}
