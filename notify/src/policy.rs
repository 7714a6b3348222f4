//! When a channel's messages go out: quiet hours (local to the organization) and a rate limit.
//!
//! Routing ([`crate::channels::Routing`]) decides *whether* an event reaches a channel, when it
//! is queued; the policy decides *when*, as the lane is about to send. A message held by quiet
//! hours waits until they end; a message over the rate limit waits until the window has room.
//! Held messages that come back together go as one digest (as do messages past the limit when
//! one slot is left), so a night or a storm of alerts reads as one message, not a flood.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use callscript_core::db::DbError;
use callscript_core::model::Severity;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::HoldReason;

/// Local hours during which a channel gets nothing below `bypass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    /// Before `start` for hours across midnight (22:00-07:00).
    pub end: NaiveTime,
    /// Flags at or above it still go out at once (`None`: nothing does).
    pub bypass: Option<Severity>,
}

/// At most `max` messages (a digest counts as one) per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub quiet: Option<QuietHours>,
    pub rate_limit: Option<RateLimit>,
}

impl QuietHours {
    /// When the quiet hours `now` falls in end, or `None` when `now` is not quiet.
    pub fn end_after(&self, now: DateTime<Utc>, timezone: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&timezone);
        let (time, today) = (local.time(), local.date_naive());
        let end_day = if self.start < self.end {
            (self.start..self.end).contains(&time).then_some(today)?
        } else if time >= self.start {
            today + Days::new(1)
        } else if time < self.end {
            today
        } else {
            return None;
        };
        Some(local_instant(timezone, end_day, self.end))
    }

    fn lets_through(&self, severity: Option<Severity>) -> bool {
        matches!((self.bypass, severity), (Some(bypass), Some(severity)) if severity >= bypass)
    }
}

/// Quiet hours as people write them: `22:00-07:00` (local, may cross midnight).
pub fn parse_quiet_span(text: &str) -> Result<(NaiveTime, NaiveTime), PolicyError> {
    let unreadable = || PolicyError::Unreadable {
        what: "quiet hours",
        value: text.to_owned(),
        expected: "HH:MM-HH:MM, e.g. 22:00-07:00",
    };
    let (start, end) = text.split_once('-').ok_or_else(unreadable)?;
    let time =
        |part: &str| NaiveTime::parse_from_str(part.trim(), "%H:%M").map_err(|_| unreadable());
    let (start, end) = (time(start)?, time(end)?);
    if start == end {
        return Err(PolicyError::EmptyQuietHours);
    }
    Ok((start, end))
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )?;
        match self.bypass {
            Some(severity) => write!(f, " ({severity} and above still sent)"),
            None => f.write_str(" (nothing sent)"),
        }
    }
}

/// The windows a rate limit is written in, and their names.
const RATE_WINDOWS: &[(&str, u64)] = &[("minute", 60), ("hour", 3600), ("day", 86_400)];

impl FromStr for RateLimit {
    type Err = PolicyError;

    /// `20/hour`: at most 20 messages per hour (or per `minute`, per `day`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unreadable = || PolicyError::Unreadable {
            what: "rate limit",
            value: text.to_owned(),
            expected: "N/minute, N/hour or N/day with N at least 1, e.g. 20/hour",
        };
        let (max, unit) = text.split_once('/').ok_or_else(unreadable)?;
        let max: u32 = max.trim().parse().map_err(|_| unreadable())?;
        let seconds = RATE_WINDOWS
            .iter()
            .find(|(name, _)| *name == unit.trim())
            .map(|&(_, seconds)| seconds)
            .ok_or_else(unreadable)?;
        if max == 0 {
            return Err(unreadable());
        }
        Ok(RateLimit {
            max,
            window: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.window.as_secs();
        match RATE_WINDOWS.iter().find(|&&(_, window)| window == seconds) {
            Some((name, _)) => write!(f, "{}/{name}", self.max),
            None => write!(f, "{} per {seconds} s", self.max),
        }
    }
}

/// `time` on `day` in `timezone` as an instant: the first of two when clocks go back, an hour
/// later when clocks skip it.
fn local_instant(timezone: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    timezone
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            timezone
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| local.and_utc(), |at| at.with_timezone(&Utc))
}

/// A message the lane is about to send, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub severity: Option<Severity>,
    /// Why it was held before, if it was.
    pub held: Option<HoldReason>,
}

