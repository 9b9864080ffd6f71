//! The plan's `alertRules`: Azure Monitor alert rules whose `Fired` alert fails the wave that
//! is deploying or soaking (the rule itself is in `engine/alerts.rs`).

/// Most alert rules one plan names.
pub const MAX_ALERT_RULES: usize = 50;
/// Longest alert rule name accepted (Azure's resource names are shorter).
pub const MAX_ALERT_RULE_CHARS: usize = 260;

/// Adds a problem for every alert rule name that is blank or too long, and for too many.
pub(crate) fn check_alert_rules(rules: &[String], problems: &mut Vec<String>) {
    if rules.len() > MAX_ALERT_RULES {
        problems.push(format!(
            "alertRules names {} rules; at most {MAX_ALERT_RULES} are allowed",
            rules.len()
        ));
    }
    for (index, rule) in rules.iter().enumerate() {
        if rule.trim().is_empty() {
            problems.push(format!("alertRules[{index}] must not be empty"));
        } else if rule.chars().count() > MAX_ALERT_RULE_CHARS {
            problems.push(format!(
                "alertRules[{index}] is longer than {MAX_ALERT_RULE_CHARS} characters"
            ));
        }
    }
}

/// Whether a plan's rule name and an alert's rule are the same rule (Azure resource names
/// are case-insensitive; surrounding blanks are not part of a name).
pub(crate) fn same_rule(named: &str, alert_rule: &str) -> bool {
    named.trim().eq_ignore_ascii_case(alert_rule.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_long_and_too_many_rules_are_named() {
        let mut problems = Vec::new();
        check_alert_rules(&["ok".into(), " ".into(), "x".repeat(261)], &mut problems);
        assert_eq!(
            problems,
            [
                "alertRules[1] must not be empty",
                "alertRules[2] is longer than 260 characters"
            ]
        );
        let mut problems = Vec::new();
        let many: Vec<String> = (0..51).map(|i| format!("rule-{i}")).collect();
        check_alert_rules(&many, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let mut problems = Vec::new();
        check_alert_rules(&many[..50], &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(same_rule(
            "Hub-Connected-Devices-Low",
            " hub-connected-devices-low"
        ));
    }
}
