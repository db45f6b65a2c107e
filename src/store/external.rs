//! External labels on series that do not carry them (blocks) or carry
//! them already (Prometheus' remote read), keeping the stream sorted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;

use crate::model::{Label, Labels, Series};
use crate::store::{SeriesFrame, SeriesStream};

/// Puts external labels on series (remote read has them already, blocks
/// do not; a series' own label wins), drops the external labels named in
/// `strip` (the replica labels; a series' own label of that name with
/// another value is not one and stays), and keeps the answer sorted.
///
/// Stores sort by the series' own labels. Adding one label everywhere
/// reorders two series only when one's own labels are a prefix of the
/// other's, and such series are adjacent, so each run of series extending
/// the run's first one is re-sorted alone (memory: one run, almost always
/// one series). A series with a label of its own named like an external
/// label breaks that rule: it can move past series that are not its
/// neighbours. The labels before the first external label's name are
/// never touched, though, so series sharing those (a contiguous stretch
/// of the answer) can only be reordered among themselves: once such a
/// series is seen (`clashes`, shared by every answer of one store) each
/// stretch is held and sorted whole. The answer in which the first one
/// shows up may already have sent part of its stretch: the merge then
/// refuses it as unsorted, an error and never a wrong answer; later
/// answers hold from their start.
pub fn with_external_labels(input: SeriesStream, ext: Labels, strip: Vec<String>) -> SeriesStream {
    with_external_labels_tracked(input, ext, strip, true, Arc::new(AtomicBool::new(false)))
}

/// [`with_external_labels`], `clashes` remembering across the answers of
/// one store whether its series carry labels named like external ones.
/// `carried`: the store puts the external labels on its series itself
/// (remote read), so only a label of such a name with another value shows
/// a series' own; one with the external value cannot be told apart (the
/// merge refuses the answer if it is then out of order).
pub fn with_external_labels_tracked(
    input: SeriesStream,
    ext: Labels,
    strip: Vec<String>,
    carried: bool,
    clashes: Arc<AtomicBool>,
) -> SeriesStream {
    if ext.is_empty() {
        return input;
    }
    let ext_names: Vec<String> = ext.iter().map(|l| l.name.clone()).collect();
    // External labels are sorted: the first name bounds the untouched part.
    let first_ext = ext_names[0].clone();
    // Only external labels are replica labels to strip; a series' own
    // label of that name (another value) is its own and stays.
    let strip: Vec<Label> = ext
        .iter()
        .filter(|l| strip.contains(&l.name))
        .cloned()
        .collect();
    Box::pin(async_stream::try_stream! {
        let mut input = input;
        let mut whole_stretches = clashes.load(Ordering::Relaxed);
        // The run's first series by its own labels, or in stretch mode the
        // labels the stretch shares (buffers reused from run to run), and
        // the run as it goes out.
        let mut head = Labels::empty();
        let mut have_head = false;
        let mut run: Vec<Series> = Vec::new();
        while let Some(frame) = input.next().await {
            match frame? {
                SeriesFrame::Warning(w) => yield SeriesFrame::Warning(w),
                SeriesFrame::Series(mut s) => {
                    let own = |l: &Label| match ext.get(&l.name) {
                        Some(v) => !carried || v != l.value,
                        None => false,
                    };
                    if !whole_stretches && s.labels.iter().any(own) {
                        // The stretch this series opens or continues is
                        // held from here; so are later answers'.
                        if !clashes.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                labels = %s.labels,
                                "a series carries a label named like an external label; answers are sorted by stretches from now on"
                            );
                        }
                        whole_stretches = true;
                        have_head = false;
                    }
                    let same_run = have_head
                        && if whole_stretches {
                            starts_with(&s.labels, &head)
                        } else {
                            extends(&head, &s.labels, &ext_names)
                        };
                    if !same_run {
                        if run.len() > 1 {
                            run.sort_by(|a, b| a.labels.cmp(&b.labels));
                        }
                        for out in run.drain(..) {
                            yield SeriesFrame::Series(out);
                        }
                        if whole_stretches {
                            head.set_from(s.labels.iter().take_while(|l| l.name < first_ext));
                        } else {
                            head.set_without(&s.labels, &ext_names);
                        }
                        have_head = true;
                    }
                    s.labels.fill_from(&ext);
                    if !strip.is_empty() {
                        s.labels.retain(|l| !strip.contains(l));
                    }
                    run.push(s);
                }
            }
        }
        run.sort_by(|a, b| a.labels.cmp(&b.labels));
        for out in run {
            yield SeriesFrame::Series(out);
        }
    })
}

/// Whether `head` is a strict prefix of `labels` without the named ones.
fn extends(head: &Labels, labels: &Labels, names: &[String]) -> bool {
    let mut own = labels.iter().filter(|l| !names.contains(&l.name));
    head.iter().all(|h| own.next() == Some(h)) && own.next().is_some()
}

/// Whether `labels` begin with `prefix`.
fn starts_with(labels: &Labels, prefix: &Labels) -> bool {
    let mut own = labels.iter();
    prefix.iter().all(|p| own.next() == Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    async fn run(input: Vec<Labels>, ext: Labels, clashes: Arc<AtomicBool>) -> Vec<Labels> {
        let frames = input.into_iter().map(|labels| {
            Ok(SeriesFrame::Series(Series {
                labels,
                chunks: vec![],
            }))
        });
        with_external_labels_tracked(
            Box::pin(futures::stream::iter(frames)),
            ext,
            vec![],
            false,
            clashes,
        )
        .map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => s.labels,
            SeriesFrame::Warning(w) => panic!("{w}"),
        })
        .collect()
        .await
    }

    #[tokio::test]
    async fn a_series_with_an_external_labels_name_is_sorted_into_its_stretch() {
        // Sorted by own labels: x (own cluster) before y; with the
        // external cluster=m on y, y goes first.
        let x = l(&[("a", "1"), ("cluster", "z"), ("e", "1")]);
        let y = l(&[("a", "1"), ("d", "1")]);
        let other = l(&[("a", "2"), ("d", "1")]);
        let ext = l(&[("cluster", "m")]);
        let clashes = Arc::new(AtomicBool::new(false));
        let got = run(
            vec![x.clone(), y.clone(), other.clone()],
            ext.clone(),
            clashes.clone(),
        )
        .await;
        let y_ext = l(&[("a", "1"), ("cluster", "m"), ("d", "1")]);
        let other_ext = l(&[("a", "2"), ("cluster", "m"), ("d", "1")]);
        assert_eq!(got, vec![y_ext.clone(), x.clone(), other_ext.clone()]);
        assert!(clashes.load(Ordering::Relaxed));

        // One that comes after series already sent: this answer is out of
        // order (the merge refuses it), the next one from the store is not.
        let short = l(&[("a", "1")]);
        let own_c = l(&[("a", "1"), ("cluster", "c")]);
        let fresh = Arc::new(AtomicBool::new(false));
        let first = run(
            vec![short.clone(), own_c.clone()],
            ext.clone(),
            fresh.clone(),
        )
        .await;
        assert!(first.windows(2).any(|w| w[0] > w[1]), "{first:?}");
        let second = run(vec![short, own_c.clone()], ext, fresh).await;
        assert_eq!(second, vec![own_c, l(&[("a", "1"), ("cluster", "m")])]);
    }
}
