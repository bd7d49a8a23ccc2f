//! dj's layers, checked from its source: every `crate::` path in `dj/src` (imports and paths
//! written out in code alike) must name a module of the same layer or one below, as the table
//! "Layers" in the crate docs (`dj/src/lib.rs`) states; and no two files may import each
//! other, directly or around a circle. A folder module and its children are read as one
//! unit: a parent's use of its own children (`mod x;`, `pub use x::..`, `x::f()`) is not an
//! import, and a child naming its parent (`super::Shared`) is within the unit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dj/src")
}

/// Every `.rs` file under `dir`, as paths relative to `dj/src`.
fn files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_owned();
        if path.is_dir() {
            files(&path, &rel.join(&name), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(rel.join(name));
        }
    }
}

/// The module path of a file: `store/postgres/mod.rs` is `store::postgres`; `private.rs` is
/// mounted as `__private`.
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["private"] {
        parts = vec!["__private".to_owned()];
    }
    parts
}

/// The layers table of the crate docs: module name -> layer number.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with("## ") {
            in_table = doc == "## Layers";
            continue;
        }
        if !in_table
            || !doc.starts_with('|')
            || doc.starts_with("|--")
            || doc.starts_with("| layer")
        {
            continue;
        }
        let cells: Vec<&str> = doc.split('|').map(str::trim).collect();
        let layer: usize = cells[1]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a layer row starts with its number: {doc}"));
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(
                out.insert(module.to_owned(), layer).is_none(),
                "`{module}` is in two layers"
            );
        }
    }
    out
}

/// Names the crate root re-exports (`pub use module::{A, B}`) -> the module they come from.
fn root_names(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text: String = lib
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in text.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.rsplit_once("\npub use ").map(|(_, r)| r))
        else {
            continue;
        };
        let (module, names) = match rest.split_once("::{") {
            Some((module, names)) => (module, names.trim_end_matches('}').to_owned()),
            None => match rest.rsplit_once("::") {
                Some((module, name)) => (module, name.to_owned()),
                None => continue,
            },
        };
        let module = module.split("::").next().unwrap().to_owned();
        for name in names.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.clone());
            }
        }
    }
    out
}

/// The `crate::...` and `super::...` paths in code (comments left out), each as its segments.
fn paths_in(source: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for start in ["crate::", "super::"] {
            let mut rest = code;
            while let Some(at) = rest.find(start) {
                let before = rest[..at].chars().next_back();
                let path_text = &rest[at..];
                rest = &rest[at + start.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    continue; // `$crate::` (macro output) or a longer identifier
                }
                let segments: Vec<String> = path_text
                    .split("::")
                    .map(|s| {
                        s.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|s| !s.is_empty())
                    .collect();
                // `use crate::x::{a, b::c}`: each name in the braces is a path too.
                let braces = path_text.find("::{").filter(|&b| {
                    path_text[..b]
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if let Some(b) = braces {
                    let inner = path_text[b + 3..].split('}').next().unwrap_or("");
                    for item in inner.split(',') {
                        let item: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !item.is_empty() && item != "self" {
                            let mut path = segments.clone();
                            path.push(item);
                            out.push((n + 1, path));
                        }
                    }
                }
                out.push((n + 1, segments));
            }
        }
    }
    out
}

/// The module a path refers to, as a module path (the longest prefix that is a module file).
fn target(
    from: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
    root: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        _ => {
            // `super::` from `a::b` (a file `a/b.rs` or `a/b/mod.rs`) is `a`.
            let mut base = from.to_vec();
            for segment in path.iter().take_while(|s| *s == "super") {
                let _ = segment;
                base.pop();
            }
            base
        }
    };
    absolute.extend(
        path.iter()
            .skip_while(|s| *s == "crate" || *s == "super")
            .cloned(),
    );
    if absolute.is_empty() {
        return None;
    }
    if !modules.contains(&absolute[..1].to_vec()) {
        // A name the crate root defines or re-exports.
        return match root.get(&absolute[0]) {
            Some(module) => Some(vec![module.clone()]),
            None => Some(vec!["lib".to_owned()]),
        };
    }
    (1..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

#[test]
fn every_module_imports_only_from_its_layer_and_below_with_no_circle() {
    let src = src();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layer_of = layers(&lib);
    assert!(
        layer_of.len() > 5,
        "the crate docs have a `## Layers` table"
    );
    let root = root_names(&lib);
    let mut all = Vec::new();
    files(&src, Path::new(""), &mut all);
    let modules: BTreeSet<Vec<String>> = all.iter().map(|f| module_of(f)).collect();

    let mut wrong = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &all {
        let from = module_of(file);
        if from == ["lib"] {
            continue; // the root re-exports every layer
        }
        let Some(&own) = layer_of.get(&from[0]) else {
            wrong.push(format!(
                "{}: module `{}` is in no layer of the table",
                file.display(),
                from[0]
            ));
            continue;
        };
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        for (line, path) in paths_in(&text) {
            let Some(to) = target(&from, &path, &modules, &root) else {
                continue;
            };
            if to == ["lib"] {
                continue; // a constant of the root (MAX_HANDLER_BYTES, ...): below every layer
            }
            if to != from && !from.starts_with(&to) {
                edges.entry(from.clone()).or_default().insert(to.clone());
            }
            match layer_of.get(&to[0]) {
                Some(&layer) if layer <= own => {}
                Some(&layer) => wrong.push(format!(
                    "{}:{line}: `{}` (layer {own}) uses `{}` (layer {layer}), which is above it",
                    file.display(),
                    from.join("::"),
                    path.join("::")
                )),
                None => wrong.push(format!(
                    "{}:{line}: `{}` is in no layer of the table",
                    file.display(),
                    to.join("::")
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "files that import each other, around a circle: {circles:?}"
    );
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a [String], (usize, usize)>,
        stack: Vec<&'a [String]>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a [String]) {
            self.index.insert(v, (self.next, self.next));
            self.next += 1;
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w: &'a [String] = w;
                match self.index.get(w) {
                    None => {
                        self.visit(w);
                        let low_w = self.index[w].1;
                        let entry = self.index.get_mut(v).unwrap();
                        entry.1 = entry.1.min(low_w);
                    }
                    Some(&(index_w, _)) if self.stack.contains(&w) => {
                        let entry = self.index.get_mut(v).unwrap();
                        entry.1 = entry.1.min(index_w);
                    }
                    Some(_) => {}
                }
            }
            let (index, low) = self.index[v];
            if index == low {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.join("::"));
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_slice()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn the_checker_sees_a_wrong_import_and_a_circle() {
    let lib = "//! ## Layers\n//! | layer | modules |\n//! |---|---|\n//! | 0 low | `a` |\n//! | 1 high | `b` |\n";
    let layer_of = layers(lib);
    assert_eq!(layer_of["a"], 0);
    let paths = paths_in("use crate::b::{X, y::Z};\nlet n = crate::b::f(); // crate::a::ignored\n");
    let named: Vec<String> = paths.iter().map(|(_, p)| p.join("::")).collect();
    assert_eq!(
        named,
        ["crate::b::X", "crate::b::y", "crate::b", "crate::b::f"]
    );
    let a = vec!["a".to_owned()];
    let b = vec!["b".to_owned()];
    let edges = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(circles(&edges), [vec!["a".to_owned(), "b".to_owned()]]);
}
