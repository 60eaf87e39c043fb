//! The client and its builder.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::error::{Error, MAX_ERROR_BODY, Result, truncate_body};
use crate::model::{CreateWebhook, Redacted, Webhook, WebhookId, webhooks_from_value};
use knolyx_webhook_core::SecretToken;

use crate::redact::redact_url;
use crate::validate::validate_webhook_url;

/// Header carrying the API key.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// Header carrying the project id.
const X_PROJECT_ID: HeaderName = HeaderName::from_static("x-project-id");
/// Path of the webhook collection, below the base URL.
const WEBHOOK_PATH: [&str; 4] = ["public", "api", "v1", "webhook"];

/// Timeout of a whole call unless [`KnolyxClientBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the Knolyx Webhook API.
///
/// Every call sends the `X-Api-Key` and `X-Project-Id` headers. The client is cheap to
/// clone (the connection pool is shared) and can be used from many tasks at once.
///
/// The API key is redacted in `Debug` and is marked sensitive on every request, so the
/// HTTP stack does not log it either. Credentials in the base URL (`user:password@`,
/// sent as HTTP basic authentication) are redacted in `Debug` too ([`redact_url`]).
///
/// See the [crate documentation](crate) for a complete example.
#[derive(Clone)]
pub struct KnolyxClient {
    http: reqwest::Client,
    base_url: Url,
    api_key: HeaderValue,
    project_id: HeaderValue,
    timeout: Option<Duration>,
    check_webhook_urls: bool,
}

impl fmt::Debug for KnolyxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnolyxClient")
            .field("base_url", &redact_url(self.base_url.as_str()))
            .field("api_key", &Redacted)
            .field("project_id", &self.project_id)
            .field("timeout", &self.timeout)
            .field("check_webhook_urls", &self.check_webhook_urls)
            .finish_non_exhaustive()
    }
}

impl KnolyxClient {
    /// A client with default settings; shorthand for
    /// `KnolyxClient::builder(base_url, api_key, project_id).build()`.
    ///
    /// The vendor guide gives only the API's paths, so the base URL (the scheme, host and
    /// any path prefix in front of `/public/api/v1/webhook`) is yours to supply.
    ///
    /// # Errors
    ///
    /// See [`KnolyxClientBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// use knolyx_webhook_client::KnolyxClient;
    ///
    /// let client = KnolyxClient::new("https://knolyx.example.com", "my-api-key", "1234")?;
    /// assert!(!format!("{client:?}").contains("my-api-key"));
    /// # Ok::<(), knolyx_webhook_client::Error>(())
    /// ```
    pub fn new(
        base_url: &str,
        api_key: impl Into<String>,
        project_id: impl Into<String>,
    ) -> Result<Self> {
        Self::builder(base_url, api_key, project_id).build()
    }

    /// A builder, to set a timeout or supply your own [`reqwest::Client`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use knolyx_webhook_client::KnolyxClient;
    ///
    /// let client = KnolyxClient::builder("https://knolyx.example.com", "my-api-key", "1234")
    ///     .timeout(Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), knolyx_webhook_client::Error>(())
    /// ```
    pub fn builder(
        base_url: &str,
        api_key: impl Into<String>,
        project_id: impl Into<String>,
    ) -> KnolyxClientBuilder {
        KnolyxClientBuilder {
            base_url: base_url.to_owned(),
            api_key: api_key.into(),
            project_id: project_id.into(),
            timeout: Some(DEFAULT_TIMEOUT),
            http: None,
            check_webhook_urls: true,
        }
    }

