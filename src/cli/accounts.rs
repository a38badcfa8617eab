//! ServiceAccounts in the CLI.

use serde_json::Value;

use crate::columns::cells::s;

/// `describe`'s lines for a ServiceAccount, as kubectl's: its token Secret
/// (the controller's, named after it), image pull secrets and automount.
pub(super) fn describe_lines(obj: &Value) -> String {
    let names = |field: &str| {
        let v: Vec<&str> = s(obj, &[field])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("name").and_then(Value::as_str))
            .collect();
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.join(", ")
        }
    };
    let name = s(obj, &["metadata", "name"]).as_str().unwrap_or_default();
    let automount = match s(obj, &["automountServiceAccountToken"]).as_bool() {
        Some(false) => "false",
        _ => "true",
    };
    format!(
        "Image pull secrets:  {}\nMountable secrets:   {}\nTokens:              {}\nAutomount token:     {automount}\n",
        names("imagePullSecrets"),
        names("secrets"),
        crate::resource::types::token_secret_name(name),
    )
}
