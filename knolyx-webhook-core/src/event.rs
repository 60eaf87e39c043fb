//! The Knolyx event model: the delivery envelope, the typed [`Event`] and its payloads.
//!
//! Knolyx sends every event as a JSON envelope:
//!
//! ```json
//! { "id": "af46ec07-de79-40b5-916c-0058b54b2d2b", "type": "PING", "data": { "message": "PING" } }
//! ```
//!
//! [`WebhookEvent::from_slice`] parses such a body into the message id and a typed [`Event`],
//! and keeps the exact bytes of the delivery ([`WebhookEvent::raw`]). Parsing is tolerant
//! where the vendor is loose and strict where it matters:
//!
//! - unknown fields are ignored, at every level;
//! - `data` may be an object or a JSON string that holds an object (the vendor's guide shows
//!   both);
//! - an event type this crate does not know yet is kept as [`Event::Unknown`], with its type
//!   name and its raw `data`, instead of being dropped;
//! - the message id must be a non-empty string of at most [`MAX_ID_LEN`] bytes without
//!   control characters; its format is not checked further (the guide says "uuid", but an
//!   event is never dropped over its id's format);
//! - ids of users, courses and bundles are `i64`, so a user id above 2<sup>53</sup> survives
//!   exactly.
//!
//! ```
//! use knolyx_webhook_core::event::{Event, WebhookEvent};
//!
//! let body = br#"{
//!     "id": "0b6a7f0e-3a52-4b1e-9a43-5f1c2d9e8a10",
//!     "type": "COURSE_COMPLETED",
//!     "data": {
//!         "user": { "id": 9007199254740993, "name": "Ana Popescu", "email": "ana@example.com" },
//!         "course": { "id": 1207, "name": "Introduction to Rust" }
//!     }
//! }"#;
//! let event = WebhookEvent::from_slice(body)?;
//! assert_eq!(event.id(), "0b6a7f0e-3a52-4b1e-9a43-5f1c2d9e8a10");
//! match event.event() {
//!     Event::CourseCompleted(data) => {
//!         assert_eq!(data.user.id, 9_007_199_254_740_993);
//!         assert_eq!(data.course.name, "Introduction to Rust");
//!     }
//!     other => panic!("unexpected event {other:?}"),
//! }
//! // Re-serialised as `{"id":…,"type":…,"data":…}`, it parses back to the same event.
//! let json = serde_json::to_vec(&event)?;
//! assert_eq!(WebhookEvent::from_slice(&json)?.event(), event.event());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The longest message id accepted, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// The deepest nesting of arrays and objects accepted in the raw `data` of an
/// [`Event::Unknown`]: one less than serde_json's own limit (128), so that the data, and the
/// envelope re-serialised around it, still parse into a `serde_json::Value`. Typed data is
/// bounded by serde_json itself, and unknown fields are skipped without recursion, whatever
/// their depth.
pub const MAX_DEPTH: usize = 127;

/// Event type names as Knolyx sends them in the envelope's `type` field.
pub mod types {
    /// Sent when a webhook is created, or on demand, to test the integration.
    pub const PING: &str = "PING";
    /// A student completed a course.
    pub const COURSE_COMPLETED: &str = "COURSE_COMPLETED";
    /// A student started a course.
    pub const COURSE_STARTED: &str = "COURSE_STARTED";
    /// A student bought a course.
    pub const COURSE_PAYMENT_RECEIVED: &str = "COURSE_PAYMENT_RECEIVED";
    /// A student bought a bundle of courses.
    pub const BUNDLE_PAYMENT_RECEIVED: &str = "BUNDLE_PAYMENT_RECEIVED";
}

/// A student, as Knolyx describes them in event payloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// The user's id on the Knolyx platform.
    pub id: i64,
    /// The student's display name.
    pub name: String,
    /// The student's e-mail address.
    pub email: String,
}

