//! Model-based tests of [`IdempotencyStore`] implementations (feature `model`).
//!
//! [`check`] runs random sequences of operations — claim, complete, release, by several
//! owners over a few ids, and the passing of time — against a store and against a small
//! reference model of the states in the [store module docs](crate::store), and compares
//! every answer. A failing sequence is shrunk (with [proptest]) to a short one, and the
//! panic shows it step by step, with the seed that reproduces the run.
//!
//! The model, per id:
//!
//! - absent → `claim` → in progress (owner, lease expiry);
//! - in progress: `claim` answers [`InProgress`](ClaimOutcome::InProgress) until the lease
//!   expires, after which a claim takes it over (whoever makes it);
//! - `complete` and `release` apply only for the owner of an unexpired lease (else
//!   [`NotOwner`](SettleOutcome::NotOwner), nothing changes): complete → completed
//!   (retention expiry), release → absent;
//! - completed: `claim` answers [`Completed`](ClaimOutcome::Completed) until the retention
//!   expires, after which the id is absent again.
//!
//! An expiry at time `t` has happened at `t` exactly (a lease set at 0 for 300 ms is
//! expired at 300 ms).
//!
//! # Time
//!
//! - [`TimeControl::Manual`]: the store reads a [`ManualClock`] that the check moves by the
//!   steps given, so expiries are tested at their exact boundary, instantly. The
//!   [`MemoryStore`](crate::MemoryStore) takes one with
//!   [`MemoryStoreBuilder::manual_clock`](crate::store::MemoryStoreBuilder::manual_clock).
//! - [`TimeControl::Real`]: for stores on a server (Redis, PostgreSQL), which read their
//!   own clock. Durations are either *short* or *long* (an hour: never expires within a
//!   case); an "advance" sleeps until every short lease and retention set so far has
//!   expired, plus a slack for the store's rounding. A case in which the store answered
//!   too slowly for the short duration to have certainly not expired yet is inconclusive
//!   and is not counted (too many of them fail the check: raise `short`).
//!
//! Each run of a sequence uses ids under a fresh random prefix and fresh owner tokens, so
//! a shared server needs no cleanup. Operations run one after the other: concurrent claims
//! are the [conformance suite](super::conformance)'s business.
//!
//! ```
//! use std::sync::Arc;
//! use knolyx_webhook_core::store::MemoryStore;
//! use knolyx_webhook_core::testing::model::{self, ManualClock, ModelConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::new();
//! let store = MemoryStore::builder().manual_clock(clock.clone()).build();
//! model::check(Arc::new(store), ModelConfig::manual(clock)).await;
//!
//! // A store on a server, with real time and fewer cases:
//! let mut config = ModelConfig::real_time();
//! config.cases = 2;
//! model::check(Arc::new(MemoryStore::new()), config).await;
//! # }
//! ```
//!
//! It needs a Tokio runtime (`#[tokio::test]`).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::strategy::{Just, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::store::{ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome};

/// A clock moved by hand, shared between a test and a store under test.
///
/// It starts at 0 ms and only moves when [`advance`](Self::advance) is called.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at 0 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since the clock was made, as moved by [`advance`](Self::advance).
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = crate::store::saturating_millis(by);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// How time passes in a [`check`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TimeControl {
    /// The store reads this clock (see [`ManualClock`]); an "advance" moves it by one of
    /// `steps`, chosen at random. Choose steps around `short` to hit the boundaries; for
    /// the [`MemoryStore`](crate::MemoryStore), which keeps retentions in 100 ms ticks
    /// (rounded up), make `short`, `long` and every step multiples of 100 ms.
    Manual {
        /// The clock the store reads.
        clock: ManualClock,
        /// The amounts an advance may move the clock by.
        steps: Vec<Duration>,
    },
    /// The store reads the real clock; an "advance" sleeps until every short lease and
    /// retention set so far has expired, plus `slack` (the store's rounding: the memory
    /// store's retention tick is 100 ms; a server's clock resolution).
    Real {
        /// Waited beyond a short expiry before it counts as past.
        slack: Duration,
    },
}

