//! Label sets with Prometheus semantics: sorted by name, names unique, empty
//! values mean "absent".

use std::cmp::Ordering;
use std::fmt;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelsError {
    #[error("duplicate label name {0:?}")]
    DuplicateName(String),
    #[error("empty label name")]
    EmptyName,
}

/// A label set sorted by name with unique names and no empty values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    pub const fn empty() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set from labels in any order. Labels with an empty value
    /// are dropped, as Prometheus treats them as absent.
    pub fn new(mut labels: Vec<Label>) -> Result<Self, LabelsError> {
        labels.retain(|l| !l.value.is_empty());
        if !labels.windows(2).all(|w| w[0].name < w[1].name) {
            labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        }
        for pair in labels.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(LabelsError::DuplicateName(pair[0].name.clone()));
            }
        }
        if labels.first().is_some_and(|l| l.name.is_empty()) {
            return Err(LabelsError::EmptyName);
        }
        Ok(Self(labels))
    }

    /// Builds a label set from `(name, value)` pairs.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, LabelsError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        Self::new(pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The value of `name`, or "" when the label is absent.
    pub fn value_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Adds `other`'s labels; where both have a name, `other` wins. Used to put
    /// a store's external labels on its series.
    pub fn merged_with(&self, other: &Labels) -> Labels {
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.name.cmp(&y.name) {
                    Ordering::Less => out.push(a.next().cloned()),
                    Ordering::Greater => out.push(b.next().cloned()),
                    Ordering::Equal => {
                        a.next();
                        out.push(b.next().cloned());
                    }
                },
                (Some(_), None) => out.push(a.next().cloned()),
                (None, Some(_)) => out.push(b.next().cloned()),
                (None, None) => break,
            }
        }
        Labels(out.into_iter().flatten().collect())
    }

    /// A copy without the named labels (e.g. replica labels).
    pub fn without(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }
}

impl Labels {
    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// A copy with only the named labels.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// A copy with `name` set to `value`, or removed when `value` is empty.
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut out = self.0.clone();
        match out.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                out.remove(i);
            }
            Ok(i) => out[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => out.insert(i, Label::new(name, value)),
        }
        Labels(out)
    }
}

impl Ord for Labels {
    /// Prometheus order: label by label, name first, then value; a shorter set
    /// that is a prefix of a longer one sorts first.
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            match a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value)) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_rejects_duplicates() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1")]).unwrap();
        assert_eq!(l.as_slice()[0].name, "a");
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("a", "2")]),
            Err(LabelsError::DuplicateName("a".into()))
        );
        assert_eq!(Labels::from_pairs([("", "x")]), Err(LabelsError::EmptyName));
    }

    #[test]
    fn empty_values_are_absent() {
        let l = Labels::from_pairs([("a", ""), ("b", "1")]).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l.value_or_empty("a"), "");
    }

    #[test]
    fn ordering_is_prometheus_order() {
        let a = Labels::from_pairs([("a", "1")]).unwrap();
        let ab = Labels::from_pairs([("a", "1"), ("b", "1")]).unwrap();
        let a2 = Labels::from_pairs([("a", "2")]).unwrap();
        assert!(a < ab);
        assert!(ab < a2);
    }

    #[test]
    fn merge_lets_other_win() {
        let s = Labels::from_pairs([("a", "1"), ("c", "3")]).unwrap();
        let ext = Labels::from_pairs([("b", "x"), ("c", "ext")]).unwrap();
        let m = s.merged_with(&ext);
        assert_eq!(m.to_string(), r#"{a="1", b="x", c="ext"}"#);
        assert_eq!(m.without(&["b".into()]).len(), 2);
    }
}