impl User {
    /// A user with the given id, name and e-mail address.
    pub fn new(id: i64, name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            email: email.into(),
        }
    }
}

/// A course, as Knolyx describes it in event payloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Course {
    /// The course's id on the Knolyx platform.
    pub id: i64,
    /// The course's name.
    pub name: String,
}

impl Course {
    /// A course with the given id and name.
    pub fn new(id: i64, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
        }
    }
}

/// A bundle of courses, as Knolyx describes it in event payloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bundle {
    /// The bundle's id on the Knolyx platform.
    pub id: i64,
    /// The bundle's URL slug.
    pub slug: String,
    /// The bundle's name.
    pub name: String,
}

impl Bundle {
    /// A bundle with the given id, slug and name.
    pub fn new(id: i64, slug: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id,
            slug: slug.into(),
            name: name.into(),
        }
    }
}

/// The payload of a `PING` event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PingData {
    /// The ping's message; Knolyx sends `"PING"`.
    #[serde(default)]
    pub message: String,
}

impl PingData {
    /// A ping payload with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// The payload of the course events: who, and which course.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CourseData {
    /// The student.
    pub user: User,
    /// The course.
    pub course: Course,
}

impl CourseData {
    /// A course payload.
    pub fn new(user: User, course: Course) -> Self {
        Self { user, course }
    }
}

/// The payload of `BUNDLE_PAYMENT_RECEIVED`: who, and which bundle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BundleData {
    /// The student.
    pub user: User,
    /// The bundle.
    pub bundle: Bundle,
}

impl BundleData {
    /// A bundle payload.
    pub fn new(user: User, bundle: Bundle) -> Self {
        Self { user, bundle }
    }
}

/// An event of a type this crate does not know (yet), kept as it arrived.
#[derive(Clone, Debug)]
pub struct UnknownEvent {
    event_type: String,
    data: Box<RawValue>,
}

impl UnknownEvent {
    /// An unknown event from its type name and its `data` as JSON text.
    ///
    /// Fails when `data_json` is not valid JSON.
    pub fn new(
        event_type: impl Into<String>,
        data_json: impl Into<String>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_type: event_type.into(),
            data: RawValue::from_string(data_json.into())?,
        })
    }

    /// The type name, as sent in the envelope's `type` field.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The `data` of the event as JSON text, exactly as it arrived (a JSON string that held
    /// an object is unwrapped to that object).
    pub fn data_json(&self) -> &str {
        self.data.get()
    }

    /// The `data` of the event as a raw JSON value.
    pub fn data_raw(&self) -> &RawValue {
        &self.data
    }

    /// Decodes the `data` into any deserializable type, such as `serde_json::Value` or a
    /// struct of your own for an event type Knolyx added.
    pub fn data_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }
}

impl PartialEq for UnknownEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event_type == other.event_type && self.data.get() == other.data.get()
    }
}

impl Eq for UnknownEvent {}

/// A Knolyx event, typed by its `type` field.
///
/// The enum is `#[non_exhaustive]`: Knolyx adds event types, and this crate adds variants for
/// them. Until then, they arrive as [`Event::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `PING`: sent when a webhook is created, or on demand.
    Ping(PingData),
    /// `COURSE_COMPLETED`: a student completed a course.
    CourseCompleted(CourseData),
    /// `COURSE_STARTED`: a student started a course.
    CourseStarted(CourseData),
    /// `COURSE_PAYMENT_RECEIVED`: a student bought a course.
    CoursePaymentReceived(CourseData),
    /// `BUNDLE_PAYMENT_RECEIVED`: a student bought a bundle.
    BundlePaymentReceived(BundleData),
    /// An event type this crate does not know, with its type name and raw `data`.
    Unknown(UnknownEvent),
}

