//! External labels on series that do not carry them (blocks) or carry
//! them already (Prometheus' remote read), keeping the stream sorted.

use futures::StreamExt;

use crate::model::{Labels, Series};
use crate::store::{SeriesFrame, SeriesStream};

/// Puts external labels on series (remote read has them already, blocks
/// do not; a series' own label wins), drops the ones in `strip`, and keeps
/// the answer sorted. Prometheus sorts by the series' own labels; adding or
/// removing one label everywhere reorders two series only when one's own
/// labels are a prefix of the other's, and such series are adjacent, so
/// each run of series extending the run's first one is re-sorted alone.
/// Memory: one run, almost always one series.
pub fn with_external_labels(input: SeriesStream, ext: Labels, strip: Vec<String>) -> SeriesStream {
    let ext_names: Vec<String> = ext.iter().map(|l| l.name.clone()).collect();
    let keep = ext.without(&strip);
    Box::pin(async_stream::try_stream! {
        let mut input = input;
        // The run's first series by its own labels, and the run as it goes out.
        let mut head: Option<Labels> = None;
        let mut run: Vec<Series> = Vec::new();
        while let Some(frame) = input.next().await {
            match frame? {
                SeriesFrame::Warning(w) => yield SeriesFrame::Warning(w),
                SeriesFrame::Series(s) => {
                    let own = s.labels.without(&ext_names);
                    let extends_head = head.as_ref().is_some_and(|h| {
                        h.len() < own.len() && own.as_slice().starts_with(h.as_slice())
                    });
                    if !extends_head {
                        run.sort_by(|a, b| a.labels.cmp(&b.labels));
                        for out in run.drain(..) {
                            yield SeriesFrame::Series(out);
                        }
                        head = Some(own);
                    }
                    let labels = keep.merged_with(&s.labels.without(&strip));
                    run.push(Series { labels, chunks: s.chunks });
                }
            }
        }
        run.sort_by(|a, b| a.labels.cmp(&b.labels));
        for out in run {
            yield SeriesFrame::Series(out);
        }
    })
}
