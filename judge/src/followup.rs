//! A spoken callback request ("call me back tomorrow at ten") → when to call.
//!
//! The request is found with the matcher, so a garbled one ("call me bak") still counts; the
//! time is read from the normalized words after it (number words are digits there: "ten
//! thirty" is 10 30), or before it when nothing follows ("tomorrow at ten, call me back").
//! What people say is read the way a scheduler would:
//!
//! - a day: "today", "tonight", "tomorrow", a weekday ("on friday", "next friday": the next
//!   one strictly after today), "next week" (its Monday);
//! - a time: "at 3", "around 4", "3 pm", "3pm", "3 p m", "ten thirty am", "10 o'clock",
//!   "noon"; an hour without am/pm is a business hour: 1–7 afternoon, 8–11 morning, 12 noon
//!   (or the part of the day said: "at 8 tonight" is 20:00);
//! - a part of the day: "this morning"/"afternoon"/"evening" (10:00, 14:00, 18:00; "tonight"
//!   19:00);
//! - a delay: "in an hour", "in 2 hours", "in half an hour", "in 30 minutes".
//!
//! A day without a time is 10:00; a time without a day is today when still ahead, else
//! tomorrow; "today", "tonight" or "this evening" without a clock time, once its time has
//! passed, is later today (the top of the hour one to two hours on); a request with no time at
//! all is the next business day at 10:00. Only a clock time or a delay is an explicit time: a
//! part of the day or a default is one we picked.
//!
//! Local times are built in the organization's timezone: a time a daylight-saving change
//! repeats is its first occurrence, and one it skips is an hour later (what a clock set
//! forward shows).

use std::ops::Range;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;

use crate::lead::{hits, Phrase};
use crate::matcher::{find_all, DEFAULT_FUZZINESS};
use crate::normalize;

/// Phrases that ask to be called back whether or not a time follows.
pub const CALLBACK_PHRASES: &[&str] = &[
    "call me back",
    "call me later",
    "call back",
    "try me again",
    "reach me",
    "give me a call",
    "can you call me",
];

/// "Call me" asks for a callback only with a time ("call me tomorrow"): alone it is as often
/// "you can call me Bob".
const CALL_ME: &str = "call me";

/// The hour a callback without a time is set for: the start of a business morning.
pub const DEFAULT_HOUR: u32 = 10;

/// How many words after a request its time is looked for in ("call me back maybe tomorrow
/// around ten thirty in the morning"), and before it when none follows; kept short before, so a
/// number said earlier ("I live at 5 Elm Street") is not read as a time.
const WORDS_AFTER: usize = 12;
const WORDS_BEFORE: usize = 4;

/// Words that make the number after them a clock time ("at 3", "around 4").
const TIME_CUES: &[&str] = &["at", "around", "about", "after", "by", "before", "between"];

/// A callback request in a run of words: the words from the request through its time, and when
/// it asks to be called.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub words: Range<usize>,
    pub due: DateTime<Tz>,
    pub explicit_time: bool,
}

/// When the callback request in `text` (what the customer said at `spoken_at`, in the
/// organization's timezone) asks to be called, and whether the customer said the time (`false`:
/// a default was picked). `None` when `text` asks for no callback; the last request counts when
/// it asks more than once.
pub fn parse_callback(text: &str, spoken_at: DateTime<Tz>) -> Option<(DateTime<Tz>, bool)> {
    let words = normalize::words(text);
    requests(&words, |_| spoken_at)
        .pop()
        .map(|r| (r.due, r.explicit_time))
}

