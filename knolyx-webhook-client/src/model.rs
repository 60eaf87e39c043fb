//! Request and response types of the Webhook API.
//!
//! The vendor guide documents the create request but none of the response bodies, so the
//! response types are decoded tolerantly: every documented-looking field is optional, and
//! whatever else the API returns is kept in [`Webhook::extra`].

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::redact::redact_url;
use crate::token::generate_security_token;

/// The identifier Knolyx gives a webhook.
///
/// The API may return it as a JSON number or a JSON string; both decode into this type,
/// which keeps the text (`42` and `"42"` give the same id). It displays as that text and
/// serializes as a string.
///
/// # Examples
///
/// ```
/// use knolyx_webhook_client::WebhookId;
///
/// let from_number: WebhookId = serde_json::from_str("42").unwrap();
/// let from_string: WebhookId = serde_json::from_str("\"42\"").unwrap();
/// assert_eq!(from_number, from_string);
/// assert_eq!(from_number, WebhookId::from(42));
/// assert_eq!(from_number.to_string(), "42");
/// assert_eq!(from_number.as_i64(), Some(42));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookId(String);

impl WebhookId {
    /// Makes an id from its text.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text, exactly as it goes into a request path (before percent-encoding).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an integer, when its text is one.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// Consumes the id, returning its text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookId").field(&self.0).finish()
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for WebhookId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for WebhookId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for WebhookId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<&WebhookId> for WebhookId {
    fn from(id: &WebhookId) -> Self {
        id.clone()
    }
}

impl From<i64> for WebhookId {
    fn from(id: i64) -> Self {
        Self(id.to_string())
    }
}

impl From<u64> for WebhookId {
    fn from(id: u64) -> Self {
        Self(id.to_string())
    }
}

impl From<i32> for WebhookId {
    fn from(id: i32) -> Self {
        Self(id.to_string())
    }
}

impl From<u32> for WebhookId {
    fn from(id: u32) -> Self {
        Self(id.to_string())
    }
}

impl FromStr for WebhookId {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl Serialize for WebhookId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WebhookId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl Visitor<'_> for IdVisitor {
            type Value = WebhookId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a webhook id (a number or a string)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<WebhookId, E> {
                Ok(WebhookId::from(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<WebhookId, E> {
                Ok(WebhookId(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WebhookId, E> {
                Ok(WebhookId::from(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WebhookId, E> {
                Ok(WebhookId::from(v))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WebhookId, E> {
                Ok(WebhookId(v.to_string()))
            }
        }

        deserializer.deserialize_any(IdVisitor)
    }
}

/// A webhook as the API returns it.
///
/// The guide documents no response body, so every field is optional and a successful call
/// never fails because one is missing: fields the API does not send are `None`, fields
/// this crate does not know are kept in [`extra`](Self::extra). A field of an unexpected
/// JSON type (a `name` that is a number, say) is left in `extra` too.
///
/// A `securityToken` returned by the API is taken out of `extra` into
/// [`security_token`](Self::security_token), which is redacted in `Debug` and never
/// serialized. `Debug` shows the URL without its credentials
/// ([`redact_url`](crate::redact_url)); `Serialize` keeps the URL as it is.
///
/// `Serialize` writes `id`, `name`, `url` and the extra fields back out (for printing or
/// storing); `Deserialize` accepts what [`KnolyxClient`](crate::KnolyxClient) accepts.
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Webhook {
    /// The webhook's id (from `id`, or `webhookId`), when the API returned one.
    pub id: Option<WebhookId>,
    /// The webhook's name.
    pub name: Option<String>,
    /// The URL Knolyx delivers events to.
    pub url: Option<String>,
    /// The security token, if the API echoes it back. Redacted in `Debug`, never
    /// serialized.
    pub security_token: Option<String>,
    /// Every other field of the response object, as returned.
    pub extra: Map<String, Value>,
}

impl Webhook {
    /// Builds a webhook from a JSON object, taking the known fields out of it.
    pub(crate) fn from_map(mut map: Map<String, Value>) -> Self {
        let id = take_id(&mut map, "id").or_else(|| take_id(&mut map, "webhookId"));
        let name = take_string(&mut map, "name");
        let url = take_string(&mut map, "url");
        let security_token = take_string(&mut map, "securityToken");
        Self {
            id,
            name,
            url,
            security_token,
            extra: map,
        }
    }

    /// Builds a webhook from any JSON value the API may return for one webhook: an
    /// object, an object wrapping one (`{"data": {…}}`), or a bare id.
    pub(crate) fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        match value {
            Value::Object(map) => Ok(Self::from_map(unwrap_single(map))),
            Value::Number(n) => Ok(Self {
                id: Some(WebhookId(n.to_string())),
                ..Self::default()
            }),
            Value::String(s) => Ok(Self {
                id: Some(WebhookId(s)),
                ..Self::default()
            }),
            other => Err(de::Error::custom(format_args!(
                "expected a webhook object, found {}",
                json_kind(&other)
            ))),
        }
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| Redacted),
            )
            .field("extra", &self.extra)
            .finish()
    }
}

impl Serialize for Webhook {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(id) = &self.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(name) = &self.name {
            map.serialize_entry("name", name)?;
        }
        if let Some(url) = &self.url {
            map.serialize_entry("url", url)?;
        }
        for (key, value) in &self.extra {
            let shadowed = match key.as_str() {
                "id" => self.id.is_some(),
                "name" => self.name.is_some(),
                "url" => self.url.is_some(),
                "securityToken" => true,
                _ => false,
            };
            if !shadowed {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Webhook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(de::Error::custom)
    }
}

/// The body of a create call: `{"name", "url", "securityToken"}`.
///
/// The security token is redacted in `Debug`, and so are credentials in the URL
/// ([`redact_url`](crate::redact_url)).
///
/// # Examples
///
/// ```
/// use knolyx_webhook_client::CreateWebhook;
///
/// let request = CreateWebhook::with_generated_token("orders", "https://hooks.example.com/knolyx");
/// // Keep the token for the receiver; it is not shown by `Debug`.
/// let token = request.security_token().to_owned();
/// assert!(!format!("{request:?}").contains(&token));
/// ```
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    name: String,
    url: String,
    security_token: String,
}

impl CreateWebhook {
    /// A create request with the given name, URL and security token.
    ///
    /// The URL and the token are checked by
    /// [`KnolyxClient::create`](crate::KnolyxClient::create) (see
    /// [`validate_webhook_url`](crate::validate_webhook_url) and
    /// [`Error::InvalidSecurityToken`](crate::Error::InvalidSecurityToken)) and sent as
    /// given.
    pub fn new(
        name: impl Into<String>,
        url: impl Into<String>,
        security_token: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            security_token: security_token.into(),
        }
    }

    /// A create request with a fresh token from
    /// [`generate_security_token`](crate::generate_security_token).
    ///
    /// Read the token back with [`security_token`](Self::security_token) and give it to
    /// the receiver: it is the only copy.
    pub fn with_generated_token(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(name, url, generate_security_token())
    }

    /// The webhook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL Knolyx will deliver events to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The security token Knolyx will send in `X-Webhook-Security-Token`.
    pub fn security_token(&self) -> &str {
        &self.security_token
    }
}

impl fmt::Debug for CreateWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateWebhook")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("security_token", &Redacted)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Keys under which an API may wrap a single object or a list.
const WRAPPER_KEYS: [&str; 8] = [
    "data", "content", "items", "webhooks", "results", "records", "webhook", "result",
];

/// Unwraps `{"data": {…}}`-style envelopes around one webhook: only when the object has
/// no id of its own and exactly one wrapper key holds an object.
fn unwrap_single(map: Map<String, Value>) -> Map<String, Value> {
    if map.contains_key("id") || map.contains_key("webhookId") {
        return map;
    }
    let mut wrapped = WRAPPER_KEYS
        .iter()
        .filter(|key| map.get(**key).is_some_and(Value::is_object));
    match (wrapped.next(), wrapped.next()) {
        (Some(key), None) => {
            let key = *key;
            let mut map = map;
            match map.remove(key) {
                Some(Value::Object(inner)) => unwrap_single(inner),
                _ => map,
            }
        }
        _ => map,
    }
}

/// Decodes a list of webhooks from a bare array, or from an object wrapping one under a
/// key such as `data`, `content`, `items` or `webhooks` (one level of nesting more is
/// accepted too, as in `{"data": {"content": […]}}`). `null` is an empty list.
pub(crate) fn webhooks_from_value(value: Value) -> Result<Vec<Webhook>, serde_json::Error> {
    let items = find_list(value, 2)?;
    items.into_iter().map(Webhook::from_value).collect()
}

fn find_list(value: Value, depth: u8) -> Result<Vec<Value>, serde_json::Error> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        Value::Object(mut map) => {
            for key in WRAPPER_KEYS {
                match map.get(key) {
                    Some(Value::Array(_) | Value::Null) => {
                        return find_list(map.remove(key).unwrap_or(Value::Null), 0);
                    }
                    Some(Value::Object(_)) if depth > 0 => {
                        if let Some(inner) = map.remove(key) {
                            return find_list(inner, depth - 1);
                        }
                    }
                    _ => {}
                }
            }
            // An envelope under another name: the only array in the object.
            let mut arrays = map.iter().filter(|(_, v)| v.is_array()).map(|(k, _)| k);
            if let (Some(key), None) = (arrays.next(), arrays.next()) {
                let key = key.clone();
                return find_list(map.remove(&key).unwrap_or(Value::Null), 0);
            }
            Err(de::Error::custom(
                "expected a list of webhooks: an array, or an object holding one",
            ))
        }
        other => Err(de::Error::custom(format_args!(
            "expected a list of webhooks, found {}",
            json_kind(&other)
        ))),
    }
}

fn take_id(map: &mut Map<String, Value>, key: &str) -> Option<WebhookId> {
    let id = match map.get(key)? {
        Value::String(s) if !s.is_empty() => WebhookId(s.clone()),
        Value::Number(n) => WebhookId(n.to_string()),
        _ => return None,
    };
    map.remove(key);
    Some(id)
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(_) => match map.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_shapes() {
        let bare = json!([{"id": 1}, {"id": "2"}]);
        let wrapped = json!({"data": [{"id": 1}, {"id": "2"}], "total": 2});
        let nested = json!({"data": {"content": [{"id": 1}, {"id": "2"}], "page": 0}});
        let other = json!({"entries": [{"id": 1}, {"id": "2"}], "total": 2});
        for value in [bare, wrapped, nested, other] {
            let list = webhooks_from_value(value).unwrap();
            let ids: Vec<_> = list
                .iter()
                .map(|w| w.id.as_ref().unwrap().as_str())
                .collect();
            assert_eq!(ids, ["1", "2"]);
        }
        assert!(webhooks_from_value(Value::Null).unwrap().is_empty());
        assert!(webhooks_from_value(json!({"total": 0})).is_err());
        assert!(webhooks_from_value(json!("nope")).is_err());
    }

    #[test]
    fn single_shapes() {
        let plain = Webhook::from_value(json!({"id": 7, "name": "n", "active": true})).unwrap();
        assert_eq!(plain.id, Some(WebhookId::from(7)));
        assert_eq!(plain.name.as_deref(), Some("n"));
        assert_eq!(plain.extra.get("active"), Some(&json!(true)));

        let wrapped = Webhook::from_value(json!({"data": {"webhookId": "a-b"}})).unwrap();
        assert_eq!(wrapped.id, Some(WebhookId::from("a-b")));

        let bare = Webhook::from_value(json!(12)).unwrap();
        assert_eq!(bare.id, Some(WebhookId::from(12)));

        let odd = Webhook::from_value(json!({"name": 5})).unwrap();
        assert_eq!(odd.name, None);
        assert_eq!(odd.extra.get("name"), Some(&json!(5)));

        assert!(Webhook::from_value(json!(true)).is_err());
    }

    #[test]
    fn debug_hides_the_credentials_of_a_url() {
        let url = "https://hook-user:hook-pa55@hooks.example.com/k";
        let request = CreateWebhook::new("n", url, "token");
        let webhook = Webhook::from_value(json!({"id": 1, "url": url})).unwrap();
        for shown in [format!("{request:?}"), format!("{webhook:?}")] {
            assert!(!shown.contains("hook-pa55"), "{shown}");
            assert!(!shown.contains("hook-user"), "{shown}");
            assert!(shown.contains("https://***@hooks.example.com/k"), "{shown}");
        }
        // The data itself is kept as given.
        assert_eq!(request.url(), url);
        assert_eq!(webhook.url.as_deref(), Some(url));
    }

    #[test]
    fn token_is_redacted_and_not_serialized() {
        let w = Webhook::from_value(json!({"id": 1, "securityToken": "s3cr3t-value"})).unwrap();
        assert_eq!(w.security_token.as_deref(), Some("s3cr3t-value"));
        assert!(!format!("{w:?}").contains("s3cr3t-value"));
        assert!(!serde_json::to_string(&w).unwrap().contains("s3cr3t-value"));
    }
}