/// The channel's deliveries within its rate window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentSends {
    pub count: u32,
    pub oldest: Option<DateTime<Utc>>,
}

/// What to do with one message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Back to pending until `until`.
    Hold {
        until: DateTime<Utc>,
        reason: HoldReason,
    },
    /// Into the one digest made of this batch's folded messages.
    Fold {
        reason: HoldReason,
    },
}

impl Policy {
    /// Decides for one channel's batch of messages, in their order. Quiet hours hold what does
    /// not bypass them. Of the rest, messages held before come back as one digest when there are
    /// several; past the rate limit the most severe go one by one while one slot is kept for a
    /// digest of the others, and with no slot left everything waits for the window to have room.
    pub fn plan(
        &self,
        timezone: Tz,
        now: DateTime<Utc>,
        candidates: &[Candidate],
        recent: RecentSends,
    ) -> Vec<Decision> {
        let mut decisions = vec![Decision::Send; candidates.len()];
        let quiet_end = self
            .quiet
            .and_then(|quiet| Some((quiet, quiet.end_after(now, timezone)?)));
        let mut fresh = Vec::new();
        let mut returning = Vec::new();
        for (index, candidate) in candidates.iter().enumerate() {
            match quiet_end {
                Some((quiet, until)) if !quiet.lets_through(candidate.severity) => {
                    decisions[index] = Decision::Hold {
                        until,
                        reason: HoldReason::QuietHours,
                    };
                }
                _ if candidate.held.is_some() => returning.push(index),
                _ => fresh.push(index),
            }
        }
        // Messages held before take one slot however many they are: one alone is sent as
        // itself, several as one digest.
        let needed = fresh.len() + returning.len().min(1);
        let budget = self.rate_limit.map_or(usize::MAX, |limit| {
            (limit.max as usize).saturating_sub(recent.count as usize)
        });
        if needed <= budget {
            if returning.len() > 1 {
                let reason = candidates[returning[0]]
                    .held
                    .expect("returning rows were held");
                for index in returning {
                    decisions[index] = Decision::Fold { reason };
                }
            }
        } else if budget == 0 {
            let limit = self.rate_limit.expect("a finite budget has a limit");
            let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
            let until = recent.oldest.unwrap_or(now) + window;
            for index in fresh.into_iter().chain(returning) {
                decisions[index] = Decision::Hold {
                    until,
                    reason: HoldReason::RateLimit,
                };
            }
        } else {
            // The most severe first; keep their order otherwise.
            fresh.sort_by_key(|&index| std::cmp::Reverse(candidates[index].severity));
            for &index in fresh.iter().skip(budget - 1).chain(&returning) {
                decisions[index] = Decision::Fold {
                    reason: HoldReason::RateLimit,
                };
            }
        }
        decisions
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("organization {org_id} has no notification channel {name:?}")]
    Unknown { org_id: Uuid, name: String },
    #[error("quiet hours must start and end at different times")]
    EmptyQuietHours,
    #[error("a rate limit must allow at least one message in a window longer than zero")]
    EmptyRateLimit,
    #[error("cannot read the {what} {value:?}: expected {expected}")]
    Unreadable {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the organization's time zone {0:?} is not a known IANA name")]
    Timezone(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for PolicyError {
    fn from(e: tokio_postgres::Error) -> Self {
        PolicyError::Db(e.into())
    }
}

/// A channel's policy and its organization's time zone.
pub async fn load(
    client: &impl GenericClient,
    org_id: Uuid,
    name: &str,
) -> Result<(Policy, Tz), PolicyError> {
    let row = client
        .query_opt(
            "SELECT c.quiet_start, c.quiet_end, c.quiet_bypass_severity::text, c.rate_limit,
                    extract(epoch FROM c.rate_window)::float8, o.timezone
             FROM core.notification_channels c
             JOIN core.organizations o ON o.id = c.org_id
             WHERE c.org_id = $1 AND c.name = $2",
            &[&org_id, &name],
        )
        .await?
        .ok_or_else(|| PolicyError::Unknown {
            org_id,
            name: name.into(),
        })?;
    let quiet = match (row.get(0), row.get(1)) {
        (Some(start), Some(end)) => Some(QuietHours {
            start,
            end,
            bypass: row
                .get::<_, Option<String>>(2)
                .map(|label| label.parse())
                .transpose()
                .map_err(DbError::from)?,
        }),
        _ => None,
    };
    let rate_limit = row.get::<_, Option<i32>>(3).map(|max| RateLimit {
        max: u32::try_from(max).unwrap_or(1),
        window: Duration::from_secs_f64(row.get(4)),
    });
    let timezone: String = row.get(5);
    let timezone = timezone
        .parse()
        .map_err(|_| PolicyError::Timezone(timezone))?;
    Ok((Policy { quiet, rate_limit }, timezone))
}

/// Sets a channel's policy; whether there was such a channel.
pub async fn save(
    client: &impl GenericClient,
    org_id: Uuid,
    name: &str,
    policy: &Policy,
) -> Result<bool, PolicyError> {
    if policy.quiet.is_some_and(|quiet| quiet.start == quiet.end) {
        return Err(PolicyError::EmptyQuietHours);
    }
    if policy
        .rate_limit
        .is_some_and(|limit| limit.max == 0 || limit.window.is_zero())
    {
        return Err(PolicyError::EmptyRateLimit);
    }
    let max = policy
        .rate_limit
        .map(|limit| i32::try_from(limit.max).unwrap_or(i32::MAX));
    let window = policy
        .rate_limit
        .map_or(3600.0, |limit| limit.window.as_secs_f64());
    Ok(client
        .execute(
            "UPDATE core.notification_channels
             SET quiet_start = $3, quiet_end = $4, quiet_bypass_severity = $5::text::core.flag_severity,
                 rate_limit = $6, rate_window = make_interval(secs => $7)
             WHERE org_id = $1 AND name = $2",
            &[
                &org_id,
                &name,
                &policy.quiet.map(|quiet| quiet.start),
                &policy.quiet.map(|quiet| quiet.end),
                &policy
                    .quiet
                    .and_then(|quiet| quiet.bypass)
                    .map(|severity| severity.as_str()),
                &max,
                &window,
            ],
        )
        .await?
        == 1)
}

/// The channel's deliveries within `window` of now.
pub async fn recent_sends(
    client: &impl GenericClient,
    org_id: Uuid,
    name: &str,
    window: Duration,
) -> Result<RecentSends, DbError> {
    let row = client
        .query_one(
            "SELECT count(*), min(delivered_at) FROM core.notifications
             WHERE org_id = $1 AND channel = $2
               AND delivered_at > now() - make_interval(secs => $3)",
            &[&org_id, &name, &window.as_secs_f64()],
        )
        .await?;
    Ok(RecentSends {
        count: u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX),
        oldest: row.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_YORK: Tz = chrono_tz::America::New_York;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn night() -> QuietHours {
        QuietHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
            bypass: Some(Severity::Critical),
        }
    }

    #[test]
    fn quiet_hours_and_rate_limits_read_as_written() {
        let (start, end) = parse_quiet_span("22:00-07:00").unwrap();
        assert_eq!((start, end), (night().start, night().end));
        assert_eq!(
            night().to_string(),
            "22:00-07:00 (critical and above still sent)"
        );
        for bad in ["22:00", "22-07", "25:00-07:00", "07:00-07:00"] {
            assert!(parse_quiet_span(bad).is_err(), "{bad}");
        }
        let limit: RateLimit = "20/hour".parse().unwrap();
        assert_eq!(limit.max, 20);
        assert_eq!(limit.window, Duration::from_secs(3600));
        assert_eq!(limit.to_string(), "20/hour");
        for bad in ["0/hour", "20", "20/week", "-1/day", "x/minute"] {
            let error = bad.parse::<RateLimit>().unwrap_err().to_string();
            assert!(error.contains("e.g. 20/hour"), "{bad}: {error}");
        }
    }

    #[test]
    fn quiet_hours_are_local_and_may_cross_midnight() {
        let quiet = night();
        // 23:30 EST on Dec 4 ends at 07:00 EST on Dec 5 (12:00 UTC).
        assert_eq!(
            quiet.end_after(at("2026-12-05T04:30:00Z"), NEW_YORK),
            Some(at("2026-12-05T12:00:00Z"))
        );
        // 06:59 EST: still quiet, ends in a minute.
        assert_eq!(
            quiet.end_after(at("2026-12-05T11:59:00Z"), NEW_YORK),
            Some(at("2026-12-05T12:00:00Z"))
        );
        assert_eq!(quiet.end_after(at("2026-12-05T12:00:00Z"), NEW_YORK), None);
        assert_eq!(quiet.end_after(at("2026-12-05T20:00:00Z"), NEW_YORK), None);
        let lunch = QuietHours {
            start: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(13, 0, 0).unwrap(),
            bypass: None,
        };
        assert_eq!(
            lunch.end_after(at("2026-12-05T17:10:00Z"), NEW_YORK),
            Some(at("2026-12-05T18:00:00Z"))
        );
        // Quiet until 02:30 on the night clocks skip 02:00-03:00 (8 Mar 2026): 03:30 EDT.
        let early = QuietHours {
            end: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            ..night()
        };
        assert_eq!(
            early.end_after(at("2026-03-08T06:00:00Z"), NEW_YORK),
            Some(at("2026-03-08T07:30:00Z"))
        );
    }

    fn candidate(severity: Severity, held: Option<HoldReason>) -> Candidate {
        Candidate {
            severity: Some(severity),
            held,
        }
    }

    #[test]
    fn quiet_hours_hold_all_but_the_bypass() {
        let policy = Policy {
            quiet: Some(night()),
            rate_limit: None,
        };
        let night_time = at("2026-12-05T04:30:00Z");
        let decisions = policy.plan(
            NEW_YORK,
            night_time,
            &[
                candidate(Severity::High, None),
                candidate(Severity::Critical, None),
                Candidate {
                    severity: None,
                    held: None,
                },
            ],
            RecentSends::default(),
        );
        let morning = Decision::Hold {
            until: at("2026-12-05T12:00:00Z"),
            reason: HoldReason::QuietHours,
        };
        assert_eq!(decisions, [morning, Decision::Send, morning]);
        // In the morning the two held messages come back as one digest; one alone is sent.
        let returning = [
            candidate(Severity::High, Some(HoldReason::QuietHours)),
            candidate(Severity::Medium, Some(HoldReason::QuietHours)),
            candidate(Severity::High, None),
        ];
        let morning_time = at("2026-12-05T12:00:01Z");
        let fold = Decision::Fold {
            reason: HoldReason::QuietHours,
        };
        assert_eq!(
            policy.plan(NEW_YORK, morning_time, &returning, RecentSends::default()),
            [fold, fold, Decision::Send]
        );
        assert_eq!(
            policy.plan(
                NEW_YORK,
                morning_time,
                &returning[..1],
                RecentSends::default()
            ),
            [Decision::Send]
        );
    }

    #[test]
    fn past_the_rate_limit_the_rest_goes_as_one_digest() {
        let policy = Policy {
            quiet: None,
            rate_limit: Some(RateLimit {
                max: 3,
                window: Duration::from_secs(3600),
            }),
        };
        let now = at("2026-12-05T15:00:00Z");
        let storm: Vec<Candidate> = [
            Severity::Medium,
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Critical,
        ]
        .into_iter()
        .map(|severity| candidate(severity, None))
        .collect();
        let fold = Decision::Fold {
            reason: HoldReason::RateLimit,
        };
        // 3 slots: the two critical ones, then one digest of the other three.
        assert_eq!(
            policy.plan(NEW_YORK, now, &storm, RecentSends::default()),
            [fold, Decision::Send, fold, fold, Decision::Send]
        );
        // Within the limit: each on its own.
        assert_eq!(
            policy.plan(NEW_YORK, now, &storm[..3], RecentSends::default()),
            [Decision::Send; 3]
        );
        // One slot left: everything in one digest.
        let one_left = RecentSends {
            count: 2,
            oldest: Some(at("2026-12-05T14:20:00Z")),
        };
        assert_eq!(
            policy.plan(NEW_YORK, now, &storm[..2], one_left),
            [fold, fold]
        );
        // No slot: wait until the oldest delivery leaves the window.
        let full = RecentSends {
            count: 3,
            ..one_left
        };
        let wait = Decision::Hold {
            until: at("2026-12-05T15:20:00Z"),
            reason: HoldReason::RateLimit,
        };
        assert_eq!(policy.plan(NEW_YORK, now, &storm[..2], full), [wait, wait]);
        // What the limit held comes back as one digest, one slot.
        let held = [
            candidate(Severity::High, Some(HoldReason::RateLimit)),
            candidate(Severity::Low, Some(HoldReason::RateLimit)),
        ];
        assert_eq!(policy.plan(NEW_YORK, now, &held, one_left), [fold, fold]);
    }
}