/// The callback requests in `words`, in order; `spoken_at` gives the moment the word at an
/// index was said.
pub(crate) fn requests<W: AsRef<str>>(
    words: &[W],
    spoken_at: impl Fn(usize) -> DateTime<Tz>,
) -> Vec<Request> {
    let phrases: Vec<Phrase> = CALLBACK_PHRASES
        .iter()
        .map(|p| Phrase::new("callback", p))
        // Last, so the longer requests claim their words first.
        .chain([Phrase::new(CALL_ME, CALL_ME)])
        .collect();
    let triggers = hits(&phrases, words, true);
    let mut out = Vec::new();
    for (i, (phrase, trigger)) in triggers.iter().enumerate() {
        let trigger = trigger.clone();
        let at = spoken_at(trigger.start);
        // Each request's time is its own: the windows stop at the requests next to it.
        let next = triggers.get(i + 1).map_or(words.len(), |(_, r)| r.start);
        let previous = i.checked_sub(1).map_or(0, |p| triggers[p].1.end);
        // The request's own words too: a misheard one may hold the cue ("call me after 5" heard
        // as "call me later").
        let after = trigger.start..(trigger.end + WORDS_AFTER).min(next);
        let before = trigger.start.saturating_sub(WORDS_BEFORE).max(previous)..trigger.start;
        let said = [after, before].into_iter().find_map(|window| {
            let when = read(words, window);
            resolve(&when, at).map(|due| (when.said, due))
        });
        match said {
            Some((said, (due, explicit_time))) => out.push(Request {
                words: said.start.min(trigger.start)..said.end.max(trigger.end),
                due,
                explicit_time,
            }),
            None if phrase.label != CALL_ME => out.push(Request {
                words: trigger,
                due: next_business_day_at(at, DEFAULT_HOUR),
                explicit_time: false,
            }),
            None => {}
        }
    }
    out
}

