//! The module layers of docs/architecture.md, checked: every top-level
//! module of src/ may import (`crate::<module>`) only modules of a lower
//! layer. Code under `#[cfg(test)]` and comments are not counted; `lib.rs`
//! and `main.rs` sit above everything.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers from the bottom up. A module may use the modules of the layers
/// below its own, never its own layer's others or any above.
const LAYERS: &[&[&str]] = &[
    &["error", "model", "shutdown"],
    &["storeapi", "tsdb", "objstore", "security"],
    &["proto"],
    &["store"],
    &["series", "cluster"],
    &["promql"],
    &["query"],
    &["actors"],
    &["api"],
    &["telemetry"],
    &["node"],
    &["storegw"],
    &["querier", "sidecar", "synthetic", "frontend"],
    &["demo", "fuzzing"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The source of a file without its test modules and comments.
fn production_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Top-level module name to the modules its production code names.
fn imports(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap()
            .to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        let mut used: BTreeMap<String, String> = BTreeMap::new();
        for f in files {
            let code = production_code(&std::fs::read_to_string(&f).unwrap());
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !module.is_empty() && module != name {
                    used.entry(module)
                        .or_insert_with(|| f.display().to_string());
                }
            }
        }
        out.insert(name, used);
    }
    out
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = imports(&src);
    let mut broken = Vec::new();
    for (module, used) in &all {
        let Some(mine) = layer_of(module) else {
            broken.push(format!(
                "src/{module} is in no layer: add it to LAYERS and docs/architecture.md"
            ));
            continue;
        };
        for (dep, file) in used {
            match layer_of(dep) {
                Some(theirs) if theirs < mine => {}
                Some(_) => broken.push(format!(
                    "{module} imports {dep} ({file}), which is not in a lower layer"
                )),
                None => broken.push(format!("{module} imports unknown module {dep} ({file})")),
            }
        }
    }
    for layer in LAYERS {
        for m in *layer {
            assert!(all.contains_key(*m), "LAYERS names {m}, which src/ lacks");
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    // The scanner itself: a low module naming a higher one is found, and
    // comments or test code are not counted.
    let text = "use crate::query::Querier;\n// crate::api in a comment\n#[cfg(test)]\nmod t { use crate::cli; }";
    let code = production_code(text);
    assert!(code.contains("crate::query"));
    assert!(!code.contains("crate::api"));
    assert!(!code.contains("crate::cli"));
}