    /// The base URL the API paths are appended to.
    ///
    /// It may carry credentials (`user:password@`): show it with [`redact_url`].
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Creates a webhook: `POST /public/api/v1/webhook` with
    /// `{"name", "url", "securityToken"}`.
    ///
    /// The URL is first checked with [`validate_webhook_url`]; a URL Knolyx would refuse
    /// gives [`Error::InvalidWebhookUrl`] and nothing is sent (unless the client was built
    /// with [`KnolyxClientBuilder::allow_local_webhook_urls`], for a local sandbox). The security token is
    /// checked with the receiver's rule ([`SecretToken::new`]); a token the receiver would
    /// refuse gives [`Error::InvalidSecurityToken`] and nothing is sent. On success Knolyx
    /// sends a `PING` event to the URL.
    ///
    /// The response body is not documented: the returned [`Webhook`] holds whatever the
    /// API returned, with `name` and `url` filled in from the request when the response
    /// lacks them (an empty response gives a webhook without an id).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWebhookUrl`], [`Error::InvalidSecurityToken`], [`Error::Transport`],
    /// [`Error::Status`] or [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use knolyx_webhook_client::{CreateWebhook, KnolyxClient};
    ///
    /// # async fn run(client: KnolyxClient) -> Result<(), knolyx_webhook_client::Error> {
    /// let request = CreateWebhook::with_generated_token("orders", "https://hooks.example.com/knolyx");
    /// let webhook = client.create(&request).await?;
    /// println!("created {:?}; configure the receiver with the token now", webhook.id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create(&self, request: &CreateWebhook) -> Result<Webhook> {
        if self.check_webhook_urls {
            validate_webhook_url(request.url())?;
        }
        SecretToken::new(request.security_token()).map_err(Error::InvalidSecurityToken)?;
        let url = self.endpoint(&[])?;
        let reply = self.execute(Method::POST, url, Some(request)).await?;
        let mut webhook = if reply.is_empty() {
            Webhook::default()
        } else {
            reply.decode(Webhook::from_value)?
        };
        if webhook.name.is_none() {
            webhook.name = Some(request.name().to_owned());
        }
        if webhook.url.is_none() {
            webhook.url = Some(request.url().to_owned());
        }
        Ok(webhook)
    }

    /// Lists the project's webhooks: `GET /public/api/v1/webhook`.
    ///
    /// Accepts a bare JSON array, or an object wrapping one under a key such as `data`,
    /// `content`, `items` or `webhooks`; an empty body is an empty list.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`], [`Error::Status`] or [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: knolyx_webhook_client::KnolyxClient) -> Result<(), knolyx_webhook_client::Error> {
    /// for webhook in client.list().await? {
    ///     println!("{:?} {:?} {:?}", webhook.id, webhook.name, webhook.url);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self) -> Result<Vec<Webhook>> {
        let url = self.endpoint(&[])?;
        let reply = self.execute::<()>(Method::GET, url, None).await?;
        if reply.is_empty() {
            return Ok(Vec::new());
        }
        reply.decode(webhooks_from_value)
    }

    /// Fetches one webhook: `GET /public/api/v1/webhook/{id}`.
    ///
    /// The returned webhook's `id` is the requested one when the response lacks it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWebhookId`], [`Error::Transport`], [`Error::Status`] (a missing
    /// webhook is [`Error::is_not_found`]) or [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: knolyx_webhook_client::KnolyxClient) -> Result<(), knolyx_webhook_client::Error> {
    /// let webhook = client.get(42).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, id: impl Into<WebhookId>) -> Result<Webhook> {
        let id = id.into();
        let url = self.endpoint(&[check_id(&id)?])?;
        let reply = self.execute::<()>(Method::GET, url, None).await?;
        let mut webhook = reply.decode(Webhook::from_value)?;
        if webhook.id.is_none() {
            webhook.id = Some(id);
        }
        Ok(webhook)
    }

    /// Deletes a webhook: `DELETE /public/api/v1/webhook/{id}`.
    ///
    /// Any 2xx answer is success, whatever its body (or lack of one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWebhookId`], [`Error::Transport`] or [`Error::Status`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: knolyx_webhook_client::KnolyxClient) -> Result<(), knolyx_webhook_client::Error> {
    /// client.delete("42").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, id: impl Into<WebhookId>) -> Result<()> {
        let id = id.into();
        let url = self.endpoint(&[check_id(&id)?])?;
        self.execute::<()>(Method::DELETE, url, None).await?;
        Ok(())
    }

    /// Asks Knolyx to send a `PING` event to every webhook of the project:
    /// `POST /public/api/v1/webhook/ping`.
    ///
    /// Any 2xx answer is success, whatever its body (or lack of one).
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] or [`Error::Status`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: knolyx_webhook_client::KnolyxClient) -> Result<(), knolyx_webhook_client::Error> {
    /// client.ping_all().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ping_all(&self) -> Result<()> {
        let url = self.endpoint(&["ping"])?;
        self.execute::<()>(Method::POST, url, None).await?;
        Ok(())
    }

    /// Asks Knolyx to send a `PING` event to one webhook:
    /// `POST /public/api/v1/webhook/{id}/ping`.
    ///
    /// Any 2xx answer is success, whatever its body (or lack of one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWebhookId`], [`Error::Transport`] or [`Error::Status`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: knolyx_webhook_client::KnolyxClient) -> Result<(), knolyx_webhook_client::Error> {
    /// client.ping(42).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ping(&self, id: impl Into<WebhookId>) -> Result<()> {
        let id = id.into();
        let url = self.endpoint(&[check_id(&id)?, "ping"])?;
        self.execute::<()>(Method::POST, url, None).await?;
        Ok(())
    }

    /// The URL of `/public/api/v1/webhook` followed by the segments of `tail`, each
    /// percent-encoded as one segment.
    fn endpoint(&self, tail: &[&str]) -> Result<Url> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidBaseUrl {
                reason: "the base URL cannot take a path",
                source: None,
            })?
            .pop_if_empty()
            .extend(WEBHOOK_PATH)
            .extend(tail);
        Ok(url)
    }

    async fn execute<B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<Reply> {
        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(X_API_KEY, self.api_key.clone())
            .header(X_PROJECT_ID, self.project_id.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = body {
            request = request.json(body);
        }

        let transport = |method: &Method, path: &str, source| Error::Transport {
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(source) => {
                tracing::debug!(%method, %path, error = %source, "Knolyx API request failed");
                return Err(transport(&method, &path, source));
            }
        };
        let status = response.status();
        tracing::debug!(%method, %path, %status, "Knolyx API answered");

        if !status.is_success() {
            // Keep what the API said, but never more than MAX_ERROR_BODY, and let a
            // broken body not hide the status.
            let mut body = Vec::new();
            while body.len() <= MAX_ERROR_BODY {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => break,
                }
            }
            let (body, truncated) = truncate_body(&body);
            return Err(Error::Status {
                method,
                path,
                status,
                body,
                truncated,
            });
        }

        match response.bytes().await {
            Ok(body) => Ok(Reply {
                method,
                path,
                status,
                body,
            }),
            Err(source) => Err(transport(&method, &path, source)),
        }
    }
}

