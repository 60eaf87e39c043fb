use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// The pipeline's work once the request head has passed: reading the body, claiming the id,
/// running the inner service and settling the claim. Boxed because the store's calls are
/// `async` (trait objects behind `Arc<dyn IdempotencyStore>`).
pub(crate) type BoxPipeline<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`KnolyxWebhook`](crate::KnolyxWebhook).
    ///
    /// Resolves to the inner service's response, or to the pipeline's own (a rejection, a
    /// PING answer, a duplicate). Rejections decided from the request head alone (method,
    /// token, declared `Content-Length`) are ready at once, without an allocation.
    ///
    /// Dropping it while the inner service runs drops the delivery's
    /// [`Settlement`](knolyx_webhook_core::Settlement) unsettled: its claim is released on the
    /// Tokio runtime, so the retransmission runs the handler.
    pub struct ResponseFuture<F>
    where
        F: Future,
    {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F>
    where
        F: Future,
    {
        Ready {
            output: Option<F::Output>,
        },
        Pipeline {
            future: BoxPipeline<F::Output>,
            // The inner service's future runs inside `future`.
            _inner: PhantomData<fn() -> F>,
        },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn ready(output: F::Output) -> Self {
        Self {
            kind: Kind::Ready {
                output: Some(output),
            },
        }
    }

    pub(crate) fn pipeline(future: BoxPipeline<F::Output>) -> Self {
        Self {
            kind: Kind::Pipeline {
                future,
                _inner: PhantomData,
            },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { output } => Poll::Ready(
                output
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
            KindProj::Pipeline { future, .. } => future.as_mut().poll(cx),
        }
    }
}

impl<F: Future> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Ready { .. } => "ready",
            Kind::Pipeline { .. } => "pipeline",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
