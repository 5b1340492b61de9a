//! Retention: closed segments deleted past the size or age limit, never one a consumer group
//! still needs (nor, for an input topic, anything before a first commit).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{Inner, sync_dir};

pub(super) fn enforce_retention(inner: &Inner) -> usize {
    let config = &inner.config;
    if config.retention_bytes.is_none() && config.retention_age.is_none() {
        return 0;
    }
    let now = SystemTime::now();
    let mut deleted = 0;
    for (p, partition) in inner.partitions.iter().enumerate() {
        // The lowest offset any group still needs; nothing is deleted before every group has
        // committed one.
        let needed = {
            let committed = inner.committed.lock().unwrap_or_else(|e| e.into_inner());
            if committed.is_empty() && config.keep_until_committed {
                continue;
            }
            committed
                .values()
                .map(|o| o.get(p).copied().flatten().unwrap_or(0))
                .min()
                .unwrap_or(u64::MAX)
        };
        let doomed: Vec<PathBuf> = {
            let mut segments = partition
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
            let mut remove = 0;
            for segment in &segments[..segments.len() - 1] {
                let over_size = config.retention_bytes.is_some_and(|limit| total > limit);
                let too_old = config.retention_age.is_some_and(|age| {
                    now.duration_since(segment.written).unwrap_or_default() > age
                });
                if segment.end() > needed || !(over_size || too_old) {
                    break;
                }
                total -= segment.bytes;
                remove += 1;
            }
            segments.drain(..remove).map(|s| s.path).collect()
        };
        for path in &doomed {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    deleted += 1;
                    tracing::info!(path = %path.display(), "retention deleted a segment");
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete a segment")
                }
            }
        }
        if !doomed.is_empty() {
            let _ = sync_dir(&partition.dir);
        }
    }
    deleted
}

/// How often the writer applies retention.
pub(super) const RETENTION_EVERY: Duration = Duration::from_secs(5);
