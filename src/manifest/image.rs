//! Image references as Docker parses them.

/// Docker's reference grammar: `[host[:port]/]path[:tag][@algo:hex]`, with
/// lowercase path components joined by `.`, `_`, `__` or dashes.
pub(super) fn check_image_reference(r: &str) -> Result<(), String> {
    if r.len() > 255 {
        return Err("longer than 255 characters".into());
    }
    let (rest, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d
            .split_once(':')
            .ok_or("the digest must be ALGORITHM:HEX")?;
        let algo_ok = !algo.is_empty()
            && algo
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !algo_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad digest {d:?}"));
        }
    }
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let mut cs = t.chars();
        let first_ok = cs
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || t.len() > 128 || !cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(format!("bad tag {t:?}"));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it looks like one.
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err(format!("bad registry host {first:?}"));
            }
            parts.remove(0);
        }
    }
    for part in parts {
        if !path_component_ok(part) {
            return Err(format!(
                "bad name component {part:?} (lowercase letters and digits, joined by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(p: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = p.as_bytes();
    if b.is_empty() || !alnum(b[0] as char) || !alnum(b[b.len() - 1] as char) {
        return false;
    }
    // Separators: one '.', one or two '_', or any run of '-'.
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if alnum(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i] as char) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// A pod's `imagePullSecrets`: Secret names (a missing Secret is the
/// node's concern when it pulls, as in Kubernetes).
pub(super) fn check_pull_secrets(spec: &crate::resource::types::PodSpec, path: &str) -> super::Res {
    for (i, r) in spec.image_pull_secrets.iter().enumerate() {
        super::check_dns_subdomain(&format!("{path}.imagePullSecrets[{i}].name"), &r.name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_dockers_grammar() {
        for ok in [
            "busybox",
            "busybox:latest",
            "shoal-test/busybox:latest",
            "nginx:1.14.2",
            "registry.k8s.io/goproxy:0.1",
            "docker.io/corelab/gb-frontend:v5",
            "localhost:5000/a/b__c.d-e:tag_1",
            "host",
            "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "!!!",
            "../../etc/passwd",
            "/bin/sh",
            "Busybox",
            "a//b",
            "a:",
            "a:-tag",
            "a..b",
            "a@sha256:xyz",
            "reg.io:99999/a",
        ] {
            assert!(check_image_reference(bad).is_err(), "{bad} accepted");
        }
    }
}
