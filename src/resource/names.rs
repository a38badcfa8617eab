//! The DNS name rules Kubernetes names follow, shared by the manifest
//! checks and the custom resource definitions.

/// Whether `s` is a DNS-1123 label: at most 63 lowercase letters, digits
/// and '-', starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1035 label: a DNS-1123 label starting with a letter.
pub fn is_dns_1035_label(s: &str) -> bool {
    is_dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Whether `s` is a DNS-1123 subdomain (the rule for most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}