/// The parameters of a [`check`]. Start from [`manual`](Self::manual) or
/// [`real_time`](Self::real_time) and change fields as needed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModelConfig {
    /// How many random sequences to run.
    pub cases: u32,
    /// The longest sequence of operations.
    pub max_ops: usize,
    /// How many distinct ids a sequence uses.
    pub ids: usize,
    /// How many distinct owners claim and settle.
    pub owners: usize,
    /// The short lease or retention.
    pub short: Duration,
    /// The long lease or retention (must not expire within a sequence).
    pub long: Duration,
    /// How time passes.
    pub time: TimeControl,
    /// The seed of the random sequences: `None` for a random one (printed on failure), or
    /// the seed of a failed run to replay it. The `KNOLYX_MODEL_SEED` environment variable
    /// overrides it.
    pub seed: Option<u64>,
    /// The most re-runs spent shrinking a failing sequence.
    pub max_shrink_runs: u32,
}

impl ModelConfig {
    /// Exact, instant time on a store that reads `clock`: 512 sequences of up to 48
    /// operations over 3 ids and 3 owners; short = 300 ms, long = 1 h; advances of 100,
    /// 200, 300 or 400 ms.
    pub fn manual(clock: ManualClock) -> Self {
        Self {
            cases: 512,
            max_ops: 48,
            ids: 3,
            owners: 3,
            short: Duration::from_millis(300),
            long: Duration::from_secs(3600),
            time: TimeControl::Manual {
                clock,
                steps: [100, 200, 300, 400].map(Duration::from_millis).to_vec(),
            },
            seed: None,
            max_shrink_runs: 2048,
        }
    }

    /// Real time, for a store on a server: 16 sequences of up to 24 operations over 3 ids
    /// and 3 owners; short = 150 ms, long = 1 h, slack = 120 ms (each advance then waits
    /// at most 270 ms).
    pub fn real_time() -> Self {
        Self {
            cases: 16,
            max_ops: 24,
            ids: 3,
            owners: 3,
            short: Duration::from_millis(150),
            long: Duration::from_secs(3600),
            time: TimeControl::Real {
                slack: Duration::from_millis(120),
            },
            seed: None,
            max_shrink_runs: 64,
        }
    }
}

/// A lease or retention: short or long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    Short,
    Long,
}

/// One step of a sequence. Ids and owners are indices.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Claim {
        id: usize,
        owner: usize,
        lease: Span,
    },
    Complete {
        id: usize,
        owner: usize,
        retention: Span,
    },
    Release {
        id: usize,
        owner: usize,
    },
    Advance {
        step: usize,
    },
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Claim { id, owner, lease } => write!(f, "claim(id{id}, owner{owner}, {lease:?})"),
            Op::Complete {
                id,
                owner,
                retention,
            } => write!(f, "complete(id{id}, owner{owner}, {retention:?})"),
            Op::Release { id, owner } => write!(f, "release(id{id}, owner{owner})"),
            Op::Advance { step } => write!(f, "advance(#{step})"),
        }
    }
}

/// An id's state in the model. Times are model milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    InProgress { owner: usize, until: u64 },
    Completed { until: u64 },
}

/// The reference model: every id's state and the model's clock.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    ids: HashMap<usize, State>,
}

impl Model {
    fn claim(&mut self, id: usize, owner: usize, lease: u64) -> ClaimOutcome {
        match self.ids.get(&id) {
            Some(State::InProgress { until, .. }) if self.now < *until => ClaimOutcome::InProgress,
            Some(State::Completed { until }) if self.now < *until => ClaimOutcome::Completed,
            // Absent, or expired: claimed (an expired lease is taken over).
            _ => {
                let until = self.now.saturating_add(lease);
                self.ids.insert(id, State::InProgress { owner, until });
                ClaimOutcome::Claimed
            }
        }
    }

    fn owns(&self, id: usize, who: usize) -> bool {
        matches!(self.ids.get(&id), Some(State::InProgress { owner, until })
            if *owner == who && self.now < *until)
    }

