//! The store's modules are layered: no module reaches, directly or through
//! others, back to itself. Reads every module's source and fails with the
//! circle it finds, so a new call that closes one is caught in CI.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// The source without comments and without `use` declarations of other
/// crates (whose paths name their own modules, e.g. `jalon_core::finance`).
fn code(source: &str) -> String {
    let without_tests = source.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::new();
    let mut skipping_use = false;
    for line in without_tests.lines() {
        let line = line.split("//").next().unwrap_or("");
        let trimmed = line.trim_start();
        if !skipping_use
            && (trimmed.starts_with("use ") || trimmed.starts_with("pub use "))
            && !trimmed.contains("use crate")
        {
            skipping_use = !trimmed.contains(';');
            continue;
        }
        if skipping_use {
            skipping_use = !line.contains(';');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether `code` names `module::` as a path of this crate: `crate::module::`
/// or a bare `module::` (not a segment of another path, a field access or
/// part of an identifier).
fn names(code: &str, module: &str) -> bool {
    let needle = format!("{module}::");
    code.match_indices(&needle).any(|(at, _)| {
        let before = &code[..at];
        before.ends_with("crate::")
            || before
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
    })
}

fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("the store's sources") {
        let path = entry.expect("a source entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            if name != "entity" {
                modules(&path, &format!("{prefix}{name}::"), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            let module = if name == "mod" {
                prefix.trim_end_matches("::").to_owned()
            } else {
                format!("{prefix}{name}")
            };
            let text = fs::read_to_string(&path).expect("a source file");
            out.insert(module, code(&text));
        }
    }
}

#[test]
fn the_store_modules_call_each_other_in_no_circle() {
    let mut sources = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut sources,
    );
    assert!(sources.contains_key("change") && sources.contains_key("rows::projects"));
    // A module depends on another when it names it by its last segment
    // (`projects::get`, `crate::rows::projects::get`).
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, code) in &sources {
        for other in sources.keys() {
            let last = other.rsplit("::").next().unwrap_or(other);
            let qualified = other.contains("::") && code.contains(&format!("{other}::"));
            let bare = !other.contains("::") && names(code, last);
            if other != module && (qualified || bare) && !other.starts_with(&format!("{module}::"))
            {
                deps.entry(module).or_default().insert(other);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        deps: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node);
            panic!(
                "the store's modules call each other in a circle: {}",
                circle.join(" -> ")
            );
        }
        path.push(node);
        for next in deps.get(node).into_iter().flatten() {
            visit(next, deps, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for module in sources.keys() {
        visit(module, &deps, &mut Vec::new(), &mut done);
    }
}
