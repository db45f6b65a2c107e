//! Postings lists (sorted series references) and how label matchers turn
//! into them, with Prometheus' semantics: a label that a series lacks has
//! the value "", so a matcher that accepts "" also selects series without
//! the label.
//!
//! Each matcher that rejects "" selects the union of the lists of the values
//! it accepts; these sets are intersected. Each matcher that accepts ""
//! instead removes the union of the lists of the values it rejects. With no
//! matcher of the first kind, the removal starts from the list of every
//! series.

use std::collections::HashMap;

use super::error::TsdbError;
use super::header::IndexHeader;
use super::index::SeriesRef;
use crate::model::Matcher;

/// Series in both sorted lists.
pub fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    let mut rest = large;
    for &x in small {
        // Gallop through the larger list: cheap when it is much larger.
        let i = rest.partition_point(|&y| y < x);
        rest = &rest[i..];
        match rest.first() {
            Some(&y) if y == x => {
                out.push(x);
                rest = &rest[1..];
            }
            Some(_) => {}
            None => break,
        }
    }
    out
}

/// Series in `a` but not in `b` (both sorted).
pub fn subtract(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

/// Series in any of the sorted lists, sorted and without duplicates.
pub fn union(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ => {
            let mut out: Vec<SeriesRef> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Series in every list.
pub fn intersect_all(mut lists: Vec<Vec<SeriesRef>>) -> Vec<SeriesRef> {
    lists.sort_by_key(Vec::len);
    let mut iter = lists.into_iter();
    let Some(mut acc) = iter.next() else {
        return Vec::new();
    };
    for l in iter {
        if acc.is_empty() {
            break;
        }
        acc = intersect(&acc, &l);
    }
    acc
}

type Range = (u64, u64);

/// Which postings lists a set of matchers needs and how they combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One group per selecting matcher: the union of its lists.
    select: Vec<Vec<Range>>,
    /// Lists whose series are removed.
    remove: Vec<Range>,
}

/// Resolves matchers against the header. `None` means nothing can match, so
/// no list needs reading.
/// `file` names the index in errors.
pub(crate) fn plan(
    file: &str,
    header: &IndexHeader,
    matchers: &[Matcher],
) -> Result<Option<Plan>, TsdbError> {
    let mut select = Vec::new();
    let mut remove = Vec::new();
    for m in matchers {
        if m.matches_empty() {
            remove.extend(
                header
                    .label_postings(m.name())
                    .filter(|(v, _)| !m.matches(v))
                    .map(|(_, r)| r),
            );
        } else {
            let ranges: Vec<Range> = match m.op() {
                crate::model::MatchOp::Equal => header
                    .postings_range(m.name(), m.value())
                    .into_iter()
                    .collect(),
                _ => header
                    .label_postings(m.name())
                    .filter(|(v, _)| m.matches(v))
                    .map(|(_, r)| r)
                    .collect(),
            };
            if ranges.is_empty() {
                return Ok(None);
            }
            select.push(ranges);
        }
    }
    if select.is_empty() {
        match header.all_postings_range() {
            Some(all) => select.push(vec![all]),
            None if header.postings_count() == 0 => return Ok(None),
            None => {
                return Err(TsdbError::malformed(
                    file,
                    "postings offset table",
                    "no list of all series",
                ))
            }
        }
    }
    Ok(Some(Plan { select, remove }))
}

impl Plan {
    /// Every list the plan reads.
    pub fn ranges(&self) -> Vec<Range> {
        let mut out: Vec<Range> = self
            .select
            .iter()
            .flatten()
            .chain(self.remove.iter())
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Combines the lists (by start offset) into the selected series.
    pub fn evaluate(&self, lists: &HashMap<u64, Vec<SeriesRef>>) -> Vec<SeriesRef> {
        let get = |r: &Range| lists.get(&r.0).map_or(&[][..], Vec::as_slice);
        let groups: Vec<Vec<SeriesRef>> = self
            .select
            .iter()
            .map(|g| union(&g.iter().map(get).collect::<Vec<_>>()))
            .collect();
        let selected = intersect_all(groups);
        if self.remove.is_empty() || selected.is_empty() {
            return selected;
        }
        let removed = union(&self.remove.iter().map(get).collect::<Vec<_>>());
        subtract(&selected, &removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;
    use crate::tsdb::testutil::{series, IndexBuilder};

    #[test]
    fn intersect_cases() {
        assert_eq!(intersect(&[], &[1, 2]), Vec::<u32>::new());
        assert_eq!(intersect(&[1, 2], &[]), Vec::<u32>::new());
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5, 8]), vec![3, 5]);
        assert_eq!(intersect(&[1, 2, 3], &[1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(intersect(&[1, 2, 3], &[4, 5]), Vec::<u32>::new());
        assert_eq!(intersect(&[9], &(0..1000).collect::<Vec<_>>()), vec![9]);
        assert_eq!(intersect(&[0, u32::MAX], &[u32::MAX]), vec![u32::MAX]);
        assert_eq!(intersect_all(vec![]), Vec::<u32>::new());
        assert_eq!(
            intersect_all(vec![vec![1, 2, 3, 4], vec![2, 4], vec![4, 5]]),
            vec![4]
        );
        assert_eq!(
            intersect_all(vec![vec![1], vec![], vec![1]]),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn subtract_and_union_cases() {
        assert_eq!(subtract(&[1, 2, 3], &[]), vec![1, 2, 3]);
        assert_eq!(subtract(&[], &[1]), Vec::<u32>::new());
        assert_eq!(subtract(&[1, 2, 3, 4], &[0, 2, 4, 9]), vec![1, 3]);
        assert_eq!(subtract(&[1, 2], &[1, 2]), Vec::<u32>::new());
        assert_eq!(union(&[]), Vec::<u32>::new());
        assert_eq!(union(&[&[1, 4]]), vec![1, 4]);
        assert_eq!(union(&[&[1, 4], &[2, 4], &[], &[9]]), vec![1, 2, 4, 9]);
    }

    /// Sets agree with a brute-force model on random inputs.
    #[test]
    fn set_ops_agree_with_model() {
        use std::collections::BTreeSet;
        let mut x = 0x1234_5678u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let mut gen = |n: u64| -> Vec<u32> {
                let s: BTreeSet<u32> = (0..rnd() % n).map(|_| (rnd() % 64) as u32).collect();
                s.into_iter().collect()
            };
            let (a, b) = (gen(40), gen(40));
            let sa: BTreeSet<_> = a.iter().copied().collect();
            let sb: BTreeSet<_> = b.iter().copied().collect();
            assert_eq!(
                intersect(&a, &b),
                sa.intersection(&sb).copied().collect::<Vec<_>>()
            );
            assert_eq!(
                subtract(&a, &b),
                sa.difference(&sb).copied().collect::<Vec<_>>()
            );
            assert_eq!(union(&[&a, &b]), sa.union(&sb).copied().collect::<Vec<_>>());
        }
    }

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    /// Every matcher kind against an index of six series, checked with the
    /// matchers' own semantics over the label sets.
    #[tokio::test]
    async fn matchers_select_like_prometheus() {
        use crate::model::matcher::matches_all;
        use crate::tsdb::index::IndexReader;
        use crate::tsdb::source::MemFile;
        use std::sync::Arc;

        let all = [
            series(
                &[("__name__", "up"), ("job", "api"), ("env", "prod")],
                &[(0, 1, 8)],
            ),
            series(
                &[("__name__", "up"), ("job", "api"), ("env", "dev")],
                &[(0, 1, 8)],
            ),
            series(&[("__name__", "up"), ("job", "db")], &[(0, 1, 8)]),
            series(
                &[("__name__", "cpu"), ("job", "db"), ("env", "prod")],
                &[(0, 1, 8)],
            ),
            series(&[("__name__", "cpu"), ("mode", "idle")], &[(0, 1, 8)]),
            series(&[("__name__", "cpu"), ("mode", "a\nb")], &[(0, 1, 8)]),
        ];
        for empty_symbol in [true, false] {
            let idx = IndexBuilder { empty_symbol }.build(&all);
            let reader = IndexReader::open(Arc::new(MemFile::new("i", idx.bytes.clone())))
                .await
                .unwrap();
            let cases: Vec<Vec<Matcher>> = vec![
                vec![],
                vec![m(MatchOp::Equal, "job", "api")],
                vec![m(MatchOp::Equal, "job", "nope")],
                vec![m(MatchOp::Equal, "nope", "x")],
                vec![m(MatchOp::Equal, "env", "")],
                vec![m(MatchOp::Equal, "nope", "")],
                vec![m(MatchOp::NotEqual, "env", "prod")],
                vec![m(MatchOp::NotEqual, "env", "")],
                vec![m(MatchOp::NotEqual, "nope", "x")],
                vec![m(MatchOp::NotEqual, "nope", "")],
                vec![m(MatchOp::Regex, "job", "a.*")],
                vec![m(MatchOp::Regex, "job", "api|db")],
                vec![m(MatchOp::Regex, "env", "prod|")],
                vec![m(MatchOp::Regex, "env", ".*")],
                vec![m(MatchOp::Regex, "env", ".+")],
                vec![m(MatchOp::Regex, "mode", ".*")],
                vec![m(MatchOp::Regex, "nope", ".*")],
                vec![m(MatchOp::Regex, "nope", ".+")],
                vec![m(MatchOp::NotRegex, "env", "prod")],
                vec![m(MatchOp::NotRegex, "env", ".*")],
                vec![m(MatchOp::NotRegex, "env", ".+")],
                vec![m(MatchOp::NotRegex, "env", "")],
                vec![m(MatchOp::NotRegex, "nope", "x")],
                vec![
                    m(MatchOp::Equal, "__name__", "up"),
                    m(MatchOp::NotEqual, "env", "dev"),
                ],
                vec![
                    m(MatchOp::Regex, "__name__", "up|cpu"),
                    m(MatchOp::Equal, "env", ""),
                    m(MatchOp::NotRegex, "mode", "id.*"),
                ],
                vec![
                    m(MatchOp::Equal, "job", "api"),
                    m(MatchOp::Equal, "job", "db"),
                ],
                vec![
                    m(MatchOp::NotEqual, "job", "api"),
                    m(MatchOp::Equal, "env", ""),
                ],
                vec![m(MatchOp::Equal, "", "")],
                vec![m(MatchOp::NotEqual, "", "")],
            ];
            for matchers in cases {
                let got = reader.postings_for_matchers(&matchers).await.unwrap();
                let want: Vec<u32> = all
                    .iter()
                    .zip(&idx.refs)
                    .filter(|(s, _)| matches_all(&matchers, &s.labels()))
                    .map(|(_, &r)| r)
                    .collect();
                let mut want = want;
                want.sort_unstable();
                assert_eq!(got, want, "matchers {matchers:?}");
            }
        }
    }
}