    fn complete(&mut self, id: usize, owner: usize, retention: u64) -> SettleOutcome {
        if !self.owns(id, owner) {
            return SettleOutcome::NotOwner;
        }
        let until = self.now.saturating_add(retention);
        self.ids.insert(id, State::Completed { until });
        SettleOutcome::Settled
    }

    fn release(&mut self, id: usize, owner: usize) -> SettleOutcome {
        if !self.owns(id, owner) {
            return SettleOutcome::NotOwner;
        }
        self.ids.remove(&id);
        SettleOutcome::Settled
    }
}

use crate::store::saturating_millis as ms;

/// How a run of one sequence ended.
enum Outcome {
    Pass,
    /// Real time only: the store was too slow for the timing assumptions to hold.
    Inconclusive,
    /// The store and the model disagree (or the store failed): the report.
    Fail(String),
}

/// In real time, an operation must end this long before a short expiry set in the same
/// window could fall due (the store's clock may truncate to whole milliseconds).
const GUARD: Duration = Duration::from_millis(5);

async fn run_case<S: IdempotencyStore + ?Sized>(
    store: &S,
    config: &ModelConfig,
    ops: &[Op],
) -> Outcome {
    let prefix = format!("model-{}-", OwnerToken::generate());
    let owners: Vec<OwnerToken> = (0..config.owners).map(|_| OwnerToken::generate()).collect();
    let id_of = |i: usize| format!("{prefix}{i}");
    let (short, long) = (ms(config.short), ms(config.long));
    let span = |s: Span| match s {
        Span::Short => (short, config.short),
        Span::Long => (long, config.long),
    };
    let mut model = Model::default();
    // Real time: the start of the first operation since the last advance that set a short
    // expiry, and the end of the last operation that set one.
    let mut window_start: Option<Instant> = None;
    let mut last_short_end: Option<Instant> = None;
    let mut log = String::new();

    for (i, &op) in ops.iter().enumerate() {
        let _ = write!(log, "\n  {i:>2}. t={:>5} ms  {op:?}", model.now);
        let start = Instant::now();
        let (answer, expected, sets_short) = match op {
            Op::Claim { id, owner, lease } => {
                let (lease_ms, lease) = span(lease);
                let got = store.claim(&id_of(id), owners[owner], lease).await;
                let want = model.claim(id, owner, lease_ms);
                let sets = want == ClaimOutcome::Claimed && lease_ms == short;
                (got.map(|o| format!("{o:?}")), format!("{want:?}"), sets)
            }
            Op::Complete {
                id,
                owner,
                retention,
            } => {
                let (retention_ms, retention) = span(retention);
                let got = store.complete(&id_of(id), owners[owner], retention).await;
                let want = model.complete(id, owner, retention_ms);
                let sets = want == SettleOutcome::Settled && retention_ms == short;
                (got.map(|o| format!("{o:?}")), format!("{want:?}"), sets)
            }
            Op::Release { id, owner } => {
                let got = store.release(&id_of(id), owners[owner]).await;
                let want = model.release(id, owner);
                (got.map(|o| format!("{o:?}")), format!("{want:?}"), false)
            }
            Op::Advance { step } => {
                match &config.time {
                    TimeControl::Manual { clock, steps } => {
                        let by = steps[step % steps.len()];
                        clock.advance(by);
                        model.now += ms(by);
                        let _ = write!(log, " by {by:?}");
                    }
                    TimeControl::Real { slack } => {
                        if let Some(last) = last_short_end {
                            let due = last + config.short + *slack;
                            let now = Instant::now();
                            if due > now {
                                tokio::time::sleep(due - now).await;
                            }
                        }
                        window_start = None;
                        model.now += short;
                        let _ = write!(log, " (past every short expiry)");
                    }
                }
                continue;
            }
        };
        let end = Instant::now();
        if matches!(config.time, TimeControl::Real { .. })
            && window_start.is_some_and(|w| end + GUARD >= w + config.short)
        {
            return Outcome::Inconclusive;
        }
        if sets_short {
            window_start.get_or_insert(start);
            last_short_end = Some(end);
        }
        match answer {
            Ok(got) if got == expected => {
                let _ = write!(log, " -> {got}");
            }
            Ok(got) => {
                let _ = write!(log, " -> {got}   <== the model says {expected}");
                return Outcome::Fail(log);
            }
            Err(e) => {
                let _ = write!(
                    log,
                    " -> store error: {e} ({:?})   <== the model says {expected}",
                    e.kind()
                );
                return Outcome::Fail(log);
            }
        }
    }
    Outcome::Pass
}