impl Event {
    /// The type name as Knolyx sends it, such as `"COURSE_COMPLETED"`.
    pub fn event_type(&self) -> &str {
        match self {
            Event::Ping(_) => types::PING,
            Event::CourseCompleted(_) => types::COURSE_COMPLETED,
            Event::CourseStarted(_) => types::COURSE_STARTED,
            Event::CoursePaymentReceived(_) => types::COURSE_PAYMENT_RECEIVED,
            Event::BundlePaymentReceived(_) => types::BUNDLE_PAYMENT_RECEIVED,
            Event::Unknown(unknown) => unknown.event_type(),
        }
    }

    /// Whether the type is one of the documented ones (not [`Event::Unknown`]).
    pub fn is_known(&self) -> bool {
        !matches!(self, Event::Unknown(_))
    }

    /// Types an event from its type name and its `data` (`None` when the field is absent).
    ///
    /// `data` may be an object or a JSON string that holds one. A known type whose data
    /// does not fit its shape fails with [`ParseErrorKind::InvalidData`].
    pub fn from_parts(event_type: &str, data: Option<&RawValue>) -> Result<Self, ParseError> {
        let unwrapped = match data {
            Some(raw) => unwrap_string_data(raw),
            None => None,
        };
        let data_text: &str = match (&unwrapped, data) {
            (Some(inner), _) => inner,
            (None, Some(raw)) => raw.get(),
            (None, None) => "null",
        };
        fn typed<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ParseError> {
            serde_json::from_str(text).map_err(|e| {
                // Only on failure: parse again, tracking the path, to say which field did
                // not fit (the success path pays nothing for it).
                let mut again = serde_json::Deserializer::from_str(text);
                let path = serde_path_to_error::deserialize::<_, T>(&mut again)
                    .err()
                    .map(|e| data_path(e.path()));
                ParseError::new(ParseErrorKind::InvalidData, e).with_path(path)
            })
        }
        Ok(match event_type {
            types::PING => {
                if data_text == "null" {
                    Event::Ping(PingData::default())
                } else {
                    Event::Ping(typed(data_text)?)
                }
            }
            types::COURSE_COMPLETED => Event::CourseCompleted(typed(data_text)?),
            types::COURSE_STARTED => Event::CourseStarted(typed(data_text)?),
            types::COURSE_PAYMENT_RECEIVED => Event::CoursePaymentReceived(typed(data_text)?),
            types::BUNDLE_PAYMENT_RECEIVED => Event::BundlePaymentReceived(typed(data_text)?),
            other => {
                if !depth_within(data_text.as_bytes(), MAX_DEPTH) {
                    return Err(ParseError::bare(
                        ParseErrorKind::Malformed,
                        "event data nested too deeply",
                    ));
                }
                let data = match (unwrapped, data) {
                    (Some(inner), _) => RawValue::from_string(inner.into_owned())
                        .map_err(|e| ParseError::new(ParseErrorKind::InvalidData, e))?,
                    (None, Some(raw)) => raw.to_owned(),
                    (None, None) => RawValue::from_string("null".to_owned())
                        .map_err(|e| ParseError::new(ParseErrorKind::InvalidData, e))?,
                };
                Event::Unknown(UnknownEvent {
                    event_type: other.to_owned(),
                    data,
                })
            }
        })
    }

    /// Serialises the typed payload alone (the envelope's `data`).
    fn serialize_data<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Event::Ping(d) => d.serialize(serializer),
            Event::CourseCompleted(d)
            | Event::CourseStarted(d)
            | Event::CoursePaymentReceived(d) => d.serialize(serializer),
            Event::BundlePaymentReceived(d) => d.serialize(serializer),
            Event::Unknown(u) => u.data.serialize(serializer),
        }
    }
}

/// When `raw` is a JSON string whose text is a JSON object, that text.
fn unwrap_string_data(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    let inner: Cow<'_, str> = serde_json::from_str(text).ok()?;
    let trimmed = inner.trim_start();
    if trimmed.starts_with('{') && serde_json::from_str::<&RawValue>(&inner).is_ok() {
        Some(inner)
    } else {
        None
    }
}

