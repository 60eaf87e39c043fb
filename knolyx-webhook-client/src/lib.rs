//! A typed async client of the Knolyx Webhook API.
//!
//! Knolyx delivers events (`PING`, `COURSE_COMPLETED`, …) to the webhooks a project
//! registers through its Webhook API. This crate calls that API:
//!
//! | call | request |
//! |---|---|
//! | [`KnolyxClient::create`] | `POST /public/api/v1/webhook` with `{"name", "url", "securityToken"}` |
//! | [`KnolyxClient::list`] | `GET /public/api/v1/webhook` |
//! | [`KnolyxClient::get`] | `GET /public/api/v1/webhook/{id}` |
//! | [`KnolyxClient::delete`] | `DELETE /public/api/v1/webhook/{id}` |
//! | [`KnolyxClient::ping_all`] | `POST /public/api/v1/webhook/ping` |
//! | [`KnolyxClient::ping`] | `POST /public/api/v1/webhook/{id}/ping` |
//!
//! Every call sends the `X-Api-Key` and `X-Project-Id` headers. The vendor guide gives
//! only these paths, so the base URL in front of them is configurable and required.
//!
//! # Security tokens
//!
//! Knolyx sends a security token, chosen by you, in the `X-Webhook-Security-Token`
//! header of every delivery. [`generate_security_token`] makes one (256 bits from the
//! operating system's secure generator, base64url); give the same token to
//! [`CreateWebhook`] and to your receiver. [`KnolyxClient::create`] refuses, before
//! sending anything, a token the receiver would refuse
//! ([`knolyx_webhook_core::SecretToken`]'s rule: not empty, visible ASCII with spaces
//! only inside), since no delivery could ever match it. Secrets never appear in `Debug`
//! output: the client redacts the API key, [`CreateWebhook`] and [`Webhook`] redact the
//! token, and URLs are shown without their `user:password@` part ([`redact_url`]).
//!
//! # Webhook URLs
//!
//! Knolyx only accepts `https` URLs that do not point at the local machine.
//! [`KnolyxClient::create`] checks the URL the same way first, with
//! [`validate_webhook_url`], and says precisely why one is refused
//! ([`InvalidWebhookUrlReason`]). To test locally, expose the receiver through a tunnel
//! or a reachable dev environment, or run `knolyx-webhook sandbox`, a local stand-in of
//! the API that accepts `http://localhost` URLs, with a client built with
//! [`KnolyxClientBuilder::allow_local_webhook_urls`].
//!
//! # Responses
//!
//! The guide documents no response body, so responses are decoded tolerantly: a
//! [`WebhookId`] may arrive as a number or a string, every field of [`Webhook`] is
//! optional and unknown fields are kept in [`Webhook::extra`], a list may be a bare array
//! or an object wrapping one (`data`, `content`, `items`, `webhooks`, …), and an empty
//! 2xx body is success for delete and ping. Failures are one [`Error`] enum: transport
//! failure, non-2xx status with the body the API returned, undecodable body, and
//! invalid URLs or ids.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use knolyx_webhook_client::{CreateWebhook, Error, KnolyxClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let client = KnolyxClient::builder(
//!     "https://knolyx.example.com",            // your Knolyx API base URL
//!     std::env::var("KNOLYX_API_KEY").unwrap_or_default(),
//!     std::env::var("KNOLYX_PROJECT_ID").unwrap_or_default(),
//! )
//! .timeout(Duration::from_secs(15))
//! .build()?;
//!
//! // Register the endpoint with a fresh token; Knolyx pings it right away.
//! let request = CreateWebhook::with_generated_token(
//!     "course events",
//!     "https://hooks.example.com/webhooks/knolyx",
//! );
//! let webhook = client.create(&request).await?;
//! // Give `request.security_token()` to the receiver (e.g. KNOLYX_WEBHOOK_TOKEN).
//!
//! for webhook in client.list().await? {
//!     println!("{} {:?} {:?}", webhook.id.map(|id| id.to_string()).unwrap_or_default(),
//!         webhook.name, webhook.url);
//! }
//!
//! if let Some(id) = webhook.id {
//!     client.ping(&id).await?;          // one more PING to this webhook
//!     match client.get(&id).await {
//!         Ok(found) => println!("{found:?}"),
//!         Err(e) if e.is_not_found() => println!("gone already"),
//!         Err(e) => return Err(e),
//!     }
//!     client.delete(&id).await?;
//! }
//! client.ping_all().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # TLS
//!
//! HTTPS uses rustls with the `ring` provider and the webpki root certificates; no
//! OpenSSL is needed. To use other settings, pass your own [`reqwest::Client`] to
//! [`KnolyxClientBuilder::http_client`].

mod client;
mod error;
mod model;
mod redact;
mod token;
mod validate;

pub use client::{DEFAULT_TIMEOUT, KnolyxClient, KnolyxClientBuilder};
pub use error::{Error, MAX_ERROR_BODY, Result};
pub use model::{CreateWebhook, Webhook, WebhookId};
pub use redact::redact_url;
pub use token::generate_security_token;
pub use validate::{InvalidWebhookUrl, InvalidWebhookUrlReason, validate_webhook_url};

/// Why a security token was refused, for [`Error::InvalidSecurityToken`]; the receiver's
/// own type.
pub use knolyx_webhook_core::token::InvalidToken;

/// Re-export of the HTTP client crate, for [`KnolyxClientBuilder::http_client`].
pub use reqwest;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