fn ops_strategy(config: &ModelConfig) -> impl Strategy<Value = Vec<Op>> {
    let steps = match &config.time {
        TimeControl::Manual { steps, .. } => steps.len(),
        TimeControl::Real { .. } => 1,
    };
    let span = proptest::prop_oneof![Just(Span::Short), Just(Span::Long)];
    let (ids, owners) = (0..config.ids, 0..config.owners);
    let op = proptest::prop_oneof![
        4 => (ids.clone(), owners.clone(), span.clone())
            .prop_map(|(id, owner, lease)| Op::Claim { id, owner, lease }),
        3 => (ids.clone(), owners.clone(), span)
            .prop_map(|(id, owner, retention)| Op::Complete { id, owner, retention }),
        2 => (ids, owners).prop_map(|(id, owner)| Op::Release { id, owner }),
        2 => (0..steps).prop_map(|step| Op::Advance { step }),
    ];
    proptest::collection::vec(op, 1..=config.max_ops)
}

fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_err() {
        return OwnerToken::generate().as_u128() as u64;
    }
    u64::from_le_bytes(buf)
}

/// Runs [`ModelConfig::cases`] random sequences against `store` and the model, panicking
/// with the shortest failing sequence found (and the seed to replay it) at the first
/// disagreement. See the [module docs](self).
pub async fn check<S: IdempotencyStore + ?Sized>(store: Arc<S>, config: ModelConfig) {
    assert!(
        config.ids > 0 && config.owners > 0 && config.max_ops > 0,
        "model check: ids, owners and max_ops must be above zero"
    );
    if let TimeControl::Manual { steps, .. } = &config.time {
        assert!(!steps.is_empty(), "model check: no time steps");
    }
    assert!(
        config.short < config.long,
        "model check: short must be below long"
    );
    let seed = std::env::var("KNOLYX_MODEL_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .or(config.seed)
        .unwrap_or_else(random_seed);
    let seed_bytes: Vec<u8> = seed.to_le_bytes().repeat(4);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: config.cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = ops_strategy(&config);
    let store = &*store;
    let (mut passed, mut inconclusive) = (0u32, 0u32);

    while passed < config.cases {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree,
            Err(reason) => panic!("model check: cannot generate a sequence: {reason}"),
        };
        match run_case(store, &config, &tree.current()).await {
            Outcome::Pass => passed += 1,
            Outcome::Inconclusive => {
                inconclusive += 1;
                assert!(
                    inconclusive <= config.cases.max(8),
                    "model check: {inconclusive} sequences were inconclusive: the store \
                     answered too slowly for a short duration of {:?}; raise `short`",
                    config.short
                );
            }
            Outcome::Fail(report) => {
                let (report, runs) = shrink(store, &config, &mut tree, report).await;
                panic!(
                    "model check: the store disagrees with the model (seed {seed}, after \
                     {passed} passing sequences; shrunk in {runs} runs; replay with \
                     KNOLYX_MODEL_SEED={seed}):{report}"
                );
            }
        }
    }
}

/// proptest's shrinking loop: simplify while the sequence still fails, complicate when it
/// passes, and keep the last failure.
async fn shrink<S: IdempotencyStore + ?Sized>(
    store: &S,
    config: &ModelConfig,
    tree: &mut impl ValueTree<Value = Vec<Op>>,
    mut report: String,
) -> (String, u32) {
    let mut runs = 0;
    if !tree.simplify() {
        return (report, runs);
    }
    while runs < config.max_shrink_runs {
        runs += 1;
        match run_case(store, config, &tree.current()).await {
            Outcome::Fail(smaller) => {
                report = smaller;
                if !tree.simplify() {
                    break;
                }
            }
            Outcome::Pass | Outcome::Inconclusive => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    (report, runs)
}
