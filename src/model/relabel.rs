//! Prometheus relabelling (`relabel_config`), as a gateway applies it to
//! each block's external labels plus `__block_id` to pick the blocks it
//! serves (`--selector.relabel-config`): a block whose labels come out
//! empty is not served.
//!
//! Semantics follow Prometheus: regexes are anchored at both ends, the
//! source values are joined with the separator, `hashmod` takes the MD5 of
//! that string and reads its last eight bytes as a big-endian integer.

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

use super::labels::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    target_label: Option<String>,
    regex: Option<String>,
    modulus: Option<u64>,
    replacement: Option<String>,
    #[serde(default)]
    action: Action,
}

impl std::fmt::Display for Action {
    /// The name a config gives it (`hashmod`, `keepequal`, ...).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format!("{self:?}").to_lowercase())
    }
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    modulus: u64,
    replacement: String,
    action: Action,
}

/// Parses a YAML list of relabel rules, checking each as Prometheus does.
pub fn parse_rules(yaml: &str) -> Result<Vec<Rule>, String> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawRule> =
        serde_yaml_ng::from_str(yaml).map_err(|e| format!("invalid relabel config: {e}"))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| Rule::new(r).map_err(|e| format!("relabel rule {}: {e}", i + 1)))
        .collect()
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Rule {
    fn new(r: RawRule) -> Result<Self, String> {
        let regex_src = r.regex.unwrap_or_else(|| "(.*)".into());
        let regex = Regex::new(&format!("^(?s:{regex_src})$"))
            .map_err(|e| format!("invalid regex {regex_src:?}: {e}"))?;
        let target_label = r.target_label.unwrap_or_default();
        let needs_target = matches!(
            r.action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target_label.is_empty() {
            return Err(format!("action {} needs a target_label", r.action));
        }
        if matches!(r.action, Action::HashMod) && r.modulus.unwrap_or(0) == 0 {
            return Err("action hashmod needs a modulus above 0".into());
        }
        if matches!(
            r.action,
            Action::HashMod | Action::Lowercase | Action::Uppercase
        ) && !valid_label_name(&target_label)
        {
            return Err(format!("invalid target_label {target_label:?}"));
        }
        if matches!(
            r.action,
            Action::Keep
                | Action::Drop
                | Action::HashMod
                | Action::KeepEqual
                | Action::DropEqual
                | Action::Lowercase
                | Action::Uppercase
        ) && r.source_labels.is_empty()
        {
            return Err(format!("action {} needs source_labels", r.action));
        }
        Ok(Self {
            source_labels: r.source_labels,
            separator: r.separator.unwrap_or_else(|| ";".into()),
            target_label,
            regex,
            modulus: r.modulus.unwrap_or(0),
            replacement: r.replacement.unwrap_or_else(|| "$1".into()),
            action: r.action,
        })
    }
}

/// The last eight bytes of the MD5 of `s`, big-endian, modulo `m`.
pub fn hashmod(s: &str, m: u64) -> u64 {
    let d = Md5::digest(s.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&d[8..16]);
    u64::from_be_bytes(tail) % m
}

/// Applies `rules` to `labels` (name, value pairs, any order). Returns
/// None when a rule drops the set; a set whose labels all went away is
/// returned empty.
pub fn process(rules: &[Rule], labels: &[(String, String)]) -> Option<Vec<(String, String)>> {
    let mut set: Vec<(String, String)> = labels.to_vec();
    let get = |set: &[(String, String)], n: &str| -> String {
        set.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let put = |set: &mut Vec<(String, String)>, n: &str, v: String| {
        set.retain(|(k, _)| k != n);
        if !v.is_empty() {
            set.push((n.to_string(), v));
        }
    };
    for r in rules {
        let value = r
            .source_labels
            .iter()
            .map(|n| get(&set, n))
            .collect::<Vec<_>>()
            .join(&r.separator);
        match r.action {
            Action::Keep => {
                if !r.regex.is_match(&value) {
                    return None;
                }
            }
            Action::Drop => {
                if r.regex.is_match(&value) {
                    return None;
                }
            }
            Action::KeepEqual => {
                if value != get(&set, &r.target_label) {
                    return None;
                }
            }
            Action::DropEqual => {
                if value == get(&set, &r.target_label) {
                    return None;
                }
            }
            Action::Replace => {
                let Some(caps) = r.regex.captures(&value) else {
                    continue;
                };
                let mut target = String::new();
                caps.expand(&r.target_label, &mut target);
                if !valid_label_name(&target) {
                    continue;
                }
                let mut v = String::new();
                caps.expand(&r.replacement, &mut v);
                put(&mut set, &target, v);
            }
            Action::Lowercase => put(&mut set, &r.target_label, value.to_lowercase()),
            Action::Uppercase => put(&mut set, &r.target_label, value.to_uppercase()),
            Action::HashMod => {
                let m = hashmod(&value, r.modulus);
                put(&mut set, &r.target_label, m.to_string());
            }
            Action::LabelMap => {
                let mut added = Vec::new();
                for (k, v) in &set {
                    if let Some(caps) = r.regex.captures(k) {
                        let mut name = String::new();
                        caps.expand(&r.replacement, &mut name);
                        added.push((name, v.clone()));
                    }
                }
                for (k, v) in added {
                    put(&mut set, &k, v);
                }
            }
            Action::LabelDrop => set.retain(|(k, _)| !r.regex.is_match(k)),
            Action::LabelKeep => set.retain(|(k, _)| r.regex.is_match(k)),
        }
    }
    Some(set)
}

/// Whether a block with these external labels and id is selected: kept by
/// the rules with at least one label left (Thanos' rule for
/// `--selector.relabel-config`).
pub fn selects_block(rules: &[Rule], external: &Labels, block_id: &str) -> bool {
    if rules.is_empty() {
        return true;
    }
    let mut set: Vec<(String, String)> = external
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    set.push(("__block_id".into(), block_id.into()));
    process(rules, &set).is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hashmod_reads_the_last_eight_bytes() {
        // md5("") = d41d8cd98f00b204 e9800998ecf8427e
        assert_eq!(hashmod("", 1 << 63), 0xe9800998ecf8427e & ((1 << 63) - 1));
        assert_eq!(hashmod("", 2), 0xe9800998ecf8427e % 2);
    }

    #[test]
    fn shard_by_block_id() {
        let rules = parse_rules(
            "- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: 2\n\
             - action: keep\n  source_labels: [shard]\n  regex: \"0\"\n",
        )
        .unwrap();
        let ext = Labels::from_pairs([("cluster", "eu")]).unwrap();
        let ids = [
            "01M80AZ7FF6VHW816SB2HG88JB",
            "01M80AZ7G2HJRDERX4S00CF6HY",
            "01M80AZ7GJPGNRJVRQSFG42X9R",
            "01M80AZ7H523RFJ3WJQSEBQB8Y",
        ];
        for id in ids {
            assert_eq!(selects_block(&rules, &ext, id), hashmod(id, 2) == 0, "{id}");
        }
    }

    #[test]
    fn replace_keep_drop_and_label_actions() {
        let rules = parse_rules(
            "- source_labels: [a, b]\n  regex: (x);(.*)\n  target_label: c\n  replacement: ${1}-$2\n\
             - action: labeldrop\n  regex: b\n\
             - action: drop\n  source_labels: [c]\n  regex: x-no\n",
        )
        .unwrap();
        let out = process(&rules, &pairs(&[("a", "x"), ("b", "y")])).unwrap();
        assert_eq!(out, pairs(&[("a", "x"), ("c", "x-y")]));
        assert!(process(&rules, &pairs(&[("a", "x"), ("b", "no")])).is_none());
        // Not matching: unchanged (but for the labeldrop).
        let out = process(&rules, &pairs(&[("a", "z"), ("b", "y")])).unwrap();
        assert_eq!(out, pairs(&[("a", "z")]));
    }

    #[test]
    fn bad_configs_are_errors() {
        for bad in [
            "- action: hashmod\n  source_labels: [a]\n  target_label: s\n",
            "- action: keep\n  regex: a\n",
            "- action: bogus\n",
            "- regex: \"(\"\n  source_labels: [a]\n  target_label: b\n",
            "- source_labels: [a]\n",
            "- surce_labels: [a]\n",
            "not a list",
        ] {
            assert!(parse_rules(bad).is_err(), "{bad}");
        }
        assert!(parse_rules("").unwrap().is_empty());
    }
}
