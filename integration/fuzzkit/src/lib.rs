//! runrs-fuzzkit: bounded fuzzing under plain `cargo test`, on the stable toolchain.
//!
//! cargo-fuzz (libFuzzer) and cargo-afl need a nightly compiler for their coverage
//! instrumentation, and CI has only stable Rust. This crate keeps the parts of them that
//! work without it: every target first replays its seed corpus (files committed under
//! `<crate>/fuzz/corpus/<target>/`, so a crash once found stays a regression input), then
//! mutates pool entries (bit flips, splices, dictionary tokens, boundary numbers, broken
//! UTF-8, ...) for a bounded time. In place of edge coverage a target returns a
//! *signature* of what an input did (which error, at which JSON path; which message
//! variant): a mutated input with a signature not seen before joins the pool and is
//! mutated further, which is how the run gets past the first parse error.
//!
//! A panic in the target is a crash: the input is shrunk, written to the crash directory
//! and printed as a byte string, and the test fails.
//!
//! Environment:
//! - `RUNRS_FUZZ_SECS`: seconds of mutation per target. Unset: a 1 s smoke run (what the
//!   unit stage does); the fuzz stage sets it (integration/scripts/fuzz.sh).
//! - `RUNRS_FUZZ_SEED`: the random seed; every run prints the one it used. Without it a
//!   smoke run uses a fixed seed and a timed run a new one.
//! - `RUNRS_FUZZ_REPORT`: a file each target appends `name iterations seconds pool` to.
//! - `RUNRS_FUZZ_CRASH_DIR`: where crashing inputs go (default `<tmp>/runrs-fuzz-crashes`).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

pub use arbitrary;

/// Mutation time of a run without `RUNRS_FUZZ_SECS`.
const SMOKE: Duration = Duration::from_secs(1);
/// The seed of a run without `RUNRS_FUZZ_SECS` (and without `RUNRS_FUZZ_SEED`).
const SMOKE_SEED: u64 = 17;
/// Largest number of inputs kept for mutation.
const POOL_MAX: usize = 4096;
/// Shrinking a crash stops after this long.
const SHRINK_TIME: Duration = Duration::from_secs(10);

/// One fuzz target: a name, its seed corpus and its dictionary.
pub struct Fuzz {
    name: String,
    corpus: PathBuf,
    dict: Vec<Vec<u8>>,
    max_len: usize,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Inputs run (corpus and mutated).
    pub iterations: u64,
    /// Seed corpus entries.
    pub corpus: usize,
    /// Inputs in the pool at the end (corpus plus new signatures).
    pub pool: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The random seed.
    pub seed: u64,
}

impl Fuzz {
    /// A target named `name` whose seed corpus is the directory `corpus`.
    pub fn new(name: &str, corpus: impl Into<PathBuf>) -> Fuzz {
        Fuzz {
            name: name.to_string(),
            corpus: corpus.into(),
            dict: Vec::new(),
            max_len: 64 * 1024,
        }
    }

    /// Tokens the mutator inserts (keywords, field names, delimiters of the format).
    pub fn dict(mut self, tokens: &[&str]) -> Fuzz {
        self.dict
            .extend(tokens.iter().map(|t| t.as_bytes().to_vec()));
        self
    }

    /// Longest mutated input (the corpus entries are run whatever their size).
    pub fn max_len(mut self, n: usize) -> Fuzz {
        self.max_len = n.max(1);
        self
    }