/// A successful response, read whole.
struct Reply {
    method: Method,
    path: String,
    status: StatusCode,
    body: bytes::Bytes,
}

impl Reply {
    fn is_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }

    fn decode<T>(self, shape: impl FnOnce(Value) -> serde_json::Result<T>) -> Result<T> {
        match serde_json::from_slice::<Value>(&self.body).and_then(shape) {
            Ok(value) => Ok(value),
            Err(source) => Err(Error::Decode {
                method: self.method,
                path: self.path,
                status: self.status,
                body: truncate_body(&self.body).0,
                source,
            }),
        }
    }
}

/// Refuses ids that would not name a path segment of their own. Everything else is
/// percent-encoded as one segment by [`Url::path_segments_mut`].
fn check_id(id: &WebhookId) -> Result<&str> {
    let raw = id.as_str();
    if raw.is_empty() || raw == "." || raw == ".." {
        return Err(Error::InvalidWebhookId { id: raw.to_owned() });
    }
    Ok(raw)
}

/// Builds a [`KnolyxClient`]; made by [`KnolyxClient::builder`].
///
/// The API key, and any credentials in the base URL, are redacted in `Debug`.
#[must_use = "a builder does nothing until `build` is called"]
pub struct KnolyxClientBuilder {
    base_url: String,
    api_key: String,
    project_id: String,
    timeout: Option<Duration>,
    http: Option<reqwest::Client>,
    check_webhook_urls: bool,
}

impl fmt::Debug for KnolyxClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnolyxClientBuilder")
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &Redacted)
            .field("project_id", &self.project_id)
            .field("timeout", &self.timeout)
            .field("http", &self.http.as_ref().map(|_| "custom"))
            .field("check_webhook_urls", &self.check_webhook_urls)
            .finish()
    }
}

impl KnolyxClientBuilder {
    /// Limits each call, from connecting until the response body is read
    /// (default [`DEFAULT_TIMEOUT`]). Applies to a client given with
    /// [`http_client`](Self::http_client) too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Removes the per-call timeout; only the timeouts of the HTTP client remain.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Lets [`create`](KnolyxClient::create) send webhook URLs that Knolyx refuses
    /// (`http`, `localhost`, loopback), for a local stand-in of the API such as
    /// `knolyx-webhook sandbox`, which accepts them. Off by default: against Knolyx, the
    /// URL is checked with [`validate_webhook_url`] before anything is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use knolyx_webhook_client::KnolyxClient;
    ///
    /// // A client of the sandbox on this machine (`knolyx-webhook sandbox`).
    /// let client = KnolyxClient::builder("http://127.0.0.1:8900", "dev-key", "1")
    ///     .allow_local_webhook_urls(true)
    ///     .build()?;
    /// # Ok::<(), knolyx_webhook_client::Error>(())
    /// ```
    pub fn allow_local_webhook_urls(mut self, allow: bool) -> Self {
        self.check_webhook_urls = !allow;
        self
    }

