//! Tumbling windows over `ts`, closed by a watermark.
//!
//! The watermark is the largest `ts` a flow has seen. A window `[start, start + width)` closes
//! once the watermark passes `start + width + lateness`; a record that arrives for a closed
//! window is late: it is dropped and counted.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::error::Result as DfResult;
use serde::{Deserialize, Serialize};

/// A window's width and allowed lateness, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    width: i64,
    lateness: i64,
}

/// Why a window's width or lateness is not usable.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The text is not a duration.
    #[error("`{text}` is not a duration such as 30s, 1m or 1h: {source}")]
    NotADuration {
        /// The text as written.
        text: String,
        /// What humantime found wrong.
        #[source]
        source: humantime::DurationError,
    },
    /// The duration does not fit in 64 bits of milliseconds.
    #[error("`{0}` is too long")]
    TooLong(String),
    /// The width is zero.
    #[error("a window must be longer than 0s")]
    Empty,
}

/// Parses a duration such as `30s`, `1m`, `1h 30m` into milliseconds.
fn millis(text: &str) -> Result<i64, WindowError> {
    let duration = humantime::parse_duration(text)
        .map_err(|source| WindowError::NotADuration { text: text.to_owned(), source })?;
    i64::try_from(duration.as_millis()).map_err(|_| WindowError::TooLong(text.to_owned()))
}

impl Window {
    /// A window `width` wide whose records may arrive up to `lateness` after its end.
    pub fn parse(width: &str, lateness: Option<&str>) -> Result<Window, WindowError> {
        let width = millis(width)?;
        if width <= 0 {
            return Err(WindowError::Empty);
        }
        let lateness = lateness.map(millis).transpose()?.unwrap_or(0);
        Ok(Window { width, lateness })
    }

    /// The start of the window holding `ts`.
    pub fn start(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.width)
    }

    /// The window start of each record of `batch` (whose `ts` is column `ts`), and the
    /// largest `ts`.
    pub fn starts(&self, batch: &RecordBatch, ts: usize) -> DfResult<(Vec<i64>, Option<i64>)> {
        let column = batch.column(ts);
        let millis = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let millis = millis.as_primitive::<TimestampMillisecondType>();
        let max = arrow::compute::max(millis);
        let starts = millis.iter().map(|t| self.start(t.unwrap_or(i64::MIN / 2))).collect();
        Ok((starts, max))
    }

    /// `batch` with its `ts` column replaced by `starts`, keeping its type and time zone.
    pub fn stamp(batch: &RecordBatch, ts: usize, starts: &[i64]) -> DfResult<RecordBatch> {
        let column = batch.column(ts);
        let DataType::Timestamp(_, zone) = column.data_type() else {
            unreachable!("checked by the plan: ts is a timestamp")
        };
        let starts =
            TimestampMillisecondArray::from(starts.to_vec()).with_timezone_opt(zone.clone());
        let starts: ArrayRef = cast(&starts, column.data_type())?;
        let mut columns = batch.columns().to_vec();
        columns[ts] = Arc::new(starts);
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

/// How far event time has gone, as saved in checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// The largest `ts` seen.
    pub watermark: Option<i64>,
    /// Windows that end at or before this are closed.
    pub closed: Option<i64>,
}

impl Clock {
    /// Whether a record in the window starting at `start` comes too late.
    pub fn is_late(&self, window: &Window, start: i64) -> bool {
        self.closed.is_some_and(|closed| start + window.width <= closed)
    }

    /// Moves the watermark to `ts` if later; returns the new bound of closed windows when
    /// more windows close.
    pub fn advance(&mut self, window: &Window, ts: Option<i64>) -> Option<i64> {
        let watermark = match (self.watermark, ts) {
            (Some(w), Some(t)) => w.max(t),
            (w, t) => w.or(t)?,
        };
        self.watermark = Some(watermark);
        let closed = window.start(watermark.saturating_sub(window.lateness));
        if self.closed.is_some_and(|c| c >= closed) {
            return None;
        }
        self.closed = Some(closed);
        Some(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_close_behind_the_watermark_with_lateness() {
        let window = Window::parse("1m", Some("10s")).unwrap();
        assert_eq!(window.start(125_000), 120_000);
        assert_eq!(window.start(-1), -60_000);
        let mut clock = Clock::default();
        assert_eq!(clock.advance(&window, Some(65_000)), Some(0), "nothing closed below 0");
        assert_eq!(clock.advance(&window, Some(69_999)), None);
        assert!(!clock.is_late(&window, 0));
        assert_eq!(clock.advance(&window, Some(70_000)), Some(60_000), "[0, 60s) closes");
        assert!(clock.is_late(&window, 0));
        assert!(!clock.is_late(&window, 60_000));
        assert_eq!(clock.advance(&window, Some(1_000)), None, "the watermark never goes back");
        assert!(matches!(Window::parse("0s", None), Err(WindowError::Empty)));
        let soon = Window::parse("soon", None).unwrap_err();
        assert!(matches!(&soon, WindowError::NotADuration { text, .. } if text == "soon"));
        assert!(soon.to_string().starts_with("`soon` is not a duration"), "{soon}");
    }
}
