//! Label sets with Prometheus semantics: sorted by name, names unique, empty
//! values mean "absent".

use std::cmp::Ordering;
use std::fmt;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Clone for Label {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            value: self.value.clone(),
        }
    }

    /// Reuses this label's buffers.
    fn clone_from(&mut self, source: &Self) {
        self.name.clone_from(&source.name);
        self.value.clone_from(&source.value);
    }
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
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<Label>);

impl Clone for Labels {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }

    /// Reuses this set's buffers: a copy kept per series (the last one
    /// passed on, a run's head) costs no allocation once warm.
    fn clone_from(&mut self, source: &Self) {
        self.0.clone_from(&source.0);
    }
}

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

    /// Makes this set `source` without the named labels, reusing its
    /// buffers.
    pub fn set_without(&mut self, source: &Labels, names: &[String]) {
        self.set_from(source.0.iter().filter(|l| !names.contains(&l.name)));
    }

    /// Makes this set the labels of `source`, reusing its buffers.
    pub fn set_from<'a>(&mut self, source: impl Iterator<Item = &'a Label>) {
        let mut n = 0;
        for l in source {
            match self.0.get_mut(n) {
                Some(slot) => slot.clone_from(l),
                None => self.0.push(l.clone()),
            }
            n += 1;
        }
        self.0.truncate(n);
    }

    /// Keeps the labels `keep` says yes to, in place.
    pub fn retain(&mut self, keep: impl FnMut(&Label) -> bool) {
        self.0.retain(keep);
    }

    /// Adds `base`'s labels where this set has no label of that name (this
    /// set's own labels win), consuming neither.
    pub fn fill_from(&mut self, base: &Labels) {
        if base.0.is_empty() {
            return;
        }
        let missing = base
            .0
            .iter()
            .filter(|b| self.get(&b.name).is_none())
            .count();
        if missing == 0 {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + missing);
        let mut own = std::mem::take(&mut self.0).into_iter().peekable();
        for b in &base.0 {
            while own.peek().is_some_and(|o| o.name < b.name) {
                out.extend(own.next());
            }
            if own.peek().is_none_or(|o| o.name != b.name) {
                out.push(b.clone());
            }
        }
        out.extend(own);
        self.0 = out;
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

    #[test]
    fn in_place_forms_match_the_copying_ones() {
        let s = Labels::from_pairs([("a", "1"), ("c", "3"), ("r", "x")]).unwrap();
        let ext = Labels::from_pairs([("b", "e"), ("c", "ext"), ("z", "9")]).unwrap();
        let names = ["r".to_string()];
        let mut reused = Labels::from_pairs([("q", "old"), ("w", "1"), ("x", "2")]).unwrap();
        reused.set_without(&s, &names);
        assert_eq!(reused, s.without(&names));
        reused.clone_from(&ext);
        assert_eq!(reused, ext);
        let mut own = s.without(&names);
        own.fill_from(&ext);
        assert_eq!(own, ext.merged_with(&s.without(&names)));
        let mut same = s.clone();
        same.fill_from(&Labels::empty());
        assert_eq!(same, s);
    }
}
