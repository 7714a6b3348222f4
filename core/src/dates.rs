//! Time bounds given by people: on the command line (`--from 2026-11-01`) and in API queries.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

/// The start of a range: an RFC 3339 time, or a date's first instant (UTC).
pub fn parse_from(text: &str) -> Result<DateTime<Utc>, String> {
    parse(text, false)
}

/// The (exclusive) end of a range: an RFC 3339 time, or the end of a date (UTC), so `--to
/// 2026-11-01` includes that day.
pub fn parse_to(text: &str) -> Result<DateTime<Utc>, String> {
    parse(text, true)
}

fn parse(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    // Four-digit years only, as RFC 3339 has them: chrono reads signed years of six digits,
    // which the database cannot store.
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|date| (0..=9999).contains(&date.year()))
        .ok_or_else(|| format!("{text:?} is not a date (2026-11-01) or an RFC 3339 time"))?;
    let day = date.and_time(NaiveTime::MIN).and_utc();
    Ok(if end_of_day {
        day + Duration::days(1)
    } else {
        day
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_cover_whole_days_and_times_are_exact() {
        assert_eq!(
            parse_from("2026-11-01").unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_to("2026-11-01").unwrap().to_rfc3339(),
            "2026-11-02T00:00:00+00:00"
        );
        assert_eq!(
            parse_to("2026-11-01T10:30:00-05:00").unwrap().to_rfc3339(),
            "2026-11-01T15:30:00+00:00"
        );
        let error = parse_from("1/11/2026").unwrap_err();
        assert!(error.contains("\"1/11/2026\" is not a date"), "{error}");
        for outside in ["-262143-01-01", "+10000-01-01", "262143-12-31"] {
            assert!(parse_to(outside).is_err(), "{outside}");
        }
    }
}
