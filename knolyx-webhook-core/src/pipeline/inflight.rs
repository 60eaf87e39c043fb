//! The claims a receiver holds right now: registered when a delivery claims its id, removed
//! once the claim is settled, whichever way (the handler's outcome, a settle finished in the
//! background after a dropped request, a release after an ambiguous claim). This is what
//! [`WebhookReceiver::drain`](super::WebhookReceiver::drain) waits for and what
//! [`WebhookReceiver::release_in_flight`](super::WebhookReceiver::release_in_flight) frees
//! at shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::store::OwnerToken;

/// The registry. One short lock per claim and per settle.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    state: Mutex<State>,
}

#[derive(Debug)]
struct Entry {
    id: Arc<str>,
    owner: OwnerToken,
    /// Released by [`Inflight::mark_released`] (at shutdown): nothing more to settle.
    released: bool,
    /// A release retried behind a claim whose fate is unknown, possibly for the whole
    /// lease: [`Inflight::drained`] does not wait for it (`release_in_flight` still sees it).
    lingering: bool,
}

#[derive(Debug, Default)]
struct State {
    next_key: u64,
    claims: HashMap<u64, Entry>,
    /// Tasks waiting in [`Inflight::drained`] for `claims` to be empty.
    waiters: Vec<Waker>,
}

impl State {
    fn is_drained(&self) -> bool {
        self.claims.values().all(|e| e.lingering)
    }
}

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated (each critical
        // section is one insert or remove): go on with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a claim (made or being made) of `id` by `owner`; returns its key.
    pub(crate) fn register(&self, id: Arc<str>, owner: OwnerToken) -> u64 {
        let mut state = self.lock();
        let key = state.next_key;
        state.next_key += 1;
        state.claims.insert(
            key,
            Entry {
                id,
                owner,
                released: false,
                lingering: false,
            },
        );
        key
    }

    /// Removes a claim once settled; wakes [`drained`](Self::drained) when none is left.
    pub(crate) fn remove(&self, key: u64) {
        self.update(key, |claims, key| {
            claims.remove(&key);
        });
    }

    /// Marks a claim as lingering: [`drained`](Self::drained) no longer waits for it.
    pub(crate) fn set_lingering(&self, key: u64) {
        self.update(key, |claims, key| {
            if let Some(entry) = claims.get_mut(&key) {
                entry.lingering = true;
            }
        });
    }

    fn update(&self, key: u64, change: impl FnOnce(&mut HashMap<u64, Entry>, u64)) {
        let waiters = {
            let mut state = self.lock();
            change(&mut state.claims, key);
            if state.is_drained() {
                std::mem::take(&mut state.waiters)
            } else {
                Vec::new()
            }
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    /// How many claims are held.
    pub(crate) fn len(&self) -> usize {
        self.lock().claims.len()
    }

    /// The claims held now and not yet released at shutdown: key, id, owner.
    pub(crate) fn snapshot(&self) -> Vec<(u64, Arc<str>, OwnerToken)> {
        self.lock()
            .claims
            .iter()
            .filter(|(_, e)| !e.released)
            .map(|(key, e)| (*key, Arc::clone(&e.id), e.owner))
            .collect()
    }

    /// Records that the store released this claim at shutdown.
    pub(crate) fn mark_released(&self, key: u64) {
        if let Some(entry) = self.lock().claims.get_mut(&key) {
            entry.released = true;
        }
    }

    /// Whether the claim was released at shutdown.
    pub(crate) fn is_released(&self, key: u64) -> bool {
        self.lock().claims.get(&key).is_some_and(|e| e.released)
    }

    /// Resolves once no claim is held but lingering ones.
    pub(crate) fn drained(self: &Arc<Self>) -> Drained {
        Drained {
            inflight: Arc::clone(self),
        }
    }
}

/// The future of [`Inflight::drained`].
#[derive(Debug)]
pub(crate) struct Drained {
    inflight: Arc<Inflight>,
}

impl Future for Drained {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.inflight.lock();
        if state.is_drained() {
            return Poll::Ready(());
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;

    use super::*;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn drained_waits_for_the_last_claim_and_is_woken_by_it() {
        let inflight = Arc::new(Inflight::default());
        let a = inflight.register("a".into(), OwnerToken::generate());
        let b = inflight.register("b".into(), OwnerToken::generate());
        assert_eq!(inflight.len(), 2);

        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut drained = std::pin::pin!(inflight.drained());
        assert!(drained.as_mut().poll(&mut cx).is_pending());

        inflight.remove(a);
        assert!(
            !flag.0.load(Ordering::SeqCst),
            "woken with a claim still held"
        );
        assert!(drained.as_mut().poll(&mut cx).is_pending());
        inflight.remove(b);
        assert!(
            flag.0.load(Ordering::SeqCst),
            "not woken when the last claim went"
        );
        assert!(drained.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn drained_does_not_wait_for_lingering_releases() {
        let inflight = Arc::new(Inflight::default());
        let key = inflight.register("a".into(), OwnerToken::generate());
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut drained = std::pin::pin!(inflight.drained());
        assert!(drained.as_mut().poll(&mut cx).is_pending());
        inflight.set_lingering(key);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(drained.as_mut().poll(&mut cx).is_ready());
        assert_eq!(
            inflight.snapshot().len(),
            1,
            "still listed for release_in_flight"
        );
    }

    #[test]
    fn snapshot_lists_what_is_held() {
        let inflight = Inflight::default();
        let owner = OwnerToken::generate();
        let key = inflight.register("m-1".into(), owner);
        assert_eq!(inflight.snapshot(), vec![(key, Arc::from("m-1"), owner)]);
        inflight.mark_released(key);
        assert!(inflight.is_released(key));
        assert!(
            inflight.snapshot().is_empty(),
            "released ones are not listed again"
        );
        assert_eq!(inflight.len(), 1, "but still held until settled");
        inflight.remove(key);
        assert!(inflight.snapshot().is_empty());
    }
}
