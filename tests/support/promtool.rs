//! Reading blocks the way Prometheus does, with its own promtool: finding
//! promtool, running `promtool tsdb dump` over a block, and parsing what it
//! prints, for tests that compare skein's reader with it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use skein::model::Labels;

/// Label pairs, sorted by name: ordered like Prometheus orders label sets.
pub type Key = Vec<(String, String)>;
/// Timestamps and value bits, NaNs folded into one.
pub type Samples = Vec<(i64, u64)>;
pub type Dump = BTreeMap<Key, Samples>;

pub fn norm(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

pub fn key(labels: &Labels) -> Key {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

pub fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("SKEIN_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!("promtool is not on PATH but SKEIN_REQUIRE_PROMETHEUS=1");
        }
        eprintln!("skipping: promtool is not on PATH");
    }
    found
}

/// Parses a Go-quoted string at the start of `s`; returns it and the rest.
pub fn unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.strip_prefix('"').expect("quoted value").char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 2..]),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                other => panic!("escape {other:?} not handled in {s}"),
            },
            c => out.push(c),
        }
    }
    panic!("unterminated string in {s}");
}

/// Parses `promtool tsdb dump` output: `{a="b", c="d"} value timestamp`.
pub fn parse_dump(text: &str) -> Dump {
    let mut out = Dump::new();
    let mut last: Option<(String, Key)> = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let close = line.rfind("} ").expect("labels end");
        let (labels_text, rest) = line.split_at(close + 1);
        let key = match &last {
            Some((text, key)) if text == labels_text => key.clone(),
            _ => {
                let mut key = Key::new();
                let mut s = &labels_text[1..];
                while !s.starts_with('}') {
                    let eq = s.find('=').expect("label =");
                    let name = s[..eq].to_string();
                    let (value, rest) = unquote(&s[eq + 1..]);
                    key.push((name, value));
                    s = rest.strip_prefix(", ").unwrap_or(rest);
                }
                key.sort();
                last = Some((labels_text.to_string(), key.clone()));
                key
            }
        };
        let mut parts = rest.split_whitespace();
        let v: f64 = parts.next().unwrap().parse().expect("value");
        let t: i64 = parts.next().unwrap().parse().expect("timestamp");
        out.entry(key).or_default().push((t, norm(v)));
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs `promtool tsdb dump` over a copy of one block (promtool wants a
/// database directory, and writes into it).
pub fn promtool_dump(promtool: &Path, block: &Path) -> String {
    try_promtool_dump(promtool, block).unwrap_or_else(|e| panic!("promtool dump: {e}"))
}

/// `promtool tsdb dump` over a copy of one block, or what promtool said
/// when it failed.
pub fn try_promtool_dump(promtool: &Path, block: &Path) -> Result<String, String> {
    let db = tempfile::tempdir().unwrap();
    copy_dir(block, &db.path().join(block.file_name().unwrap()));
    std::fs::create_dir_all(db.path().join("wal")).unwrap();
    let out = Command::new(promtool)
        .args(["tsdb", "dump"])
        .arg(db.path())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}
