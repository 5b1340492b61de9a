//! Engine settings, validated once.

use std::time::Duration;

/// How unique users are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counting {
    /// Every distinct `user_id` is kept: exact counts, memory grows with the users per window.
    #[default]
    Exact,
    /// HyperLogLog++: near-exact while small, at most 16 KiB per window, about 0.8 % error.
    Approximate,
}

/// Settings of a [`crate::PartitionEngine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Watermark = max event time seen - this. Events may arrive this much out of order
    /// without being late. Default 10 s.
    pub out_of_orderness: Duration,
    /// How long a window's state is kept after it fired; a late event within this re-fires
    /// the window with the corrected count. Default 0.
    pub allowed_lateness: Duration,
    /// After this much processing time without events (measured by [`crate::PartitionEngine::tick`]),
    /// the watermark advances with processing time. `None`: never.
    pub idle_timeout: Option<Duration>,
    pub counting: Counting,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            out_of_orderness: Duration::from_secs(10),
            allowed_lateness: Duration::ZERO,
            idle_timeout: None,
            counting: Counting::Exact,
        }
    }
}

/// The longest duration any setting accepts: one week.
pub const MAX_SETTING: Duration = Duration::from_secs(7 * 24 * 3600);

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} must be at most one week (got {value:?})")]
pub struct ConfigError {
    pub setting: &'static str,
    pub value: Duration,
}

impl EngineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |setting, value: Duration| {
            if value > MAX_SETTING {
                Err(ConfigError { setting, value })
            } else {
                Ok(())
            }
        };
        check("out_of_orderness", self.out_of_orderness)?;
        check("allowed_lateness", self.allowed_lateness)?;
        if let Some(idle) = self.idle_timeout {
            check("idle_timeout", idle)?;
        }
        Ok(())
    }
}
