//! Committed offsets per consumer group: kept in memory for lag and retention, and in
//! `<dir>/groups/<group>.json`, written atomically and synced before retention acts on them.
//! An offset never moves back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Inner, write_atomically};

pub(super) fn groups_dir(dir: &Path) -> PathBuf {
    dir.join("groups")
}

pub(super) fn load_committed(dir: &Path, partitions: u32) -> BTreeMap<String, Vec<Option<u64>>> {
    let mut committed = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(groups_dir(dir)) else {
        return committed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(group) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        // Unreadable: as if that group had committed nothing, which keeps everything.
        let offsets = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Option<u64>>>(&b).ok())
            .filter(|o| o.len() == partitions as usize)
            .unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "unreadable committed offsets; retention keeps everything until the group commits again");
                vec![None; partitions as usize]
            });
        committed.insert(group.to_owned(), offsets);
    }
    committed
}

impl Inner {
    /// Records a group's committed offsets (an offset never moves back).
    pub(super) fn commit(&self, group: &str, offsets: &[(u32, u64)]) {
        let snapshot = {
            let mut committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
            let entry = committed
                .entry(group.to_owned())
                .or_insert_with(|| vec![None; self.partitions.len()]);
            let mut moved = false;
            for &(partition, offset) in offsets {
                if let Some(slot) = entry.get_mut(partition as usize)
                    && slot.is_none_or(|o| o < offset)
                {
                    *slot = Some(offset);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
            entry.clone()
        };
        // Synced: retention deletes by these offsets, so the file must never come back empty
        // or older than what retention acted on.
        let dir = groups_dir(&self.dir);
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let path = dir.join(format!("{}.json", sanitize(group)));
            write_atomically(&path, &serde_json::to_vec(&snapshot).unwrap_or_default())
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, group, "cannot record committed offsets");
        }
    }

    pub(super) fn committed_offset(&self, group: &str, partition: u32) -> Option<u64> {
        self.committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .and_then(|o| o.get(partition as usize).copied().flatten())
    }

    pub(super) fn notify_readers(&self) {
        *self.appended.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.appended_cv.notify_all();
    }
}

/// A group name as a file name.
fn sanitize(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
