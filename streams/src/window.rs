//! Window assignment: which event-time windows an event belongs to.
//!
//! Windows are half-open intervals `[start, end)` in epoch milliseconds. Tumbling and
//! sliding (hopping) windows are aligned to the epoch, as Spark's `window()` and Flink's
//! `TumblingEventTimeWindows` are (no offset); session windows are per key and merge,
//! which [`crate::window_agg`] does. A window is closed once the watermark reaches its
//! end (`end <= watermark`): no event that is not late can fall into it any more.

use serde::{Deserialize, Serialize};

/// A window of event time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }

    /// Closed for a watermark: nothing at or after the watermark can land in it.
    pub fn is_closed(&self, watermark: Option<i64>) -> bool {
        watermark.is_some_and(|w| self.end <= w)
    }
}

/// How events are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size_ms`.
    Tumbling { size_ms: i64 },
    /// Windows of `size_ms` starting every `slide_ms` (an event is in `size/slide` of them).
    Sliding { size_ms: i64, slide_ms: i64 },
    /// Per-key sessions: events closer than `gap_ms` share a session, which ends `gap_ms`
    /// after its last event.
    Session { gap_ms: i64 },
}

/// Most windows one event may belong to (size / slide); bounds the work per event.
pub const MAX_WINDOWS_PER_EVENT: i64 = 1_000;

impl WindowSpec {
    /// Check the sizes; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            WindowSpec::Tumbling { size_ms } if size_ms <= 0 => {
                Err("window size must be positive".into())
            }
            WindowSpec::Sliding { size_ms, slide_ms } => {
                if size_ms <= 0 || slide_ms <= 0 {
                    Err("window size and slide must be positive".into())
                } else if slide_ms > size_ms {
                    Err(
                        "slide must not exceed the window size (events would fall in no window)"
                            .into(),
                    )
                } else if size_ms / slide_ms > MAX_WINDOWS_PER_EVENT {
                    Err(format!(
                        "size / slide is over {MAX_WINDOWS_PER_EVENT} windows per event"
                    ))
                } else {
                    Ok(())
                }
            }
            WindowSpec::Session { gap_ms } if gap_ms <= 0 => {
                Err("session gap must be positive".into())
            }
            _ => Ok(()),
        }
    }

    /// The windows containing `t`, earliest first. For a session, the event's own
    /// window `[t, t + gap)` before merging. Empty only for an invalid spec or a time so
    /// close to `i64::MAX` that the window end does not fit.
    pub fn assign(&self, t: i64) -> Vec<Window> {
        let mut windows = Vec::new();
        self.assign_into(t, &mut windows);
        windows
    }

    /// [`Self::assign`] into `out` (cleared first): no allocation once `out` has room
    /// for the windows of one event.
    pub fn assign_into(&self, t: i64, out: &mut Vec<Window>) {
        out.clear();
        match *self {
            WindowSpec::Tumbling { size_ms } => out.extend(aligned(t, size_ms, size_ms)),
            WindowSpec::Sliding { size_ms, slide_ms } => {
                if self.validate().is_err() {
                    return;
                }
                // The last window starting at or before t, then earlier ones while they
                // still contain t.
                let Some(last) = aligned(t, size_ms, slide_ms) else {
                    return;
                };
                let mut start = last.start;
                while let Some(end) = start.checked_add(size_ms) {
                    if end <= t {
                        break;
                    }
                    out.push(Window { start, end });
                    match start.checked_sub(slide_ms) {
                        Some(s) => start = s,
                        None => break,
                    }
                }
                out.reverse();
            }
            WindowSpec::Session { gap_ms } => {
                if gap_ms <= 0 {
                    return;
                }
                out.extend(t.checked_add(gap_ms).map(|end| Window { start: t, end }));
            }
        }
    }
}

/// The window of `size` whose start is the multiple of `step` at or before `t`.
fn aligned(t: i64, size: i64, step: i64) -> Option<Window> {
    if size <= 0 || step <= 0 {
        return None;
    }
    let start = t.checked_sub(t.rem_euclid(step))?;
    Some(Window {
        start,
        end: start.checked_add(size)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tumbling_and_sliding_golden() {
        let tumbling = WindowSpec::Tumbling { size_ms: 60_000 };
        assert_eq!(
            tumbling.assign(61_000),
            vec![Window {
                start: 60_000,
                end: 120_000
            }]
        );
        assert_eq!(
            tumbling.assign(-1),
            vec![Window {
                start: -60_000,
                end: 0
            }]
        );
        let sliding = WindowSpec::Sliding {
            size_ms: 10,
            slide_ms: 5,
        };
        assert_eq!(
            sliding.assign(12),
            vec![Window { start: 5, end: 15 }, Window { start: 10, end: 20 }]
        );
        assert_eq!(
            sliding.assign(10),
            vec![Window { start: 5, end: 15 }, Window { start: 10, end: 20 }]
        );
        assert_eq!(
            WindowSpec::Session { gap_ms: 30 }.assign(100),
            vec![Window {
                start: 100,
                end: 130
            }]
        );
        assert!(tumbling.assign(i64::MAX).is_empty());
    }

    #[test]
    fn invalid_specs_are_reported() {
        assert!(WindowSpec::Tumbling { size_ms: 0 }.validate().is_err());
        assert!(WindowSpec::Sliding {
            size_ms: 5,
            slide_ms: 10
        }
        .validate()
        .is_err());
        assert!(WindowSpec::Sliding {
            size_ms: 1_000_000,
            slide_ms: 1
        }
        .validate()
        .is_err());
        assert!(WindowSpec::Session { gap_ms: -1 }.validate().is_err());
        assert!(WindowSpec::Sliding {
            size_ms: 10,
            slide_ms: 3
        }
        .validate()
        .is_ok());
    }

    proptest! {
        /// Every event lands in exactly the windows that contain it: each assigned window
        /// contains it, is aligned to the slide, and the count is ceil-exact.
        #[test]
        fn sliding_windows_cover_each_event_exactly(
            t in -1_000_000_000i64..1_000_000_000,
            slide in 1i64..500,
            factor in 1i64..20,
            extra in 0i64..500,
        ) {
            let size = slide * factor + extra % slide;
            let spec = WindowSpec::Sliding { size_ms: size, slide_ms: slide };
            let windows = spec.assign(t);
            for w in &windows {
                prop_assert!(w.contains(t));
                prop_assert_eq!(w.start.rem_euclid(slide), 0);
                prop_assert_eq!(w.end - w.start, size);
            }
            // Brute force: every aligned start within (t - size, t] gives a window.
            let expected = (t - size + 1..=t).filter(|s| s.rem_euclid(slide) == 0).count();
            prop_assert_eq!(windows.len(), expected);
            prop_assert!(windows.windows(2).all(|p| p[0].start < p[1].start));
        }

        #[test]
        fn tumbling_windows_partition_time(t in any::<i64>(), size in 1i64..1_000_000) {
            let windows = WindowSpec::Tumbling { size_ms: size }.assign(t);
            if let Some(w) = windows.first() {
                prop_assert_eq!(windows.len(), 1);
                prop_assert!(w.contains(t));
                prop_assert_eq!(w.start.rem_euclid(size), 0);
            } else {
                // Only when the window end overflows.
                prop_assert!(t.checked_sub(t.rem_euclid(size)).and_then(|s| s.checked_add(size)).is_none());
            }
        }
    }
}