/// `hour`:00 (0–23) local on the first weekday after `after`'s date.
pub fn next_business_day_at(after: DateTime<Tz>, hour: u32) -> DateTime<Tz> {
    let mut day = after.date_naive();
    loop {
        day = day
            .succ_opt()
            .expect("dates this close to now have a next day");
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            return local(after.timezone(), day, time_of_day(hour, 0));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Day {
    Today,
    Tomorrow,
    On(Weekday),
    NextWeek,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartOfDay {
    Morning,
    Afternoon,
    Evening,
    Night,
}

impl PartOfDay {
    /// The time we pick when only the part of the day is said.
    fn default_hour(self) -> u32 {
        match self {
            PartOfDay::Morning => DEFAULT_HOUR,
            PartOfDay::Afternoon => 14,
            PartOfDay::Evening => 18,
            PartOfDay::Night => 19,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meridiem {
    Am,
    Pm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    hour: u32,
    minute: u32,
    meridiem: Option<Meridiem>,
}

impl Clock {
    /// The 24-hour time this is, read with the part of the day said.
    fn time(self, part: Option<PartOfDay>) -> NaiveTime {
        let h = self.hour;
        let hour = match (self.meridiem, part) {
            _ if h > 12 => h,
            (Some(Meridiem::Am), _) => h % 12,
            (Some(Meridiem::Pm), _) => h % 12 + 12,
            (None, Some(PartOfDay::Afternoon | PartOfDay::Evening | PartOfDay::Night))
                if h < 12 =>
            {
                h + 12
            }
            (None, Some(PartOfDay::Morning)) => h,
            // Business hours: nobody asks for a call at 3 in the morning.
            (None, _) if (1..=7).contains(&h) => h + 12,
            (None, _) => h,
        };
        time_of_day(hour, self.minute)
    }
}

/// What a stretch of words says about when, and which words said it.
#[derive(Debug, Default)]
struct When {
    day: Option<Day>,
    part: Option<PartOfDay>,
    clock: Option<Clock>,
    delay: Option<Duration>,
    said: Range<usize>,
}

impl When {
    /// Notes that words `from..to` said something.
    fn saw(&mut self, from: usize, to: usize) {
        self.said = if self.said.is_empty() {
            from..to
        } else {
            self.said.start.min(from)..self.said.end.max(to)
        };
    }
}

/// `word` as `expected`, allowing a misheard letter in a long word ("tomorow", "wenesday").
fn heard(word: &str, expected: &str) -> bool {
    word == expected
        || (expected.len() >= 5
            && !find_all(&[expected.to_owned()], &[word], DEFAULT_FUZZINESS).is_empty())
}

fn weekday(word: &str) -> Option<Weekday> {
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    DAYS.iter()
        .find(|(name, _)| heard(word, name))
        .map(|&(_, day)| day)
}

fn part_of_day(word: &str) -> Option<PartOfDay> {
    [
        ("morning", PartOfDay::Morning),
        ("afternoon", PartOfDay::Afternoon),
        ("evening", PartOfDay::Evening),
        ("night", PartOfDay::Night),
    ]
    .into_iter()
    .find(|(name, _)| heard(word, name))
    .map(|(_, part)| part)
}

/// The words of `window` as time words: a number glued to its am/pm ("3pm", "30am") split in
/// two, each with the index of the word it came from.
fn tokens<W: AsRef<str>>(words: &[W], window: Range<usize>) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for k in window {
        let word = words[k].as_ref();
        let split = ["am", "pm"].iter().find_map(|m| {
            let digits = word.strip_suffix(m)?;
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then_some((digits, *m))
        });
        match split {
            Some((digits, meridiem)) => {
                out.push((digits.to_owned(), k));
                out.push((meridiem.to_owned(), k));
            }
            None => out.push((word.to_owned(), k)),
        }
    }
    out
}

/// What `words[window]` says about when.
fn read<W: AsRef<str>>(words: &[W], window: Range<usize>) -> When {
    let tokens = tokens(words, window);
    let text = |i: usize| tokens.get(i).map_or("", |(t, _)| t.as_str());
    let word_at = |i: usize| tokens[i.min(tokens.len() - 1)].1;
    let mut when = When::default();
    let mut i = 0;
    while i < tokens.len() {
        let w = text(i);
        // How many tokens this one starts that say something, if any.
        let mut used = 0;
        if when.day.is_none() {
            if heard(w, "tomorrow") {
                when.day = Some(Day::Tomorrow);
                used = 1;
            } else if heard(w, "today") {
                when.day = Some(Day::Today);
                used = 1;
            } else if heard(w, "tonight") {
                when.day = Some(Day::Today);
                when.part = when.part.or(Some(PartOfDay::Night));
                used = 1;
            } else if w == "next" && heard(text(i + 1), "week") {
                when.day = Some(Day::NextWeek);
                used = 2;
            } else if let Some(day) = weekday(w) {
                when.day = Some(Day::On(day));
                used = 1;
            }
        }
        if used == 0 && when.part.is_none() {
            if let Some(part) = part_of_day(w) {
                when.part = Some(part);
                // "This afternoon" is today's; "in the afternoon" may be another day's.
                if i > 0 && text(i - 1) == "this" {
                    when.day = when.day.or(Some(Day::Today));
                }
                used = 1;
            }
        }
        if used == 0 && when.delay.is_none() && w == "in" {
            if let Some((delay, n)) = delay(&tokens[i + 1..]) {
                when.delay = Some(delay);
                used = 1 + n;
            }
        }
        if used == 0 && when.clock.is_none() {
            if w == "noon" || w == "midday" {
                when.clock = Some(Clock {
                    hour: 12,
                    minute: 0,
                    meridiem: None,
                });
                used = 1;
            } else if let Some((found, n)) = clock_at(&tokens, i) {
                when.clock = Some(found);
                used = n;
            }
        }
        if used > 0 {
            when.saw(word_at(i), word_at(i + used - 1) + 1);
            i += used;
        } else {
            i += 1;
        }
    }
    when
}

/// "a"/"an"/N/"a couple of" hours or minutes, or "half an hour", at the start of `tokens`: the
/// delay and how many tokens said it.
fn delay(tokens: &[(String, usize)]) -> Option<(Duration, usize)> {
    let text = |i: usize| tokens.get(i).map_or("", |(t, _)| t.as_str());
    if text(0) == "half" && matches!(text(1), "a" | "an") && heard(text(2), "hour") {
        return Some((Duration::minutes(30), 3));
    }
    let (amount, mut n) = match text(0) {
        "a" | "an" if text(1) == "couple" => (2, 2),
        "a" | "an" => (1, 1),
        "couple" => (2, 1),
        number => (
            number
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=48 * 60).contains(n))?,
            1,
        ),
    };
    if text(n) == "of" {
        n += 1;
    }
    let minutes = match text(n) {
        "hour" | "hours" => amount * 60,
        "minute" | "minutes" | "min" | "mins" => amount,
        _ => return None,
    };
    Some((Duration::minutes(minutes), n + 1))
}

/// A clock time starting at `tokens[i]`: an hour, maybe minutes ("10 30", "10 0 5"), maybe
/// am/pm or o'clock; a bare number counts only after a cue ("at 3"), and none followed by more
/// digits (a phone number: "reach me at 5 5 5 1 2 1 2"). The time and how many tokens said it.
fn clock_at(tokens: &[(String, usize)], i: usize) -> Option<(Clock, usize)> {
    let text = |k: usize| tokens.get(k).map_or("", |(t, _)| t.as_str());
    let number = |k: usize| {
        let t = text(k);
        if !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse::<u32>().ok()
        } else {
            None
        }
    };
    let hour = number(i).filter(|h| (1..=23).contains(h))?;
    let mut k = i + 1;
    let mut minute = 0;
    if text(k).len() == 2 && number(k).is_some_and(|m| m <= 59) {
        minute = number(k)?;
        k += 1;
    } else if text(k) == "0" && text(k + 1).len() == 1 && number(k + 1).is_some() {
        // "ten oh five": the normalizer reads "oh" as a zero.
        minute = number(k + 1)?;
        k += 2;
    }
    let mut meridiem = None;
    let mut oclock = false;
    match (text(k), text(k + 1)) {
        ("am", _) => (meridiem, k) = (Some(Meridiem::Am), k + 1),
        ("pm", _) => (meridiem, k) = (Some(Meridiem::Pm), k + 1),
        ("a", "m") => (meridiem, k) = (Some(Meridiem::Am), k + 2),
        ("p", "m") => (meridiem, k) = (Some(Meridiem::Pm), k + 2),
        ("oclock", _) | ("clock", _) => (oclock, k) = (true, k + 1),
        // "o clock": the normalizer reads the "o" after a number as a zero.
        ("0", "clock") => (oclock, k) = (true, k + 2),
        _ => {}
    }
    let cued = i > 0 && TIME_CUES.contains(&text(i - 1));
    if !(cued || oclock || meridiem.is_some()) || number(k).is_some() {
        return None;
    }
    Some((
        Clock {
            hour,
            minute,
            meridiem,
        },
        k - i,
    ))
}

/// When `when` asks to be called, said at `spoken_at`, and whether it said the time; `None`
/// when it says nothing about when.
fn resolve(when: &When, spoken_at: DateTime<Tz>) -> Option<(DateTime<Tz>, bool)> {
    if let Some(delay) = when.delay {
        return Some((spoken_at + delay, true));
    }
    let tz = spoken_at.timezone();
    let today = spoken_at.date_naive();
    let date = when.day.map(|day| match day {
        Day::Today => today,
        Day::Tomorrow => today + Duration::days(1),
        Day::On(weekday) => {
            let ahead =
                (weekday.num_days_from_monday() + 7 - today.weekday().num_days_from_monday()) % 7;
            today + Duration::days(i64::from(if ahead == 0 { 7 } else { ahead }))
        }
        Day::NextWeek => {
            today + Duration::days(i64::from(7 - today.weekday().num_days_from_monday()))
        }
    });
    let time = match (when.clock, when.part) {
        (Some(clock), part) => Some((clock.time(part), true)),
        (None, Some(part)) => Some((time_of_day(part.default_hour(), 0), false)),
        (None, None) => None,
    };
    let (time, explicit) = match (date, time) {
        (None, None) => return None,
        (Some(_), None) => (time_of_day(DEFAULT_HOUR, 0), false),
        (_, Some(time)) => time,
    };
    let on = date.unwrap_or(today);
    let at = local(tz, on, time);
    if at > spoken_at || !matches!(when.day, None | Some(Day::Today)) {
        return Some((at, explicit));
    }
    if when.day == Some(Day::Today) && !explicit {
        // "Later today" once the default hour has passed: the top of the hour one to two hours on.
        let later = spoken_at + Duration::hours(2);
        let top = later
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(later);
        return Some((top, false));
    }
    Some((local(tz, on + Duration::days(1), time), explicit))
}

fn time_of_day(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("an hour 0-23 and a minute 0-59")
}

/// `date` at `time` in `tz`: the first of a time a daylight-saving change repeats, an hour later
/// for one it skips.
pub fn local(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Tz> {
    let at = date.and_time(time);
    tz.from_local_datetime(&at)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(at + Duration::hours(1)))
                .earliest()
        })
        // No zone skips more than an hour at once but Samoa's day in 2011: read it as UTC.
        .unwrap_or_else(|| tz.from_utc_datetime(&at))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;
    use chrono_tz::{America::New_York, Asia::Tokyo, Europe::London};

    use super::*;

    /// `local` ("2026-11-05 15:00") in `tz`; unambiguous in these tests.
    fn at(tz: Tz, local: &str) -> DateTime<Tz> {
        let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        tz.from_local_datetime(&naive).single().unwrap()
    }

    /// What `text` said at `spoken` asks for, as local time with its offset.
    fn parsed(text: &str, tz: Tz, spoken: &str) -> Option<(String, bool)> {
        parse_callback(text, at(tz, spoken))
            .map(|(due, explicit)| (due.format("%a %Y-%m-%d %H:%M %:z").to_string(), explicit))
    }

    // Thursday 5 November 2026, New York (EST, -05:00).
    const THU_3PM: &str = "2026-11-05 15:00";
    const THU_9AM: &str = "2026-11-05 09:00";

    #[test]
    fn callback_times_as_said() {
        let cases: &[(&str, Tz, &str, &str, bool)] = &[
            (
                "Call me back tomorrow at ten.",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                true,
            ),
            (
                "call me back at 3",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 15:00 -05:00",
                true,
            ),
            // 3 o'clock has passed: tomorrow's.
            (
                "call me back at 3",
                New_York,
                "2026-11-05 16:00",
                "Fri 2026-11-06 15:00 -05:00",
                true,
            ),
            (
                "Can you call me on Friday?",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                false,
            ),
            (
                "call me back next friday",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                false,
            ),
            // Today's weekday is next week's.
            (
                "call me back thursday",
                New_York,
                THU_3PM,
                "Thu 2026-11-12 10:00 -05:00",
                false,
            ),
            (
                "call me back next week",
                New_York,
                THU_3PM,
                "Mon 2026-11-09 10:00 -05:00",
                false,
            ),
            (
                "call me back in two hours",
                New_York,
                THU_3PM,
                "Thu 2026-11-05 17:00 -05:00",
                true,
            ),
            (
                "call me back in half an hour",
                New_York,
                THU_3PM,
                "Thu 2026-11-05 15:30 -05:00",
                true,
            ),
            (
                "try me again in 45 minutes",
                New_York,
                THU_3PM,
                "Thu 2026-11-05 15:45 -05:00",
                true,
            ),
            (
                "call me back tomorrow, ten thirty am",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:30 -05:00",
                true,
            ),
            (
                "call me back at ten oh five",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 10:05 -05:00",
                true,
            ),
            (
                "give me a call at 3pm",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 15:00 -05:00",
                true,
            ),
            (
                "give me a call at 8 p.m.",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 20:00 -05:00",
                true,
            ),
            (
                "call me back at noon",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 12:00 -05:00",
                true,
            ),
            (
                "call back around 10 o'clock",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                true,
            ),
            (
                "call me back around four",
                New_York,
                THU_3PM,
                "Thu 2026-11-05 16:00 -05:00",
                true,
            ),
            (
                "call me back at 8 tonight",
                New_York,
                THU_3PM,
                "Thu 2026-11-05 20:00 -05:00",
                true,
            ),
            (
                "call me back this afternoon",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 14:00 -05:00",
                false,
            ),
            // Tonight's default hour has passed: later tonight.
            (
                "call me back tonight",
                New_York,
                "2026-11-05 20:30",
                "Thu 2026-11-05 22:00 -05:00",
                false,
            ),
            (
                "tomorrow morning at 9, call me back",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 09:00 -05:00",
                true,
            ),
            (
                "call me bak tomorow",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                false,
            ),
            // No time: the next business day at 10.
            (
                "Call me later, I'm driving.",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                false,
            ),
            (
                "call me back later",
                New_York,
                "2026-11-06 15:00",
                "Mon 2026-11-09 10:00 -05:00",
                false,
            ),
            // "After" heard as "later": the request's own words hold the cue.
            (
                "can you call me after five thirty?",
                New_York,
                THU_9AM,
                "Thu 2026-11-05 17:30 -05:00",
                true,
            ),
            // Digits of a phone number are no time.
            (
                "you can reach me at 5 5 5 1 2 1 2",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 10:00 -05:00",
                false,
            ),
            // "Call me" asks only with a time.
            (
                "call me tomorrow at 4",
                New_York,
                THU_3PM,
                "Fri 2026-11-06 16:00 -05:00",
                true,
            ),
            (
                "call me back at 15",
                London,
                THU_9AM,
                "Thu 2026-11-05 15:00 +00:00",
                true,
            ),
            (
                "call me back tomorrow at 9 am",
                Tokyo,
                "2026-11-05 22:00",
                "Fri 2026-11-06 09:00 +09:00",
                true,
            ),
            // 02:30 on 8 March 2026 does not exist in New York: an hour later, on EDT.
            (
                "call me back at 2 30 am",
                New_York,
                "2026-03-07 20:00",
                "Sun 2026-03-08 03:30 -04:00",
                true,
            ),
            // 01:30 on 1 November 2026 happens twice: the first, still EDT.
            (
                "call me back sunday at 1 30 am",
                New_York,
                "2026-10-31 12:00",
                "Sun 2026-11-01 01:30 -04:00",
                true,
            ),
            // London springs forward on 29 March 2026 at 01:00.
            (
                "call me back at 1 30 am",
                London,
                "2026-03-28 20:00",
                "Sun 2026-03-29 02:30 +01:00",
                true,
            ),
        ];
        for &(text, tz, spoken, due, explicit) in cases {
            assert_eq!(
                parsed(text, tz, spoken),
                Some((due.to_owned(), explicit)),
                "{text:?} at {spoken} {tz}"
            );
        }
    }

    #[test]
    fn no_request_no_callback() {
        for text in [
            "don't call me back",
            "you can call me Bob",
            "I'll call you back at 3",
            "tomorrow at ten works",
            "",
        ] {
            assert_eq!(parsed(text, New_York, THU_3PM), None, "{text:?}");
        }
    }

    #[test]
    fn the_last_request_counts_and_its_words_are_kept() {
        let words = normalize::words("call me back friday, no wait, call me back monday at 11");
        let found = requests(&words, |_| at(New_York, THU_3PM));
        let said: Vec<(Vec<&str>, String)> = found
            .iter()
            .map(|r| {
                let text = words[r.words.clone()]
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect();
                (text, r.due.format("%a %d %H:%M").to_string())
            })
            .collect();
        assert_eq!(
            said,
            [
                (
                    vec!["call", "me", "back", "friday"],
                    "Fri 06 10:00".to_owned()
                ),
                (
                    vec!["call", "me", "back", "monday", "at", "11"],
                    "Mon 09 11:00".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn next_business_day() {
        let cases = [
            ("2026-11-05 15:00", "Fri 2026-11-06 10:00"),
            ("2026-11-06 09:00", "Mon 2026-11-09 10:00"),
            ("2026-11-07 09:00", "Mon 2026-11-09 10:00"),
            ("2026-11-08 23:59", "Mon 2026-11-09 10:00"),
        ];
        for (now, due) in cases {
            let next = next_business_day_at(at(New_York, now), DEFAULT_HOUR);
            assert_eq!(next.format("%a %Y-%m-%d %H:%M").to_string(), due, "{now}");
        }
    }
}
