//! Your own idempotency store: here, one that survives restarts on a single machine by
//! journaling every change to a file, and is proved with the conformance suite that every
//! shipped store passes.
//!
//! ```sh
//! cargo run -p knolyx-webhook-examples --bin custom-store [JOURNAL_PATH]
//! ```
//!
//! It runs the conformance suite against the store, then replays the journal into a new
//! store (as after a restart) and shows that a handled id is still a duplicate.
//!
//! The journal is append-only (one line per change: `claim`, `complete`, `release`), replayed
//! at start-up; a production version would compact it and fsync per your durability needs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knolyx_webhook_core::store::{
    ClaimOutcome, IdempotencyStore, OwnerToken, SettleOutcome, StoreError, StoreResult, async_trait,
};
use knolyx_webhook_core::testing::conformance;

/// The state of one id: in progress (owner, lease expiry) or completed (retention expiry),
/// with expiries in milliseconds since the Unix epoch, so that they survive a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    InProgress { owner: u128, until: u64 },
    Completed { until: u64 },
}

#[derive(Debug)]
struct Inner {
    ids: HashMap<String, State>,
    journal: File,
}

/// An idempotency store journaled to a file.
#[derive(Debug)]
struct JournalStore {
    inner: Mutex<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn after(ms: u64, d: Duration) -> u64 {
    ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl JournalStore {
    /// Opens (or creates) the journal at `path` and replays it.
    fn open(path: &Path) -> std::io::Result<Self> {
        let mut ids = HashMap::new();
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines() {
                // Ids are JSON-escaped; a line is `op id owner until`.
                let line = line?;
                let mut parts = line.splitn(4, ' ');
                let (Some(op), Some(owner), Some(until), Some(id)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue; // a torn last line after a crash: ignore it
                };
                let (Ok(owner), Ok(until), Ok(id)) = (
                    u128::from_str_radix(owner, 16),
                    until.parse::<u64>(),
                    serde_json::from_str::<String>(id),
                ) else {
                    continue;
                };
                match op {
                    "claim" => ids.insert(id, State::InProgress { owner, until }),
                    "complete" => ids.insert(id, State::Completed { until }),
                    _ => ids.remove(&id),
                };
            }
        }
        let journal = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            inner: Mutex::new(Inner { ids, journal }),
        })
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::backend("journal store lock poisoned"))
    }
}

impl Inner {
    /// Appends one change; the in-memory state changes only once it is written.
    fn write(&mut self, op: &str, id: &str, owner: u128, until: u64) -> StoreResult<()> {
        let id = serde_json::to_string(id).map_err(StoreError::backend)?;
        writeln!(self.journal, "{op} {owner:032x} {until} {id}").map_err(StoreError::unavailable)
    }

    fn owned(&self, id: &str, owner: OwnerToken, now: u64) -> bool {
        matches!(self.ids.get(id), Some(State::InProgress { owner: o, until })
            if *o == owner.as_u128() && *until > now)
    }
}

#[async_trait]
impl IdempotencyStore for JournalStore {
    async fn claim(
        &self,
        id: &str,
        owner: OwnerToken,
        lease: Duration,
    ) -> StoreResult<ClaimOutcome> {
        let mut inner = self.lock()?;
        let now = now_ms();
        match inner.ids.get(id) {
            Some(State::InProgress { until, .. }) if *until > now => {
                return Ok(ClaimOutcome::InProgress);
            }
            Some(State::Completed { until }) if *until > now => {
                return Ok(ClaimOutcome::Completed);
            }
            _ => {} // absent or expired: claim it
        }
        let until = after(now, lease);
        inner.write("claim", id, owner.as_u128(), until)?;
        let state = State::InProgress {
            owner: owner.as_u128(),
            until,
        };
        inner.ids.insert(id.to_owned(), state);
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete(
        &self,
        id: &str,
        owner: OwnerToken,
        retention: Duration,
    ) -> StoreResult<SettleOutcome> {
        let mut inner = self.lock()?;
        let now = now_ms();
        if !inner.owned(id, owner, now) {
            return Ok(SettleOutcome::NotOwner);
        }
        let until = after(now, retention);
        inner.write("complete", id, owner.as_u128(), until)?;
        inner.ids.insert(id.to_owned(), State::Completed { until });
        Ok(SettleOutcome::Settled)
    }

    async fn release(&self, id: &str, owner: OwnerToken) -> StoreResult<SettleOutcome> {
        let mut inner = self.lock()?;
        if !inner.owned(id, owner, now_ms()) {
            return Ok(SettleOutcome::NotOwner);
        }
        inner.write("release", id, owner.as_u128(), 0)?;
        inner.ids.remove(id);
        Ok(SettleOutcome::Settled)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let path = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("knolyx-journal-{}.log", std::process::id())),
        PathBuf::from,
    );
    let store = match JournalStore::open(&path) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("custom-store: cannot open {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!("journal: {}", path.display());
    println!("running the conformance suite (claim, fencing, concurrency, expiry, 10,000 ids)…");
    conformance::run(Arc::clone(&store)).await;
    println!("conformance suite passed");

    // A handled id, then a "restart": a new store replayed from the journal.
    let owner = OwnerToken::generate();
    let id = knolyx_webhook_core::testing::random_id();
    let claimed = store.claim(&id, owner, Duration::from_secs(60)).await;
    let completed = store.complete(&id, owner, Duration::from_secs(3600)).await;
    assert_eq!(
        (claimed.ok(), completed.ok()),
        (Some(ClaimOutcome::Claimed), Some(SettleOutcome::Settled))
    );
    drop(store);
    let restarted = match JournalStore::open(&path) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("custom-store: cannot reopen {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let after_restart = restarted
        .claim(&id, OwnerToken::generate(), Duration::from_secs(60))
        .await;
    println!("after a restart, {id} is {after_restart:?}");
    if std::env::args_os().nth(1).is_none() {
        let _ = std::fs::remove_file(&path);
    }
    if matches!(after_restart, Ok(ClaimOutcome::Completed)) {
        println!("the duplicate survived the restart");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
