//! External labels on series that do not carry them (blocks) or carry
//! them already (Prometheus' remote read), keeping the stream sorted.

use futures::StreamExt;

use crate::model::{Labels, Series};
use crate::store::{SeriesFrame, SeriesStream};

/// Puts external labels on series (remote read has them already, blocks
/// do not; a series' own label wins), drops the external labels named in
/// `strip` (the replica labels; a series' own label of that name with
/// another value is not one and stays), and keeps the answer sorted. Prometheus sorts by the series' own labels; adding or
/// removing one label everywhere reorders two series only when one's own
/// labels are a prefix of the other's, and such series are adjacent, so
/// each run of series extending the run's first one is re-sorted alone.
/// Memory: one run, almost always one series.
pub fn with_external_labels(input: SeriesStream, ext: Labels, strip: Vec<String>) -> SeriesStream {
    if ext.is_empty() {
        return input;
    }
    let ext_names: Vec<String> = ext.iter().map(|l| l.name.clone()).collect();
    // Only external labels are replica labels to strip; a series' own
    // label of that name (another value) is its own and stays.
    let strip: Vec<crate::model::Label> = ext
        .iter()
        .filter(|l| strip.contains(&l.name))
        .cloned()
        .collect();
    Box::pin(async_stream::try_stream! {
        let mut input = input;
        // The run's first series by its own labels (its buffers reused from
        // run to run), and the run as it goes out.
        let mut head = Labels::empty();
        let mut have_head = false;
        let mut run: Vec<Series> = Vec::new();
        while let Some(frame) = input.next().await {
            match frame? {
                SeriesFrame::Warning(w) => yield SeriesFrame::Warning(w),
                SeriesFrame::Series(mut s) => {
                    if !(have_head && extends(&head, &s.labels, &ext_names)) {
                        if run.len() > 1 {
                            run.sort_by(|a, b| a.labels.cmp(&b.labels));
                        }
                        for out in run.drain(..) {
                            yield SeriesFrame::Series(out);
                        }
                        head.set_without(&s.labels, &ext_names);
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
