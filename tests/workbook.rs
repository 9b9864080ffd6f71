//! The Azure Monitor workbook (infra/modules/workbook.bicep, content in
//! infra/workbooks/patchwave.workbook.json): a shared workbook of the Application Insights
//! resource, valid Notebook/1.0 JSON whose KQL covers the six views the README promises, and
//! reads only log lines and fields the handler really writes.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const WORKBOOK: &str = "infra/workbooks/patchwave.workbook.json";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn workbook() -> Value {
    serde_json::from_str(&read(WORKBOOK)).unwrap_or_else(|e| panic!("{WORKBOOK}: {e}"))
}

/// `(name, query)` of every KQL item.
fn queries(workbook: &Value) -> Vec<(String, String)> {
    workbook["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| item["type"] == 3)
        .map(|item| {
            (
                item["name"].as_str().unwrap_or_default().to_string(),
                item["content"]["query"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The views the README promises, each with what its query must read.
const VIEWS: &[(&str, &[&str])] = &[
    (
        "rollouts by state",
        &["line.fields.state", "arg_max(timestamp, state)"],
    ),
    (
        "decisions over time",
        &["line.fields.event_type", "bin(timestamp"],
    ),
    (
        "rollbacks with their reasons",
        &["\"patchwave.rollback.\"", "reason"],
    ),
    (
        "dead letters",
        &["\"dead letter kept\"", "line.fields.reason"],
    ),
    ("failing invocations", &["requests", "success == false"]),
    (
        "patch runs",
        &["\"maintenance event\"", "\"patchwave.infrastructure.\""],
    ),
];

/// Which promised views no query covers.
fn missing_views(workbook: &Value) -> Vec<&'static str> {
    let queries = queries(workbook);
    VIEWS
        .iter()
        .filter(|(_, needs)| {
            !queries
                .iter()
                .any(|(_, query)| needs.iter().all(|need| query.contains(need)))
        })
        .map(|(view, _)| *view)
        .collect()
}

#[test]
fn the_workbook_is_notebook_json_whose_queries_cover_the_six_views() {
    let workbook = workbook();
    assert_eq!(workbook["version"], "Notebook/1.0");
    let queries = queries(&workbook);
    assert!(queries.len() >= 6, "{} queries", queries.len());
    let names: BTreeSet<&str> = queries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), queries.len(), "item names are unique");
    for item in workbook["items"].as_array().expect("items") {
        if item["type"] != 3 {
            continue;
        }
        let content = &item["content"];
        assert_eq!(content["version"], "KqlItem/1.0", "{item}");
        assert_eq!(content["queryType"], 0, "logs query: {item}");
        assert_eq!(
            content["resourceType"], "microsoft.insights/components",
            "{item}"
        );
        assert!(content["title"].is_string(), "{item}");
    }
    assert_eq!(missing_views(&workbook), Vec::<&str>::new());

    // and the check sees what it is for: a workbook without its dead-letter view fails it
    let mut without = workbook.clone();
    without["items"]
        .as_array_mut()
        .expect("items")
        .retain(|item| item["name"] != "dead-letters");
    assert_eq!(missing_views(&without), vec!["dead letters"]);
}

#[test]
fn the_queries_read_lines_and_fields_the_handler_writes() {
    let sources: String = [
        "handlers/service/mod.rs",
        "handlers/triggers/patch_events.rs",
        "handlers/telemetry.rs",
    ]
    .iter()
    .map(|file| read(file))
    .collect();
    let logged = |field: &str| {
        sources.lines().any(|line| {
            line.contains("tracing::")
                && [
                    format!("{field} ="),
                    format!("({field},"),
                    format!(" {field},"),
                ]
                .iter()
                .any(|pattern| line.contains(pattern.as_str()))
        })
    };
    for message in ["\"dead letter kept\"", "\"maintenance event\""] {
        assert!(sources.contains(message), "no line logs {message}");
    }
    let kinds = read("rollout-core/src/decision_kind.rs");
    for (name, query) in queries(&workbook()) {
        if query.starts_with("traces") {
            assert!(
                query.contains("customDimensions.Category == \"Host.Function.Console\""),
                "{name}: the handler's lines are the host's console traces"
            );
        }
        for (at, _) in query.match_indices("line.fields.") {
            let field: String = query[at + "line.fields.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                field == "message" || logged(&field),
                "{name} reads line.fields.{field}, which no log line writes"
            );
        }
        for prefix in ["patchwave.rollback.", "patchwave.infrastructure."] {
            if query.contains(prefix) {
                let kind = prefix.trim_start_matches("patchwave.");
                assert!(kinds.contains(&format!("=> \"{kind}")), "{name}: {prefix}");
            }
        }
        let balanced = |open: char, close: char| {
            query.chars().filter(|c| *c == open).count()
                == query.chars().filter(|c| *c == close).count()
        };
        assert!(balanced('(', ')') && balanced('{', '}'), "{name}: {query}");
        assert_eq!(query.matches('"').count() % 2, 0, "{name}: {query}");
    }
}

#[test]
fn the_module_deploys_it_as_a_shared_workbook_of_application_insights_from_main() {
    let module = read("infra/modules/workbook.bicep");
    for needed in [
        "resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {",
        "kind: 'shared'",
        "category: 'workbook'",
        "sourceId: appInsightsId",
        "version: 'Notebook/1.0'",
        "loadJsonContent('../workbooks/patchwave.workbook.json')",
        "fallbackResourceIds: [",
        "name: guid(resourceGroup().id, namePrefix,",
    ] {
        assert!(module.contains(needed), "workbook.bicep: {needed}");
    }
    let main = read("infra/main.bicep");
    for needed in [
        "module workbook 'modules/workbook.bicep' = {",
        "    appInsightsId: monitoring.outputs.appInsightsId\n",
        "output workbookId string = workbook.outputs.id",
        "output workbookPortalUrl string = '${environment().portal}/#@/resource${workbook.outputs.id}'",
    ] {
        assert!(main.contains(needed), "main.bicep: {needed}");
    }
    let readme = read("README.md");
    assert!(
        readme.contains("Workbooks") && readme.contains("workbookPortalUrl"),
        "README says where to find the workbook"
    );
}