    /// Replay the corpus, then mutate for the configured time. `target` returns the
    /// input's signature (0: nothing worth keeping); a panic in it fails the test after
    /// the input was shrunk, saved and printed.
    pub fn run(self, target: impl Fn(&[u8]) -> u64) -> Stats {
        install_quiet_hook();
        let start = Instant::now();
        let corpus = self.load_corpus();
        let mut seen = HashSet::new();
        let mut iterations = 0u64;
        for (path, input) in &corpus {
            iterations += 1;
            match run_one(&target, input) {
                Ok(sig) => {
                    seen.insert(sig);
                }
                Err(msg) => self.crash(&target, input, &msg, &format!("{}", path.display()), 0),
            }
        }
        let budget = std::env::var("RUNRS_FUZZ_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        // The smoke run (unit stage) starts from a fixed seed, so a failure there
        // repeats; a fuzz run explores from a new one each time.
        let seed = std::env::var("RUNRS_FUZZ_SEED")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                if budget.is_some() {
                    time_seed()
                } else {
                    SMOKE_SEED
                }
            });
        let budget = budget.unwrap_or(SMOKE);
        let mut rng = Rng::new(seed);
        let mut pool: Vec<Vec<u8>> = corpus.into_iter().map(|(_, d)| d).collect();
        let corpus_len = pool.len();
        let deadline = Instant::now() + budget;
        let mut input = Vec::new();
        loop {
            for _ in 0..32 {
                input.clear();
                // Half of the parents are seed inputs: the pool can fill up with
                // short junk that has signatures of its own.
                let parent = if rng.below(2) == 0 {
                    rng.below(corpus_len)
                } else {
                    rng.below(pool.len())
                };
                input.extend_from_slice(&pool[parent]);
                let rounds = 1 << rng.below(4);
                for _ in 0..rounds {
                    mutate(&mut input, &pool, &self.dict, &mut rng);
                }
                input.truncate(self.max_len);
                iterations += 1;
                match run_one(&target, &input) {
                    Ok(0) => {}
                    Ok(sig) => {
                        if seen.insert(sig) {
                            if pool.len() < POOL_MAX {
                                pool.push(input.clone());
                            } else {
                                let i = corpus_len + rng.below(POOL_MAX - corpus_len);
                                pool[i] = input.clone();
                            }
                        }
                    }
                    Err(msg) => {
                        let what = format!("mutated input (seed {seed})");
                        self.crash(&target, &input, &msg, &what, iterations);
                    }
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let stats = Stats {
            iterations,
            corpus: corpus_len,
            pool: pool.len(),
            elapsed: start.elapsed(),
            seed,
        };
        eprintln!(
            "fuzz {}: {} inputs in {:.1} s ({} corpus, pool {}, seed {})",
            self.name,
            stats.iterations,
            stats.elapsed.as_secs_f64(),
            stats.corpus,
            stats.pool,
            stats.seed
        );
        if let Some(report) = std::env::var_os("RUNRS_FUZZ_REPORT") {
            let line = format!(
                "{} {} {:.1} {}\n",
                self.name,
                stats.iterations,
                stats.elapsed.as_secs_f64(),
                stats.pool
            );
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&report)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                panic!("fuzz {}: write the report {report:?}: {e}", self.name);
            }
        }
        stats
    }

    fn load_corpus(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let entries = std::fs::read_dir(&self.corpus).unwrap_or_else(|e| {
            panic!(
                "fuzz {}: the seed corpus {} cannot be read: {e}",
                self.name,
                self.corpus.display()
            )
        });
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let corpus: Vec<(PathBuf, Vec<u8>)> = paths
            .into_iter()
            .map(|p| {
                let data = std::fs::read(&p)
                    .unwrap_or_else(|e| panic!("fuzz {}: read {}: {e}", self.name, p.display()));
                (p, data)
            })
            .collect();
        assert!(
            !corpus.is_empty(),
            "fuzz {}: the seed corpus {} is empty",
            self.name,
            self.corpus.display()
        );
        corpus
    }

    /// Shrink, save and print a crashing input, then fail.
    fn crash(
        &self,
        target: &dyn Fn(&[u8]) -> u64,
        input: &[u8],
        msg: &str,
        what: &str,
        after: u64,
    ) -> ! {
        let small = shrink(target, input);
        let dir = std::env::var_os("RUNRS_FUZZ_CRASH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("runrs-fuzz-crashes"))
            .join(&self.name);
        let file = dir.join(format!("crash-{:016x}", fnv(&small)));
        let saved = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&file, &small))
            .map(|()| file.display().to_string())
            .unwrap_or_else(|e| format!("(not saved: {e})"));
        eprintln!(
            "fuzz {}: CRASH on {what} after {after} inputs: {msg}\n  input ({} bytes, shrunk from {}): {}\n  saved: {saved}\n  keep it as a regression input: cp {saved} {}/",
            self.name,
            small.len(),
            input.len(),
            escape(&small),
            self.corpus.display()
        );
        panic!("fuzz target {} crashed: {msg}", self.name);
    }
}

/// A signature for [`Fuzz::run`] from anything hashable (never 0).
pub fn sig<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    t.hash(&mut h);
    h.finish() | 1
}

/// The signature of an error message by its shape: quoted values and digits are left
/// out, so `invalid type: string "a", expected u32 at line 1 column 9` and the same
/// error on another value or column count as one.
pub fn shape(msg: &str) -> u64 {
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '`' => quote = Some(c),
            None if c.is_ascii_digit() => {}
            None => out.push(c),
        }
    }
    sig(&out)
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LOCATION: RefCell<String> = const { RefCell::new(String::new()) };
}

/// While a target runs, panics are not printed by the hook (they are reported once,
/// shrunk); the location is kept for the report. Other threads print as usual.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

fn run_one(target: &dyn Fn(&[u8]) -> u64, input: &[u8]) -> Result<u64, String> {
    QUIET.with(|q| q.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    QUIET.with(|q| q.set(false));
    r.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic)".into());
        let at = LOCATION.with(|l| l.borrow().clone());
        format!("{msg} at {at}")
    })
}

