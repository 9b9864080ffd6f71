//! Every file in `tests/fixtures/` is read by a test and has its source in that folder's
//! README. A fixture no test names, or one added without a source, fails this test.

use crate::support::fixtures_dir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every file under `dir`, recursively, in a stable order.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_fixture_is_read_by_a_test_and_has_a_source() {
    let fixtures = fixtures_dir();
    let tests = fixtures.parent().expect("tests/");
    let sources: Vec<String> = files_under(tests)
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| read(path))
        .collect();
    let readme = read(&fixtures.join("README.md"));
    let (mut names, mut duplicates, mut unused, mut unsourced) =
        (BTreeSet::new(), Vec::new(), Vec::new(), Vec::new());
    for path in files_under(&fixtures) {
        let relative = path
            .strip_prefix(&fixtures)
            .expect("under fixtures")
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if relative == "README.md" {
            continue;
        }
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        // Tests name a fixture by its path under tests/fixtures, by its file name (the helpers
        // that read `azure/`), or with a prefix such as `fixtures/`: file names must be unique.
        if !names.insert(name.clone()) {
            duplicates.push(relative.clone());
        }
        let named = [
            format!("\"{relative}\""),
            format!("\"{name}\""),
            format!("/{name}\""),
        ];
        if !sources
            .iter()
            .any(|source| named.iter().any(|quoted| source.contains(quoted.as_str())))
        {
            unused.push(relative.clone());
        }
        if !readme.contains(relative.as_str()) {
            unsourced.push(relative);
        }
    }
    assert!(
        duplicates.is_empty(),
        "fixture file names used twice: {duplicates:?}"
    );
    assert!(unused.is_empty(), "fixtures no test reads: {unused:?}");
    assert!(
        unsourced.is_empty(),
        "fixtures without a source in tests/fixtures/README.md: {unsourced:?}"
    );
}

#[test]
fn documented_response_examples_match_our_response_shape() {
    for example in [
        "functions-host/eventgrid-response.json",
        "functions-host/eventhub-response.json",
        "functions-host/timer-response.json",
        "functions-host/http-nonforwarded-response.json",
    ] {
        let documented = crate::support::reference(example);
        let ours = serde_json::to_value(patchwave::host::InvokeResponse::new(
            serde_json::Value::Null,
            vec!["x".into()],
        ))
        .expect("serialize");
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .expect("object")
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&ours), keys(&documented), "{example}");
    }
}