struct DataOf<'a>(&'a Event);

impl Serialize for DataOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_data(serializer)
    }
}

/// Serialises as `{"type": …, "data": …}`.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 2)?;
        s.serialize_field("type", self.event_type())?;
        s.serialize_field("data", &DataOf(self))?;
        s.end()
    }
}

/// Deserialises from `{"type": …, "data": …}`, with the same rules as the envelope's.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Parts {
            #[serde(rename = "type")]
            event_type: String,
            #[serde(default)]
            data: Option<Box<RawValue>>,
        }
        let parts = Parts::deserialize(deserializer)?;
        Event::from_parts(&parts.event_type, parts.data.as_deref()).map_err(D::Error::custom)
    }
}

/// One delivery from Knolyx: the message id, the typed event and the raw JSON it came from.
///
/// Serialises as the envelope `{"id": …, "type": …, "data": …}` (with `data` always as an
/// object), and deserialises from it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    // Shared with the delivery's claim: one allocation for both.
    id: Arc<str>,
    event: Event,
    raw: Bytes,
}

impl fmt::Debug for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEvent")
            .field("id", &self.id)
            .field("event", &self.event)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

impl WebhookEvent {
    /// Parses a delivery's body, keeping the bytes as [`raw`](Self::raw).
    ///
    /// Fails with [`ParseErrorKind::Malformed`] when the body is not a JSON object with a
    /// string `id` and `type`, [`ParseErrorKind::InvalidId`] for an empty or over-long id,
    /// and [`ParseErrorKind::InvalidData`] when a known type's `data` does not fit its shape.
    pub fn from_slice(body: &[u8]) -> Result<Self, ParseError> {
        Self::from_bytes(Bytes::copy_from_slice(body))
    }

    /// Like [`from_slice`](Self::from_slice), without copying the body.
    pub fn from_bytes(body: Bytes) -> Result<Self, ParseError> {
        Self::parse(body, false)
    }

    /// Parses a body; with `lenient_data`, a known type whose data does not fit its shape
    /// becomes [`Event::Unknown`] instead of an error.
    pub(crate) fn parse(body: Bytes, lenient_data: bool) -> Result<Self, ParseError> {
        // Fast path: one pass over the body, typing `data` as it is read when `type` comes
        // before it (as Knolyx sends it). Anything unusual (escapes in the id, `data` as a
        // string, an error of any kind) takes the exact path below, which decides the error.
        // Invalid UTF-8 anywhere is malformed: serde_json checks the strings it decodes but
        // not those it skips (unknown fields), so the body is checked once, here, and then
        // parsed as text (which spares serde_json its own checks on the fast path).
        let text = std::str::from_utf8(&body)
            .map_err(|_| ParseError::bare(ParseErrorKind::Malformed, "body is not UTF-8"))?;
        if let Ok(fast) = serde_json::from_str::<fast::Envelope<'_>>(text)
            && check_id(fast.id).is_ok()
            && !fast.event_type.is_empty()
        {
            let event = match fast.data {
                Some(fast::Data::Typed(event)) => Some(event),
                Some(fast::Data::Raw(raw)) => Event::from_parts(fast.event_type, Some(raw)).ok(),
                None => Event::from_parts(fast.event_type, None).ok(),
            };
            if let Some(event) = event {
                return Ok(Self {
                    id: Arc::from(fast.id),
                    event,
                    raw: body,
                });
            }
        }
        let (id, event) = {
            let envelope = parse_envelope(&body)?;
            let event = match Event::from_parts(&envelope.event_type, envelope.data) {
                Ok(event) => event,
                Err(e) if lenient_data && e.kind() == ParseErrorKind::InvalidData => {
                    let data = envelope.data.map_or("null", RawValue::get);
                    if !depth_within(data.as_bytes(), MAX_DEPTH) {
                        return Err(ParseError::bare(
                            ParseErrorKind::Malformed,
                            "event data nested too deeply",
                        ));
                    }
                    Event::Unknown(
                        UnknownEvent::new(envelope.event_type.as_ref(), data)
                            .map_err(|e| ParseError::new(ParseErrorKind::InvalidData, e))?,
                    )
                }
                Err(e) => return Err(e.with_context(&envelope.id, &envelope.event_type)),
            };
            (Arc::from(envelope.id.as_ref()), event)
        };
        Ok(Self {
            id,
            event,
            raw: body,
        })
    }

