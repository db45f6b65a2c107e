//! Per-series work of one query spread over the machine's cores.
//!
//! Prometheus evaluates a query on one core. Decoding a selector's series
//! and running a range function over each are independent per series, so
//! a large selector is cut into contiguous runs of series, one per thread,
//! and the outputs are put back together in series order: the answer is
//! the same as on one thread, bit for bit (no sum changes its order).
//!
//! Helper threads are few and shared by all queries: at most one less than
//! the cores. When they are all busy (a loaded querier already uses every
//! core) the work runs on the query's own thread, as small work always
//! does, so a busy node is not oversubscribed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::PromqlError;

/// Below this many chunks (about 120 samples each, a quarter of a
/// millisecond or more of decoding and evaluation, against some 30 µs to
/// start a thread) a part is not worth a thread.
const MIN_CHUNKS_PER_THREAD: usize = 256;

/// Helper threads running now, across queries.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// Parts run on helper threads since start.
static PARTS: AtomicUsize = AtomicUsize::new(0);

/// Parts of selectors evaluated on helper threads since the process
/// started (also `skein_promql_parallel_parts_total`).
pub fn parallel_parts() -> usize {
    PARTS.load(Ordering::Relaxed)
}

thread_local! {
    /// Set while a small query is evaluated on an async thread: it must
    /// not wait there for helper threads.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with splitting off on this thread (an async thread evaluating
/// a small query inline).
pub(crate) fn without_helpers<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            INLINE.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(INLINE.with(|c| c.replace(true)));
    f()
}

/// Threads for one selector, set once at start (0: the machine's cores).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads a large selector may use (`--query.eval-threads`;
/// 0: one per core).
pub fn set_eval_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

fn max_helpers() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    let threads = match THREADS.load(Ordering::Relaxed) {
        0 => *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    };
    threads.saturating_sub(1)
}

/// Helpers taken from the shared budget, given back on drop.
struct Taken(usize);

impl Drop for Taken {
    fn drop(&mut self) {
        if self.0 > 0 {
            BUSY.fetch_sub(self.0, Ordering::AcqRel);
        }
    }
}

fn take_helpers(wanted: usize) -> Taken {
    let max = max_helpers();
    let mut got = 0;
    while got < wanted {
        let busy = BUSY.load(Ordering::Acquire);
        if busy >= max {
            break;
        }
        let n = (wanted - got).min(max - busy);
        if BUSY
            .compare_exchange(busy, busy + n, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            got += n;
        }
    }
    Taken(got)
}

/// Maps every item with `f`, in parts on several threads when `weight`
/// (a cost per item, e.g. its chunk count) says it is worth it. Outputs
/// are in item order; `None`s are left out. `state` makes one scratch
/// value per thread. The first error in item order is returned.
pub(crate) fn map_items<I, T, S>(
    items: &[I],
    weight: impl Fn(&I) -> usize,
    state: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &I) -> Result<Option<T>, PromqlError> + Sync,
) -> Result<Vec<T>, PromqlError>
where
    I: Sync,
    T: Send,
{
    let run = |part: &[I]| -> Result<Vec<T>, PromqlError> {
        let mut s = state();
        let mut out = Vec::with_capacity(part.len());
        for item in part {
            if let Some(t) = f(&mut s, item)? {
                out.push(t);
            }
        }
        Ok(out)
    };
    let inline = INLINE.with(std::cell::Cell::get);
    let total: usize = if inline || max_helpers() == 0 || items.len() < 2 {
        0
    } else {
        items.iter().map(&weight).sum()
    };
    let wanted = (total / MIN_CHUNKS_PER_THREAD)
        .saturating_sub(1)
        .min(items.len().saturating_sub(1));
    let helpers = if wanted == 0 {
        Taken(0)
    } else {
        take_helpers(wanted)
    };
    if helpers.0 == 0 {
        return run(items);
    }
    // Contiguous parts of about equal weight, one per thread.
    let parts = helpers.0 + 1;
    metrics::counter!(super::metrics_names::PARALLEL_PARTS_TOTAL).increment(helpers.0 as u64);
    PARTS.fetch_add(helpers.0, Ordering::Relaxed);
    let per_part = total.div_ceil(parts);
    let mut bounds = Vec::with_capacity(parts + 1);
    bounds.push(0);
    let mut acc = 0;
    for (i, item) in items.iter().enumerate() {
        acc += weight(item);
        if acc >= per_part * bounds.len() && bounds.len() < parts {
            bounds.push(i + 1);
        }
    }
    bounds.push(items.len());
    bounds.dedup();
    let results: Vec<Result<Vec<T>, PromqlError>> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(bounds.len());
        for w in bounds.windows(2).skip(1) {
            let part = &items[w[0]..w[1]];
            let run = &run;
            handles.push(scope.spawn(move || run(part)));
        }
        let mut results = vec![run(&items[bounds[0]..bounds[1]])];
        for h in handles {
            results.push(h.join().unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown cause".into());
                Err(PromqlError::execution(format!(
                    "query evaluation failed: {what}"
                )))
            }));
        }
        results
    });
    drop(helpers);
    let mut out = Vec::with_capacity(items.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_item_order_and_the_first_error_wins() {
        let items: Vec<usize> = (0..10_000).collect();
        let out = map_items(
            &items,
            |_| 10,
            Vec::<usize>::new,
            |seen, &i| {
                seen.push(i);
                Ok((i % 3 != 0).then_some(i * 2))
            },
        )
        .unwrap();
        let want: Vec<usize> = items
            .iter()
            .filter(|i| *i % 3 != 0)
            .map(|i| i * 2)
            .collect();
        assert_eq!(out, want);

        let err = map_items(
            &items,
            |_| 10,
            || (),
            |_, &i| {
                if i == 7_000 || i == 9_000 {
                    Err(PromqlError::execution(format!("bad {i}")))
                } else {
                    Ok(Some(i))
                }
            },
        )
        .unwrap_err();
        assert!(err.message.contains("7000"), "{}", err.message);
    }

    #[test]
    fn inline_evaluation_uses_no_helpers() {
        let items: Vec<usize> = (0..10_000).collect();
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let out = without_helpers(|| {
            map_items(
                &items,
                |_| 10,
                || (),
                |_, &i| {
                    threads.lock().unwrap().insert(std::thread::current().id());
                    Ok(Some(i))
                },
            )
        })
        .unwrap();
        assert_eq!(out.len(), items.len());
        assert_eq!(threads.lock().unwrap().len(), 1);
        assert!(!INLINE.with(std::cell::Cell::get), "the flag is reset");
    }

    #[test]
    fn a_panic_in_a_helper_is_an_error() {
        if max_helpers() == 0 {
            return;
        }
        let items: Vec<usize> = (0..10_000).collect();
        let r = map_items(
            &items,
            |_| 10,
            || (),
            |_, &i| {
                if i == 9_999 {
                    panic!("boom");
                }
                Ok(Some(i))
            },
        );
        assert!(r.unwrap_err().message.contains("boom"));
    }
}
