//! Mutation fuzzing of every decoder of untrusted bytes, bounded in time so
//! that it runs with the other tests. Each target starts from its corpus
//! (fuzz/corpus/<target>, written by skein's own writers, plus what the
//! coverage-guided runs under fuzz/ kept) and feeds mutated inputs to its
//! entry point in `skein::fuzzing`; a panic fails the test and the input is
//! saved under target/fuzz-failures/<target>/.
//!
//! `SKEIN_FUZZ_SECONDS` sets the time per target (default 4),
//! `SKEIN_FUZZ_SEED` the random seed (default: from the clock, printed).
//! `cargo test --test fuzz -- --ignored write_corpus` rewrites the seeds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skein::fuzzing::{seeds, target, TARGETS};

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name)
}

/// xorshift64*: fast, and enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    &[0],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x80, 0, 0, 0],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
];

/// One to four random changes: bit flips, interesting values, inserted,
/// deleted or repeated runs, truncation, splices from another input and
/// words of the target's syntax.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], dictionary: &[&str]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let i = rng.below(len);
                let n = v.len().min(len - i);
                input[i..i + n].copy_from_slice(&v[..n]);
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                input.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let run = input[at..at + n].to_vec();
                let most = if rng.below(8) == 0 { 500 } else { 4 };
                let times = 1 + rng.below(most);
                let to = rng.below(len + 1);
                input.splice(to..to, run.iter().copied().cycle().take(n * times));
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let at = rng.below(len + 1);
                    input.truncate(at);
                    input.extend_from_slice(&other[from..]);
                }
            }
            7 | 8 if !dictionary.is_empty() => {
                let word = dictionary[rng.below(dictionary.len())].as_bytes();
                let at = rng.below(len + 1);
                if rng.below(2) == 0 || at == len {
                    input.splice(at..at, word.iter().copied());
                } else {
                    let end = (at + word.len()).min(len);
                    input.splice(at..end, word.iter().copied());
                }
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    input[i] = rng.next() as u8;
                }
            }
        }
    }
    // Inputs stay small enough to run many.
    input.truncate(1 << 20);
}

fn load_corpus(name: &str) -> Vec<Vec<u8>> {
    let mut out = seeds(name);
    if let Ok(dir) = std::fs::read_dir(corpus_dir(name)) {
        let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        out.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    out
}

fn save_failure(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz-failures")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("crash-{:016x}", crc32c::crc32c(input)));
    std::fs::write(&path, input).unwrap();
    path
}

fn fuzz(name: &str) {
    let t = target(name).unwrap();
    let seconds: u64 = std::env::var("SKEIN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("SKEIN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    let corpus = load_corpus(name);
    assert!(!corpus.is_empty(), "{name}: no corpus");
    // Panics are the target's failures; keep their messages off the output
    // until one is reported.
    let quiet = std::env::var("SKEIN_FUZZ_VERBOSE").is_err();
    if quiet {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    let mut input = Vec::new();
    // The seeds as they are first, then mutations of them.
    let mut next = 0usize;
    while next < corpus.len() || Instant::now() < deadline {
        input.clear();
        if next < corpus.len() {
            input.extend_from_slice(&corpus[next]);
            next += 1;
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            mutate(&mut rng, &mut input, &corpus, t.dictionary);
        }
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (t.run)(&input))) {
            let _ = std::panic::take_hook();
            let path = save_failure(name, &input);
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!(
                "{name}: input {runs} (seed {seed}) panicked: {why}\nsaved in {}\nfirst bytes: {:02x?}",
                path.display(),
                &input[..input.len().min(64)]
            );
        }
        runs += 1;
    }
    if quiet {
        let _ = std::panic::take_hook();
    }
    eprintln!("{name}: {runs} inputs in {seconds}s, seed {seed}");
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_fuzzed() {
            let tested = [$(stringify!($name)),*];
            for t in TARGETS {
                assert!(tested.contains(&t.name), "{} has no test", t.name);
            }
        }
    };
}

fuzz_tests!(
    xor_chunk,
    aggr_chunk,
    series_frame,
    store_request,
    info_response,
    gossip_advert,
    remote_read_stream,
    remote_read_samples,
    tsdb_index,
    tsdb_chunks,
    index_header,
    block_meta,
    bucket_config,
    http_params,
    promql,
);

/// Writes each target's seeds to fuzz/corpus/<target>/seed-N.
#[test]
#[ignore]
fn write_corpus() {
    for t in TARGETS {
        let dir = corpus_dir(t.name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds(t.name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
