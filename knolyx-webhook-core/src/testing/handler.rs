//! What a unit test of a webhook handler needs: a request as Knolyx signs it, and a claim.

use std::time::Duration;

use bytes::Bytes;

use super::TestEvent;
use crate::pipeline::{DEFAULT_LEASE, DEFAULT_RETENTION};
use crate::store::{ClaimOutcome, IdempotencyStore, OwnerToken};
use crate::{ClaimRef, TOKEN_HEADER};

impl TestEvent {
    /// The request Knolyx would send for this event to `uri`, with `token` in
    /// `X-Webhook-Security-Token`: a `PUT` with a JSON body, for the tower layer (or any
    /// service in front of it). `B` is the body type your service takes: axum's `Body`,
    /// `http_body_util::Full<Bytes>`, `Bytes`…
    ///
    /// ```
    /// use knolyx_webhook_core::testing::TestEvent;
    ///
    /// let event = TestEvent::course_completed();
    /// let request: http::Request<bytes::Bytes> = event.request("/webhooks/knolyx", "test-token");
    /// assert_eq!(request.method(), http::Method::PUT);
    /// assert_eq!(request.headers()["x-webhook-security-token"], "test-token");
    /// assert_eq!(request.body(), &event.to_body());
    /// ```
    ///
    /// # Panics
    ///
    /// When `uri` is not a valid request target or `token` not a valid header value (a
    /// control character): a mistake in the test.
    pub fn request<B: From<Bytes>>(&self, uri: &str, token: &str) -> http::Request<B> {
        match http::Request::put(uri)
            .header(TOKEN_HEADER, token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(B::from(self.to_body()))
        {
            Ok(request) => request,
            Err(e) => panic!("TestEvent::request({uri:?}, token): {e}"),
        }
    }
}

/// A [`ClaimRef`] for `id`, owned by `owner`, as the pipeline hands it to a handler, without
/// touching any store: for a test that calls a handler directly and only checks what it does
/// with the claim. To test a handler that completes the claim in its own transaction, the
/// store must hold the claim: use [`claim`].
///
/// ```
/// use knolyx_webhook_core::store::OwnerToken;
/// use knolyx_webhook_core::testing::claim_ref;
///
/// let claim = claim_ref("m-1", OwnerToken::generate());
/// assert_eq!(claim.id(), "m-1");
/// assert!(!claim.is_marked_completed());
/// ```
pub fn claim_ref(id: &str, owner: OwnerToken) -> ClaimRef {
    ClaimRef::new(id, owner, DEFAULT_RETENTION)
}

/// Claims `id` in `store` (with the receiver's default lease, 60 s) and returns the
/// [`ClaimRef`] the pipeline would hand to the handler (with the default retention, 72 h):
/// then call your handler directly, and check in the store that it completed the claim.
///
/// ```
/// use knolyx_webhook_core::MemoryStore;
/// use knolyx_webhook_core::store::{IdempotencyStore, SettleOutcome};
/// use knolyx_webhook_core::testing::claim;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let claim = claim(&store, "m-1").await;
/// // … your handler completes it, as a store's `complete_in_transaction` would:
/// let done = store.complete(claim.id(), claim.owner(), claim.retention()).await;
/// assert_eq!(done.unwrap(), SettleOutcome::Settled);
/// # }
/// ```
///
/// # Panics
///
/// When the store fails, or `id` is already claimed or completed there (use a new id per
/// test: [`random_id`](super::random_id), or [`TestEvent`]'s own).
pub async fn claim<S: IdempotencyStore + ?Sized>(store: &S, id: &str) -> ClaimRef {
    claim_with_lease(store, id, DEFAULT_LEASE).await
}

/// [`claim`] with a lease of your choice.
///
/// # Panics
///
/// As [`claim`].
pub async fn claim_with_lease<S: IdempotencyStore + ?Sized>(
    store: &S,
    id: &str,
    lease: Duration,
) -> ClaimRef {
    let owner = OwnerToken::generate();
    match store.claim(id, owner, lease).await {
        Ok(ClaimOutcome::Claimed) => claim_ref(id, owner),
        Ok(other) => panic!("testing::claim({id:?}): the store answered {other:?}"),
        Err(e) => panic!("testing::claim({id:?}): {e}"),
    }
}
