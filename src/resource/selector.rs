//! kubectl's string form of a label selector (`-l app=web,tier!=db`), as
//! the CLI takes it and the API's `labelSelector` query parameter carries it.

use super::types::{LabelSelector, LabelSelectorRequirement, SelectorOperator};

/// Why a selector string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("selector {input:?}: {why}")]
pub struct SelectorError {
    /// The whole selector as given.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses an equality-based selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// joined by commas (all must hold).
pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
    let err = |why: String| SelectorError {
        input: s.to_string(),
        why,
    };
    let mut sel = LabelSelector::default();
    for term in s.split(',').map(str::trim) {
        if term.is_empty() {
            return Err(err("an empty term".into()));
        }
        if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
            return Err(err(
                "set-based terms (in, notin) are not supported; use k=v, k!=v, k or !k".into(),
            ));
        }
        let key = |k: &str| {
            let k = k.trim();
            if k.is_empty() || k.contains(|c: char| c.is_whitespace() || c == '=' || c == '!') {
                return Err(err(format!("{k:?} is not a label key")));
            }
            Ok(k.to_string())
        };
        if let Some((k, v)) = term.split_once("!=") {
            sel.match_expressions.push(LabelSelectorRequirement {
                key: key(k)?,
                operator: SelectorOperator::NotIn,
                values: vec![v.trim().to_string()],
            });
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            let v = v.trim();
            if v.contains('=') {
                return Err(err(format!("{term:?} has more than one '='")));
            }
            sel.match_labels.insert(key(k)?, v.to_string());
        } else if let Some(k) = term.strip_prefix('!') {
            sel.match_expressions.push(LabelSelectorRequirement {
                key: key(k)?,
                operator: SelectorOperator::DoesNotExist,
                values: Vec::new(),
            });
        } else {
            sel.match_expressions.push(LabelSelectorRequirement {
                key: key(term)?,
                operator: SelectorOperator::Exists,
                values: Vec::new(),
            });
        }
    }
    Ok(sel)
}
