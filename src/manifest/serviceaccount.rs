//! Checks of a ServiceAccount and of the account fields of a pod spec.

use super::*;
use crate::resource::types::{
    PodSpec, ROLE_ANNOTATION, ServiceAccountBody, account_role, token_secret_name,
};

/// The longest ServiceAccount name: its token Secret, `NAME-token`, must
/// still be a valid Secret name.
const MAX_ACCOUNT_NAME: usize = 253 - "-token".len();

pub(super) fn check_service_account(
    b: &ServiceAccountBody,
    meta: &ObjectMeta,
    ck: &mut Checker,
) -> Res {
    if meta.name.len() > MAX_ACCOUNT_NAME {
        return fail(
            "metadata.name",
            format!(
                "longer than {MAX_ACCOUNT_NAME} characters: its token Secret {:?} would not be \
                 a valid name",
                token_secret_name(&meta.name)
            ),
        );
    }
    if let Err(e) = account_role(meta.annotations.get(ROLE_ANNOTATION).map(String::as_str)) {
        return fail(format!("metadata.annotations.{ROLE_ANNOTATION}"), e);
    }
    for (field, refs) in [
        ("imagePullSecrets", &b.image_pull_secrets),
        ("secrets", &b.secrets),
    ] {
        for (i, r) in refs.iter().enumerate() {
            check_dns_subdomain(&format!("{field}[{i}].name"), &r.name)?;
        }
        if !refs.is_empty() {
            ck.warn(
                field,
                "stored but not acted on: shoal mounts the token Secret its controller makes \
                 and pulls images without registry credentials",
            );
        }
    }
    Ok(())
}

/// `serviceAccountName` and its deprecated alias `serviceAccount`.
pub(super) fn check_pod_account(spec: &PodSpec, path: &str) -> Res {
    for (field, v) in [
        ("serviceAccountName", &spec.service_account_name),
        ("serviceAccount", &spec.service_account),
    ] {
        if let Some(n) = v {
            check_dns_subdomain(&format!("{path}.{field}"), n)?;
        }
    }
    if let (Some(a), Some(b)) = (&spec.service_account_name, &spec.service_account)
        && a != b
    {
        return fail(
            format!("{path}.serviceAccount"),
            format!(
                "{b:?} differs from serviceAccountName {a:?}: serviceAccount is its deprecated \
                 alias; give one, or both the same"
            ),
        );
    }
    Ok(())
}