    /// Builds a delivery from its parts; [`raw`](Self::raw) is the serialised envelope.
    ///
    /// Fails with [`ParseErrorKind::InvalidId`] when the id is empty, longer than
    /// [`MAX_ID_LEN`] bytes, or holds a control character.
    pub fn new(id: impl Into<String>, event: Event) -> Result<Self, ParseError> {
        let id: String = id.into();
        check_id(&id)?;
        let mut this = Self {
            id: Arc::from(id),
            event,
            raw: Bytes::new(),
        };
        this.raw = Bytes::from(this.to_json());
        Ok(this)
    }

    /// The message id. Knolyx retransmits a message with the same id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The message id, shared.
    pub(crate) fn shared_id(&self) -> Arc<str> {
        Arc::clone(&self.id)
    }

    /// The type name, such as `"COURSE_COMPLETED"`.
    pub fn event_type(&self) -> &str {
        self.event.event_type()
    }

    /// The typed event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The typed event, by value.
    pub fn into_event(self) -> Event {
        self.event
    }

    /// The bytes of the delivery exactly as received (for an event built with
    /// [`new`](Self::new) or deserialised with serde: its serialised envelope).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The envelope re-serialised as compact JSON: `{"id":…,"type":…,"data":…}`.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising our own types into a Vec cannot fail: every map key is a string.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Parses the envelope alone. `id` and `type` must be strings; `data` is kept raw.
fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, ParseError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::new(ParseErrorKind::Malformed, e))?;
    check_id(&envelope.id)?;
    if envelope.event_type.is_empty() {
        return Err(ParseError::bare(
            ParseErrorKind::Malformed,
            "empty event type",
        ));
    }
    Ok(envelope)
}

/// Whether the nesting of `[` and `{` outside strings stays within `max`. Malformed JSON is
/// left to the parser; this only bounds the depth, in one pass without recursion.
fn depth_within(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn check_id(id: &str) -> Result<(), ParseError> {
    if id.is_empty() {
        Err(ParseError::bare(
            ParseErrorKind::InvalidId,
            "empty message id",
        ))
    } else if id.len() > MAX_ID_LEN {
        Err(ParseError::bare(
            ParseErrorKind::InvalidId,
            "message id longer than 255 bytes",
        ))
    } else if id.chars().any(char::is_control) {
        // A control character (NUL, a newline) has no business in an id, could forge log
        // lines, and cannot be stored by every backend (PostgreSQL's text refuses NUL).
        Err(ParseError::bare(
            ParseErrorKind::InvalidId,
            "message id contains a control character",
        ))
    } else {
        Ok(())
    }
}

impl Serialize for WebhookEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("WebhookEvent", 3)?;
        s.serialize_field("id", self.id())?;
        s.serialize_field("type", self.event.event_type())?;
        s.serialize_field("data", &DataOf(&self.event))?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Owned {
            id: String,
            #[serde(rename = "type")]
            event_type: String,
            #[serde(default)]
            data: Option<Box<RawValue>>,
        }
        let parts = Owned::deserialize(deserializer)?;
        let event = Event::from_parts(&parts.event_type, parts.data.as_deref())
            .map_err(D::Error::custom)?;
        WebhookEvent::new(parts.id, event).map_err(D::Error::custom)
    }
}