/// Delete chunks (halves down to single bytes) while the input still panics.
fn shrink(target: &dyn Fn(&[u8]) -> u64, input: &[u8]) -> Vec<u8> {
    let start = Instant::now();
    let mut best = input.to_vec();
    let mut chunk = best.len() / 2;
    while chunk > 0 && start.elapsed() < SHRINK_TIME {
        let mut i = 0;
        while i < best.len() && start.elapsed() < SHRINK_TIME {
            let end = (i + chunk).min(best.len());
            let mut candidate = best[..i].to_vec();
            candidate.extend_from_slice(&best[end..]);
            if run_one(target, &candidate).is_err() {
                best = candidate;
            } else {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    best
}

/// A Rust byte-string literal of `data`, to paste into a regression test.
fn escape(data: &[u8]) -> String {
    let mut s = String::from("b\"");
    for &b in data.iter().take(4096) {
        s.extend(std::ascii::escape_default(b).map(char::from));
    }
    if data.len() > 4096 {
        s.push_str("...");
    }
    s.push('"');
    s
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn time_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*: small, fast and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that delimit or escape something in the formats fuzzed here.
const SPECIAL: &[u8] = b"\0\x01\x7f\x80\xff\"\\'%{}[],:=\n\r\t#+&?/ -._";
/// Numbers at the edges of the integer types and JSON/TOML number syntax.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "64",
    "65",
    "127",
    "128",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1e309",
    "-0",
    "0.5",
    "0x10",
    "nan",
];
/// Multi-byte, invisible and invalid UTF-8 (string slicing at a byte offset breaks here).
const UNICODE: &[&[u8]] = &[
    "é".as_bytes(),
    "€".as_bytes(),
    "😀".as_bytes(),
    "\u{fffd}".as_bytes(),
    "\u{2028}".as_bytes(),
    "\u{202e}".as_bytes(),
    b"\xc3",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
];

fn mutate(data: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[Vec<u8>], rng: &mut Rng) {
    let n = data.len();
    let pos = rng.below(n + 1);
    match rng.below(13) {
        0 if n > 0 => {
            let i = rng.below(n);
            data[i] ^= 1 << rng.below(8);
        }
        1 if n > 0 => {
            let i = rng.below(n);
            data[i] = if rng.below(2) == 0 {
                *rng.pick(SPECIAL)
            } else {
                rng.next() as u8
            };
        }
        2 => {
            let k = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
            data.splice(pos..pos, bytes);
        }
        3 if n > 0 => {
            let start = rng.below(n);
            let len = 1 + rng.below((n - start).min(1 + n / 4));
            data.drain(start..start + len);
        }
        4 if n > 0 => {
            let start = rng.below(n);
            let len = 1 + rng.below((n - start).min(64));
            let chunk = data[start..start + len].to_vec();
            data.splice(pos..pos, chunk);
        }
        5 | 6 if !dict.is_empty() => {
            let token = rng.pick(dict).clone();
            data.splice(pos..pos, token);
        }
        7 => {
            // Replace the digits at or after `pos` (or insert) with a boundary number.
            let number = rng.pick(NUMBERS).as_bytes().to_vec();
            let start = (pos..n).find(|&i| data[i].is_ascii_digit()).unwrap_or(pos);
            let end = (start..n).find(|&i| !data[i].is_ascii_digit()).unwrap_or(n);
            data.splice(start..end.max(start), number);
        }
        8 => {
            let other = rng.pick(pool);
            let from = rng.below(other.len() + 1);
            data.truncate(pos);
            data.extend_from_slice(&other[from..]);
        }
        9 => {
            let u = rng.pick(UNICODE).to_vec();
            data.splice(pos..pos, u);
        }
        10 if n > 0 => {
            data.truncate(rng.below(n));
        }
        11 => {
            let other = rng.pick(pool);
            if !other.is_empty() {
                let start = rng.below(other.len());
                let len = 1 + rng.below((other.len() - start).min(128));
                data.splice(pos..pos, other[start..start + len].iter().copied());
            }
        }
        _ => {
            let c = *rng.pick(SPECIAL);
            data.insert(pos, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_ignore_values_and_positions() {
        assert_eq!(
            shape("invalid type: string \"a\", expected u32 at line 1 column 9"),
            shape("invalid type: string \"bcd\", expected u32 at line 3 column 17")
        );
        assert_ne!(shape("missing field `x`"), shape("unknown variant"));
        assert_ne!(sig(&0u8), 0);
    }

    #[test]
    fn mutations_stay_in_bounds() {
        let mut rng = Rng::new(7);
        let pool = vec![b"{\"a\": [1, 2]}".to_vec(), Vec::new()];
        let dict = vec![b"ociVersion".to_vec()];
        for i in 0..20_000 {
            let mut d = pool[i % 2].clone();
            for _ in 0..4 {
                mutate(&mut d, &pool, &dict, &mut rng);
            }
        }
    }

    #[test]
    fn shrinks_a_crash_to_its_cause() {
        install_quiet_hook();
        let target = |d: &[u8]| {
            assert!(!d.windows(2).any(|w| w == b"%\xc3"), "boom");
            0
        };
        let small = shrink(&target, b"binary:///x?a=%\xc3\xa9&b=c");
        assert_eq!(small, b"%\xc3");
        assert!(run_one(&target, b"ok").is_ok());
        assert!(run_one(&target, &small)
            .expect_err("crash")
            .starts_with("boom at "));
    }
}
