//! The report of one import, written beside its input as `<key>.report.json`.

use serde::{Deserialize, Serialize};

/// Rejected rows and duplicates listed one by one, each list up to this many (the counts are
/// always exact; the rest are counted in `*_omitted`), so that a file of millions of bad rows
/// still has a report of bounded size.
pub const MAX_LISTED: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The file or `s3://bucket/key` imported.
    pub source: String,
    /// `completed` (every row was read and each is stored or rejected) or `failed`.
    pub status: Status,
    /// Why the file failed as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Data rows read (the header and blank lines not counted). Once completed, equal to
    /// `created + updated + unchanged + rejected + superseded`.
    pub rows_read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Valid rows whose SKU a later row of the file repeats: not sent (the last row wins).
    pub superseded: u64,
    /// Each rejected row, in line order.
    pub rejected_rows: Vec<RejectedRow>,
    #[serde(default)]
    pub rejected_rows_omitted: u64,
    /// Each superseded row, and the later row that replaces it.
    pub duplicates: Vec<Duplicate>,
    #[serde(default)]
    pub duplicates_omitted: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// The line the row starts on, counted from 1 with the header as line 1.
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The column at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub sku: String,
    /// The row not sent...
    pub line: u64,
    /// ...because this later row, the SKU's last valid one, was.
    pub superseded_by: u64,
}

impl Report {
    pub(crate) fn reject(&mut self, row: RejectedRow) {
        self.rejected += 1;
        if self.rejected_rows.len() < MAX_LISTED {
            self.rejected_rows.push(row);
        } else {
            self.rejected_rows_omitted += 1;
        }
    }

    pub(crate) fn supersede(&mut self, duplicate: Duplicate) {
        self.superseded += 1;
        if self.duplicates.len() < MAX_LISTED {
            self.duplicates.push(duplicate);
        } else {
            self.duplicates_omitted += 1;
        }
    }

    /// One line for people: `… 1000 rows: 990 created, 0 updated, 0 unchanged, 10 rejected`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}: {} rows: {} created, {} updated, {} unchanged, {} rejected",
            self.source, self.rows_read, self.created, self.updated, self.unchanged, self.rejected
        );
        if self.superseded > 0 {
            line.push_str(&format!(
                ", {} superseded by a later row of the same SKU",
                self.superseded
            ));
        }
        if let Some(error) = &self.error {
            line.push_str(&format!("; FAILED: {error}"));
        }
        line
    }

    /// The report's JSON, pretty-printed.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }
}