    /// Uses your own [`reqwest::Client`] (for proxies, custom roots, connection pool
    /// settings, or sharing a pool with the rest of your application).
    ///
    /// The default client follows no redirects, so the API key is never sent to another
    /// host; a client of your own follows its own redirect policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use knolyx_webhook_client::KnolyxClient;
    ///
    /// let http = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()
    ///     .expect("a client");
    /// let client = KnolyxClient::builder("https://knolyx.example.com", "my-api-key", "1234")
    ///     .http_client(http)
    ///     .build()?;
    /// # Ok::<(), knolyx_webhook_client::Error>(())
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidBaseUrl`] when the base URL does not parse, is not `http` or
    ///   `https`, has no host, or has a query or fragment.
    /// - [`Error::InvalidHeader`] when the API key or project id is not a valid header
    ///   value (e.g. contains a line break).
    /// - [`Error::ClientBuild`] when the default HTTP client cannot be built.
    pub fn build(self) -> Result<KnolyxClient> {
        let base_url = parse_base_url(&self.base_url)?;

        let mut api_key =
            HeaderValue::from_str(&self.api_key).map_err(|source| Error::InvalidHeader {
                header: "X-Api-Key",
                source,
            })?;
        api_key.set_sensitive(true);
        let project_id =
            HeaderValue::from_str(&self.project_id).map_err(|source| Error::InvalidHeader {
                header: "X-Project-Id",
                source,
            })?;

        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .user_agent(concat!(
                    env!("CARGO_PKG_NAME"),
                    "/",
                    env!("CARGO_PKG_VERSION")
                ))
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(Error::ClientBuild)?,
        };

        Ok(KnolyxClient {
            http,
            base_url,
            api_key,
            project_id,
            timeout: self.timeout,
            check_webhook_urls: self.check_webhook_urls,
        })
    }
}

fn parse_base_url(text: &str) -> Result<Url> {
    let invalid = |reason| Error::InvalidBaseUrl {
        reason,
        source: None,
    };
    let url = Url::parse(text).map_err(|source| Error::InvalidBaseUrl {
        reason: "not a URL",
        source: Some(source),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("the scheme must be https (or http)"));
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(invalid("the URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_segment() {
        let client = KnolyxClient::new("https://k.example.com", "key", "1").unwrap();
        let id = WebhookId::from("a/b?c#d%e f\\g");
        let url = client.endpoint(&[check_id(&id).unwrap()]).unwrap();
        assert_eq!(
            url.path(),
            "/public/api/v1/webhook/a%2Fb%3Fc%23d%25e%20f%5Cg"
        );
        assert_eq!(url.query(), None);
        for bad in ["", ".", ".."] {
            assert!(matches!(
                check_id(&bad.into()),
                Err(Error::InvalidWebhookId { .. })
            ));
        }
    }

    #[test]
    fn endpoints_keep_a_base_path() {
        let client = KnolyxClient::new("https://k.example.com/prefix/", "key", "1").unwrap();
        let url = client.endpoint(&["7", "ping"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://k.example.com/prefix/public/api/v1/webhook/7/ping"
        );
        let client = KnolyxClient::new("https://k.example.com", "key", "1").unwrap();
        let url = client.endpoint(&[]).unwrap();
        assert_eq!(url.as_str(), "https://k.example.com/public/api/v1/webhook");
    }

    #[test]
    fn debug_hides_the_credentials_of_the_base_url() {
        let builder = KnolyxClient::builder(
            "https://api-user:base-pa55@k.example.com/prefix/",
            "key",
            "1",
        );
        let client = builder.build().unwrap();
        let builder = KnolyxClient::builder("https://api-user:base-pa55@k.example.com/", "k", "1");
        for shown in [format!("{client:?}"), format!("{builder:?}")] {
            assert!(!shown.contains("base-pa55"), "{shown}");
            assert!(!shown.contains("api-user"), "{shown}");
            assert!(shown.contains("https://***@k.example.com/"), "{shown}");
        }
    }

    #[test]
    fn bad_base_urls() {
        for bad in [
            "not a url",
            "ftp://k.example.com",
            "mailto:a@b.c",
            "https://k.example.com/?q=1",
        ] {
            assert!(
                matches!(
                    KnolyxClient::new(bad, "key", "1"),
                    Err(Error::InvalidBaseUrl { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            KnolyxClient::new("https://k.example.com", "key\n", "1"),
            Err(Error::InvalidHeader {
                header: "X-Api-Key",
                ..
            })
        ));
    }
}
