use bytes::Bytes;

use crate::event::{
    Bundle, BundleData, Course, CourseData, Event, PingData, UnknownEvent, User, WebhookEvent,
    types,
};

/// A new message id in the form Knolyx uses (a random version-4 UUID).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Still unique within the process.
        b = crate::store::OwnerToken::generate().as_u128().to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Builds a realistic event of any type, for tests and for sending to a local receiver.
///
/// Each constructor fills in plausible data (a new random id, a student, a course or a
/// bundle); change what your test cares about with the setters. A setter that does not
/// apply to the event's type (say, [`bundle`](Self::bundle) on a course event) does nothing.
#[derive(Clone, Debug)]
pub struct TestEvent {
    id: String,
    event: Event,
}

fn student() -> User {
    User::new(48213, "Ana Popescu", "ana.popescu@example.com")
}

fn course() -> Course {
    Course::new(1207, "Introduction to Rust")
}

impl TestEvent {
    fn of(event: Event) -> Self {
        Self {
            id: random_id(),
            event,
        }
    }

    /// A `PING`.
    pub fn ping() -> Self {
        Self::of(Event::Ping(PingData::new("PING")))
    }

    /// A `COURSE_COMPLETED`.
    pub fn course_completed() -> Self {
        Self::of(Event::CourseCompleted(CourseData::new(student(), course())))
    }

    /// A `COURSE_STARTED`.
    pub fn course_started() -> Self {
        Self::of(Event::CourseStarted(CourseData::new(student(), course())))
    }

    /// A `COURSE_PAYMENT_RECEIVED`.
    pub fn course_payment_received() -> Self {
        Self::of(Event::CoursePaymentReceived(CourseData::new(
            student(),
            course(),
        )))
    }

    /// A `BUNDLE_PAYMENT_RECEIVED`.
    pub fn bundle_payment_received() -> Self {
        Self::of(Event::BundlePaymentReceived(BundleData::new(
            User::new(77, "Li Wei", "li.wei@example.net"),
            Bundle::new(31, "data-science-track", "Data Science Track"),
        )))
    }

    /// An event of a type this crate does not know, with `data_json` as its data.
    pub fn unknown(event_type: &str, data_json: &str) -> Result<Self, serde_json::Error> {
        Ok(Self::of(Event::Unknown(UnknownEvent::new(
            event_type, data_json,
        )?)))
    }

    /// An event of the named type: `COURSE_COMPLETED`, or in any case and with `-` for `_`
    /// (`course-completed`). `None` for a name that is not a documented type.
    pub fn of_type(name: &str) -> Option<Self> {
        let normalized = name.trim().to_ascii_uppercase().replace('-', "_");
        Some(match normalized.as_str() {
            types::PING => Self::ping(),
            types::COURSE_COMPLETED => Self::course_completed(),
            types::COURSE_STARTED => Self::course_started(),
            types::COURSE_PAYMENT_RECEIVED => Self::course_payment_received(),
            types::BUNDLE_PAYMENT_RECEIVED => Self::bundle_payment_received(),
            _ => return None,
        })
    }

    /// The documented type names, in the order of the vendor's guide.
    pub fn known_types() -> [&'static str; 5] {
        [
            types::PING,
            types::COURSE_COMPLETED,
            types::COURSE_STARTED,
            types::COURSE_PAYMENT_RECEIVED,
            types::BUNDLE_PAYMENT_RECEIVED,
        ]
    }

    /// Sets the message id (a retransmission has the same id).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the student of a course or bundle event.
    pub fn user(mut self, user: User) -> Self {
        match &mut self.event {
            Event::CourseCompleted(d)
            | Event::CourseStarted(d)
            | Event::CoursePaymentReceived(d) => d.user = user,
            Event::BundlePaymentReceived(d) => d.user = user,
            _ => {}
        }
        self
    }

    /// Sets the course of a course event.
    pub fn course(mut self, course: Course) -> Self {
        if let Event::CourseCompleted(d)
        | Event::CourseStarted(d)
        | Event::CoursePaymentReceived(d) = &mut self.event
        {
            d.course = course;
        }
        self
    }

    /// Sets the bundle of a bundle event.
    pub fn bundle(mut self, bundle: Bundle) -> Self {
        if let Event::BundlePaymentReceived(d) = &mut self.event {
            d.bundle = bundle;
        }
        self
    }

    /// The message id.
    pub fn message_id(&self) -> &str {
        &self.id
    }

    /// The event as the pipeline hands it to a handler.
    ///
    /// # Panics
    ///
    /// When the id set with [`id`](Self::id) is empty or longer than 255 bytes.
    pub fn build(self) -> WebhookEvent {
        match WebhookEvent::new(self.id, self.event) {
            Ok(event) => event,
            Err(e) => panic!("TestEvent: {e}"),
        }
    }

    /// The JSON body Knolyx would send for this event.
    pub fn to_body(&self) -> Bytes {
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            id: &'a str,
            #[serde(flatten)]
            event: &'a Event,
        }
        Bytes::from(
            serde_json::to_vec(&Envelope {
                id: &self.id,
                event: &self.event,
            })
            .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_look_like_uuids_and_differ() {
        let a = random_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, random_id());
    }

    #[test]
    fn every_known_type_builds_and_parses_back() {
        for name in TestEvent::known_types() {
            let t = TestEvent::of_type(name).unwrap().id("x");
            let body = t.to_body();
            let parsed = WebhookEvent::from_slice(&body).unwrap();
            assert_eq!(parsed.event_type(), name);
            assert_eq!(parsed.event(), t.build().event());
        }
        assert!(TestEvent::of_type("course-started").is_some());
        assert!(TestEvent::of_type("NOPE").is_none());
    }
}
