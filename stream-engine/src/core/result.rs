//! What the engine emits: window results and late events.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::time::{MINUTE_MS, format_rfc3339_ms};

/// The count of one (product, window), final when emitted (or corrected by a later re-fire
/// within the allowed lateness, with the same key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowResult {
    pub product_id: Box<str>,
    /// UTC milliseconds; the window is `[window_start_ms, window_start_ms + 60 s)`.
    pub window_start_ms: i64,
    pub unique_users: u64,
    pub events: u64,
    /// `true` when `unique_users` is a HyperLogLog++ estimate.
    pub approximate: bool,
}

impl WindowResult {
    pub fn window_end_ms(&self) -> i64 {
        self.window_start_ms + MINUTE_MS
    }
}

/// The contract's JSON: `product_id`, `window_start`, `window_end` (RFC 3339, `Z`),
/// `unique_user_count`, `event_count`, `approximate`.
impl Serialize for WindowResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("WindowResult", 6)?;
        st.serialize_field("product_id", &*self.product_id)?;
        st.serialize_field("window_start", &format_rfc3339_ms(self.window_start_ms))?;
        st.serialize_field("window_end", &format_rfc3339_ms(self.window_end_ms()))?;
        st.serialize_field("unique_user_count", &self.unique_users)?;
        st.serialize_field("event_count", &self.events)?;
        st.serialize_field("approximate", &self.approximate)?;
        st.end()
    }
}

/// An event whose window had already fired and whose state was gone: counted, not aggregated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEvent {
    pub offset: u64,
    pub product_id: Box<str>,
    pub user_id: Box<str>,
    pub event_type: Box<str>,
    pub timestamp_ms: i64,
    /// The partition's watermark when the event arrived.
    pub watermark_ms: i64,
}

impl Serialize for LateEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("LateEvent", 6)?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("product_id", &*self.product_id)?;
        st.serialize_field("user_id", &*self.user_id)?;
        st.serialize_field("event_type", &*self.event_type)?;
        st.serialize_field("timestamp", &format_rfc3339_ms(self.timestamp_ms))?;
        st.serialize_field("watermark", &format_rfc3339_ms(self.watermark_ms))?;
        st.end()
    }
}

/// Where the engine puts what it emits; the caller drains it after each call.
#[derive(Debug, Default)]
pub struct Output {
    pub results: Vec<WindowResult>,
    pub late: Vec<LateEvent>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.late.is_empty()
    }

    pub fn clear(&mut self) {
        self.results.clear();
        self.late.clear();
    }
}
