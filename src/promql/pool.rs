//! The threads queries are evaluated on.
//!
//! Evaluation is CPU work and recursive over the syntax tree, so it runs
//! off the async threads, on threads whose stacks hold the deepest tree the
//! parser lets through ([`super::depth::MAX_DEPTH`]) with room to spare.
//! The stack is reserved address space; only the pages a query touches are
//! ever backed by memory. Threads are made on demand and kept while idle
//! (up to a bound), so a busy querier does not pay for a thread per query.
//! A panic in one evaluation is that query's error, never the process'.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use tokio::sync::oneshot;

use super::PromqlError;

/// Stack of an evaluation thread.
const STACK_BYTES: usize = 64 << 20;
/// Idle threads kept for the next queries.
const MAX_IDLE: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    idle: Mutex<Vec<mpsc::Sender<Job>>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        idle: Mutex::new(Vec::new()),
    })
}

/// Runs `f` on an evaluation thread and waits for its result.
pub(crate) async fn evaluate<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PromqlError> + Send + 'static,
) -> Result<T, PromqlError> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(result);
    });
    pool().submit(job)?;
    match rx.await {
        Ok(result) => unwind(result),
        Err(_) => Err(PromqlError::execution(
            "query evaluation failed: its thread went away",
        )),
    }
}

/// Runs a small `f` on the calling thread, a panic still being the
/// query's error.
pub(crate) fn evaluate_here<T>(
    f: impl FnOnce() -> Result<T, PromqlError>,
) -> Result<T, PromqlError> {
    unwind(std::panic::catch_unwind(AssertUnwindSafe(|| {
        super::par::without_helpers(f)
    })))
}

fn unwind<T>(result: std::thread::Result<Result<T, PromqlError>>) -> Result<T, PromqlError> {
    match result {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_string());
            tracing::error!(panic = %what, "query evaluation panicked");
            Err(PromqlError::execution(format!(
                "query evaluation failed: {what}"
            )))
        }
    }
}

impl Pool {
    fn submit(&'static self, job: Job) -> Result<(), PromqlError> {
        let mut job = job;
        loop {
            let worker = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match worker {
                // A thread that ended since it became idle hands the job back.
                Some(w) => match w.send(job) {
                    Ok(()) => return Ok(()),
                    Err(mpsc::SendError(back)) => job = back,
                },
                None => return self.spawn(job),
            }
        }
    }

    fn spawn(&'static self, first: Job) -> Result<(), PromqlError> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("skein-eval".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let mut job = first;
                loop {
                    job();
                    {
                        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                        if idle.len() >= MAX_IDLE {
                            return;
                        }
                        idle.push(tx.clone());
                    }
                    match rx.recv() {
                        Ok(next) => job = next,
                        Err(_) => return,
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| PromqlError::execution(format!("cannot start an evaluation thread: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_and_panics_come_back() {
        assert_eq!(evaluate(|| Ok(41 + 1)).await, Ok(42));
        let err = evaluate::<()>(|| panic!("boom")).await.unwrap_err();
        assert!(err.message.contains("boom"), "{err:?}");
        // The pool still works after a panic.
        assert_eq!(evaluate(|| Ok("after")).await, Ok("after"));
    }

    #[tokio::test]
    async fn runs_many_at_once() {
        let all = futures::future::join_all((0..32).map(|i| {
            evaluate(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                Ok(i)
            })
        }))
        .await;
        let got: Vec<i32> = all.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, (0..32).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_deep_recursion_fits_the_stack() {
        fn down(n: usize) -> usize {
            let pad = std::hint::black_box([n as u8; 4096]);
            if n == 0 {
                0
            } else {
                down(n - 1) + pad.len() / 4096
            }
        }
        // At least 8 MiB of frames: far more than the 2 MiB of a default
        // runtime thread.
        assert_eq!(evaluate(|| Ok(down(2_000))).await, Ok(2_000));
    }
}