/// What was wrong with a delivery's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Not JSON, invalid UTF-8, not an object, or `id`/`type` missing or not strings.
    Malformed,
    /// The message id is empty, longer than [`MAX_ID_LEN`] bytes, or holds a control
    /// character.
    InvalidId,
    /// A known event type whose `data` does not fit its documented shape.
    InvalidData,
}

/// A delivery body that could not be parsed. See [`ParseErrorKind`].
#[derive(Debug)]
pub struct ParseError {
    kind: ParseErrorKind,
    detail: &'static str,
    source: Option<serde_json::Error>,
    context: Option<Box<(String, String)>>,
    path: Option<Box<str>>,
}

/// `data.user.email` for the path `user.email` inside `data`; `data` for its root.
fn data_path(path: &serde_path_to_error::Path) -> Box<str> {
    let inner = path.to_string();
    if inner == "." || inner.is_empty() {
        "data".into()
    } else if inner.starts_with('[') {
        format!("data{inner}").into()
    } else {
        format!("data.{inner}").into()
    }
}

impl ParseError {
    fn new(kind: ParseErrorKind, source: serde_json::Error) -> Self {
        Self {
            kind,
            detail: match kind {
                ParseErrorKind::Malformed => "malformed webhook envelope",
                ParseErrorKind::InvalidId => "invalid message id",
                ParseErrorKind::InvalidData => "event data does not match its type",
            },
            source: Some(source),
            context: None,
            path: None,
        }
    }

    fn bare(kind: ParseErrorKind, detail: &'static str) -> Self {
        Self {
            kind,
            detail,
            source: None,
            context: None,
            path: None,
        }
    }

    fn with_context(mut self, id: &str, event_type: &str) -> Self {
        self.context = Some(Box::new((id.to_owned(), event_type.to_owned())));
        self
    }

    fn with_path(mut self, path: Option<Box<str>>) -> Self {
        self.path = path;
        self
    }

    /// For [`ParseErrorKind::InvalidData`]: where in the envelope the data did not fit its
    /// type, as a path of the documented field names and array indices
    /// (`data.user.email`, `data.items[2].id`; `data` when `data` itself has the wrong
    /// type). It never holds a value from the body.
    ///
    /// ```
    /// use knolyx_webhook_core::WebhookEvent;
    ///
    /// let body = br#"{"id":"m1","type":"COURSE_COMPLETED","data":{"user":{"id":"x"}}}"#;
    /// let error = WebhookEvent::from_slice(body).unwrap_err();
    /// assert_eq!(error.path(), Some("data.user.id"));
    /// ```
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// For [`ParseErrorKind::InvalidData`]: the message id and the event type, which were
    /// read before the data failed.
    pub fn id_and_type(&self) -> Option<(&str, &str)> {
        self.context
            .as_deref()
            .map(|(i, t)| (i.as_str(), t.as_str()))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail)
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The one-pass envelope parser of the fast path.
mod fast {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};
    use serde_json::value::RawValue;

    use super::{BundleData, CourseData, Event, PingData, types};

    pub(super) enum Data<'a> {
        Typed(Event),
        Raw(&'a RawValue),
    }

