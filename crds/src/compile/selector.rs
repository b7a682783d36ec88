//! Label selectors over LlmAccounts, with the Kubernetes semantics.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfies `selector`. An invalid operator is reported by
/// `validate` and matches nothing here.
pub(crate) fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// Problems with a selector, as (field suffix, message).
pub(crate) fn validate(selector: &LabelSelector) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("matchExpressions[{i}]");
        let has_values = e.values.as_ref().is_some_and(|v| !v.is_empty());
        match e.operator.as_str() {
            "In" | "NotIn" if !has_values => problems.push((
                format!("{field}.values"),
                format!("operator {} needs at least one value", e.operator),
            )),
            "Exists" | "DoesNotExist" if has_values => problems.push((
                format!("{field}.values"),
                format!("operator {} takes no values", e.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => problems.push((
                format!("{field}.operator"),
                format!("unknown operator `{other}`; use In, NotIn, Exists or DoesNotExist"),
            )),
        }
    }
    if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
    {
        problems.push((
            String::new(),
            "an empty selector would select every account; name the accounts or add matchLabels"
                .to_owned(),
        ));
    }
    problems
}
