//! [`Attempt`]: what a handler run by the [`Worker`](super::Worker) knows of its entry.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::OwnerToken;

/// One attempt at an inbox entry, as a handler given it by
/// [`Worker::builder_with_attempt`](super::Worker::builder_with_attempt) sees it: the id,
/// the fencing owner token of the lease, and the attempt number.
///
/// A handler whose side effects live in the same database as the inbox completes the entry
/// in its own transaction with it (`PostgresInbox::complete_in_transaction`), so that the
/// effect and the completion commit together, or not at all: exactly-once effects, even
/// when a lease is lost to another worker. The worker then sees the attempt
/// [marked completed](Self::is_marked_completed) and does not complete the entry again.
///
/// ```
/// use knolyx_webhook_core::inbox::Attempt;
/// use knolyx_webhook_core::store::OwnerToken;
///
/// // In a unit test of such a handler, an attempt is made by hand.
/// let attempt = Attempt::new("m-1", OwnerToken::generate(), 1);
/// assert_eq!((attempt.id(), attempt.number()), ("m-1", 1));
/// assert!(!attempt.is_marked_completed());
/// ```
#[derive(Clone)]
pub struct Attempt {
    id: Arc<str>,
    owner: OwnerToken,
    number: u32,
    completed: Arc<AtomicBool>,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("number", &self.number)
            .field("completed", &self.is_marked_completed())
            .finish()
    }
}

impl Attempt {
    /// Attempt number `number` (1 for the first) at entry `id`, under the lease of `owner`.
    pub fn new(id: impl Into<Arc<str>>, owner: OwnerToken, number: u32) -> Self {
        Self {
            id: id.into(),
            owner,
            number,
            completed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The entry's id (the message id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner token fencing this attempt's lease.
    pub fn owner(&self) -> OwnerToken {
        self.owner
    }

    /// The attempt number, 1 for the first.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Records that the handler completed the entry itself (in its own transaction):
    /// called by an inbox's in-transaction completion once its fenced update applied. If
    /// that transaction then rolls back, the entry stays running and is taken again when
    /// its lease expires: at least once, never lost.
    pub fn mark_completed(&self) {
        self.completed.store(true, Ordering::SeqCst);
    }

    /// Whether [`mark_completed`](Self::mark_completed) was called.
    pub fn is_marked_completed(&self) -> bool {
        self.completed.load(Ordering::SeqCst)
    }
}
