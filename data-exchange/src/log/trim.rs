//! What a Log store's retention drops: its oldest whole segments (one per append), by count
//! or age, never what a reader still needs (see [`super::LogExchange::trim`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};

use super::arrow_schema::TS;

/// A trim of a Log store: the segments it lets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    /// Keep at least the store's last this many records.
    pub max_records: Option<u64>,
    /// Let segments go whose newest record (by `ts`) is older than this.
    pub max_age: Option<Duration>,
    /// Never drop a record at or after this offset: a reader still needs it.
    pub hold: u64,
}

impl Trim {
    /// Whether a segment whose records end at offset `end` (exclusive), the newest of them
    /// stamped `newest`, may go from a store whose records end at `store_end`.
    pub fn drops(&self, end: u64, store_end: u64, newest: Option<SystemTime>) -> bool {
        if end > self.hold {
            return false;
        }
        let by_count = self.max_records.is_some_and(|keep| store_end.saturating_sub(end) >= keep);
        let by_age = self.max_age.zip(newest).is_some_and(|(age, newest)| {
            SystemTime::now().duration_since(newest).is_ok_and(|old| old > age)
        });
        by_count || by_age
    }
}

/// The time of the newest record of `batch`, by its `ts`.
pub fn newest(batch: &RecordBatch) -> Option<SystemTime> {
    let ts = batch.column_by_name(TS)?.as_any().downcast_ref::<TimestampMillisecondArray>()?;
    let millis = arrow::compute::max(ts)?;
    let millis = u64::try_from(millis).ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_goes_by_count_or_age_but_never_past_the_hold() {
        let by_count = Trim { max_records: Some(10), max_age: None, hold: u64::MAX };
        assert!(by_count.drops(5, 15, None), "10 records remain after it");
        assert!(!by_count.drops(6, 15, None), "9 would remain");
        let by_age = Trim { max_records: None, max_age: Some(Duration::from_secs(60)), hold: 100 };
        let old = SystemTime::now() - Duration::from_secs(120);
        assert!(by_age.drops(5, 15, Some(old)));
        assert!(!by_age.drops(5, 15, Some(SystemTime::now())));
        assert!(!by_age.drops(101, 150, Some(old)), "a reader needs offset 100");
    }
}