    pub(super) struct Envelope<'a> {
        pub(super) id: &'a str,
        pub(super) event_type: &'a str,
        pub(super) data: Option<Data<'a>>,
    }

    /// Types `data` by an event type already read.
    struct TypedData<'t>(&'t str);

    impl<'de> DeserializeSeed<'de> for TypedData<'_> {
        type Value = Data<'de>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Ok(Data::Typed(match self.0 {
                types::PING => Event::Ping(PingData::deserialize(d)?),
                types::COURSE_COMPLETED => Event::CourseCompleted(CourseData::deserialize(d)?),
                types::COURSE_STARTED => Event::CourseStarted(CourseData::deserialize(d)?),
                types::COURSE_PAYMENT_RECEIVED => {
                    Event::CoursePaymentReceived(CourseData::deserialize(d)?)
                }
                types::BUNDLE_PAYMENT_RECEIVED => {
                    Event::BundlePaymentReceived(BundleData::deserialize(d)?)
                }
                _ => return Ok(Data::Raw(<&RawValue>::deserialize(d)?)),
            }))
        }
    }

    struct EnvelopeVisitor;

    impl<'de> Visitor<'de> for EnvelopeVisitor {
        type Value = Envelope<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a webhook envelope")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut id, mut event_type, mut data) = (None, None, None);
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "id" if id.is_none() => id = Some(map.next_value::<&'de str>()?),
                    "type" if event_type.is_none() => {
                        event_type = Some(map.next_value::<&'de str>()?)
                    }
                    "data" if data.is_none() => {
                        data = Some(match event_type {
                            Some(t) => map.next_value_seed(TypedData(t))?,
                            None => Data::Raw(map.next_value::<&'de RawValue>()?),
                        })
                    }
                    "id" | "type" | "data" => return Err(de::Error::duplicate_field("id")),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(Envelope {
                id: id.ok_or_else(|| de::Error::missing_field("id"))?,
                event_type: event_type.ok_or_else(|| de::Error::missing_field("type"))?,
                data,
            })
        }
    }

    impl<'de> Deserialize<'de> for Envelope<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(EnvelopeVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_as_string_holding_an_object() {
        let body = br#"{"id":"a","type":"COURSE_STARTED","data":"{\"user\":{\"id\":1,\"name\":\"n\",\"email\":\"e\"},\"course\":{\"id\":2,\"name\":\"c\"}}"}"#;
        let event = WebhookEvent::from_slice(body).unwrap();
        let Event::CourseStarted(data) = event.event() else {
            panic!("{event:?}")
        };
        assert_eq!(data.course.id, 2);
        // Re-serialised, data is an object.
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert!(json["data"].is_object());
    }

    #[test]
    fn unknown_type_keeps_name_and_raw_data() {
        let body =
            br#"{"id":"a","type":"QUIZ_PASSED","data":{"score": 1.50, "x":[1,2]},"extra":true}"#;
        let event = WebhookEvent::from_slice(body).unwrap();
        let Event::Unknown(u) = event.event() else {
            panic!("{event:?}")
        };
        assert_eq!(u.event_type(), "QUIZ_PASSED");
        assert_eq!(u.data_json(), r#"{"score": 1.50, "x":[1,2]}"#);
        assert_eq!(event.raw().as_ref(), body);
        let back: WebhookEvent = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(back.event(), event.event());
    }

    #[test]
    fn unknown_type_with_string_data_that_is_not_an_object_keeps_the_string() {
        let event = WebhookEvent::from_slice(br#"{"id":"a","type":"NEW","data":"hello"}"#).unwrap();
        let Event::Unknown(u) = event.event() else {
            panic!()
        };
        assert_eq!(u.data_json(), r#""hello""#);
    }

    #[test]
    fn fast_and_exact_paths_agree() {
        let bodies: [&[u8]; 6] = [
            br#"{"id":"a","type":"COURSE_STARTED","data":{"user":{"id":1,"name":"n","email":"e"},"course":{"id":2,"name":"c"}}}"#,
            br#"{"data":{"user":{"id":1,"name":"n","email":"e"},"course":{"id":2,"name":"c"}},"type":"COURSE_STARTED","id":"a"}"#,
            br#"{"id":"ab","type":"COURSE_STARTED","data":{"user":{"id":1,"name":"n","email":"e"},"course":{"id":2,"name":"c"}}}"#,
            br#"{"id":"a","type":"PING","data":null}"#,
            br#"{"id":"a","type":"NEW","data":{"k":[1,{"z":null}]},"more":1}"#,
            br#"{"id":"a","type":"BUNDLE_PAYMENT_RECEIVED","data":{"user":{"id":1,"name":"n","email":"e"},"bundle":{"id":3,"slug":"s","name":"b"}}}"#,
        ];
        for body in bodies {
            let fast = WebhookEvent::from_slice(body).unwrap();
            let envelope = parse_envelope(body).unwrap();
            let exact = Event::from_parts(&envelope.event_type, envelope.data).unwrap();
            assert_eq!(fast.event(), &exact, "{}", String::from_utf8_lossy(body));
            assert_eq!(fast.id(), envelope.id);
        }
        // Duplicate fields are refused by both.
        assert!(WebhookEvent::from_slice(br#"{"id":"a","type":"PING","type":"PING"}"#).is_err());
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert!(depth_within(br#"{"a":"[[[[[[\"[[[["}"#, 1));
        assert!(!depth_within(br#"{"a":[1]}"#, 1));
        assert!(depth_within(br#"{"a":[1]}"#, 2));
        let nested = [b"[".repeat(127), b"]".repeat(127)].concat();
        assert!(depth_within(&nested, MAX_DEPTH));
        let deeper = [b"[".repeat(128), b"]".repeat(128)].concat();
        assert!(!depth_within(&deeper, MAX_DEPTH));
    }

    #[test]
    fn ping_without_data_is_a_ping() {
        let event = WebhookEvent::from_slice(br#"{"id":"a","type":"PING"}"#).unwrap();
        assert_eq!(event.event(), &Event::Ping(PingData::default()));
    }

    #[test]
    fn invalid_data_reports_id_and_type() {
        let err = WebhookEvent::from_slice(
            br#"{"id":"x1","type":"COURSE_COMPLETED","data":{"user":"nobody"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::InvalidData);
        assert_eq!(err.id_and_type(), Some(("x1", "COURSE_COMPLETED")));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn invalid_data_names_the_field_path_never_a_value() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"id":"p1","type":"COURSE_COMPLETED","data":{"user":"nobody"}}"#,
                "data.user",
            ),
            (
                br#"{"id":"p2","type":"COURSE_COMPLETED","data":{"user":{"id":1,"name":"n","email":"e"},"course":{"id":"secret-value","name":"c"}}}"#,
                "data.course.id",
            ),
            // `data` as a JSON string holding the object: the same path.
            (
                br#"{"id":"p3","type":"COURSE_STARTED","data":"{\"user\":{\"id\":true}}"}"#,
                "data.user.id",
            ),
            (br#"{"id":"p4","type":"COURSE_STARTED","data":5}"#, "data"),
        ];
        for (body, path) in cases {
            let err = WebhookEvent::from_slice(body).unwrap_err();
            assert_eq!(err.kind(), ParseErrorKind::InvalidData);
            assert_eq!(err.path(), Some(path), "{}", String::from_utf8_lossy(body));
        }
        // Other errors have no path.
        let err = WebhookEvent::from_slice(br#"{"id":"","type":"PING"}"#).unwrap_err();
        assert_eq!(err.path(), None);
    }

    #[test]
    fn new_rejects_bad_ids() {
        let ping = Event::Ping(PingData::new("PING"));
        assert_eq!(
            WebhookEvent::new("", ping.clone()).unwrap_err().kind(),
            ParseErrorKind::InvalidId
        );
        assert!(WebhookEvent::new("x".repeat(255), ping.clone()).is_ok());
        assert_eq!(
            WebhookEvent::new("x".repeat(256), ping).unwrap_err().kind(),
            ParseErrorKind::InvalidId
        );
    }

    #[test]
    fn event_serde_round_trip() {
        let event = Event::BundlePaymentReceived(BundleData::new(
            User::new(i64::MAX, "n", "e"),
            Bundle::new(3, "s", "b"),
        ));
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""type":"BUNDLE_PAYMENT_RECEIVED""#));
        assert!(json.contains("9223372036854775807"));
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}
