//! One shape for every export: a row type lists its columns once ([`Column`]), and both the
//! JSON (the API, `--format json`) and the CSV (`--format csv`) are written from that list, so
//! a JSON key is always a CSV header and a value reads the same in both. Every time is RFC 3339
//! UTC ending in `Z` ([`time`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde_json::Value;

/// One exported field of a `T`: its name (JSON key and CSV header) and how to read it.
pub struct Column<T> {
    pub name: &'static str,
    pub value: fn(&T) -> Value,
}

/// A time as every export writes it: RFC 3339, UTC, `Z`, fractional seconds only when present
/// (the format chrono's own `Serialize` uses, so derived JSON elsewhere agrees).
pub fn time(at: DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// [`time`] of an optional time; `null` when absent.
pub fn optional_time(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, time)
}

/// `row` as a JSON object of `columns`, in their order.
pub fn serialize<T, S: serde::Serializer>(
    columns: &[Column<T>],
    row: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(columns.len()))?;
    for column in columns {
        map.serialize_entry(column.name, &(column.value)(row))?;
    }
    map.end()
}

/// RFC 4180 CSV: a header of the column names, then one record per row. A `null` is an empty
/// field, a string its text, anything else its JSON text.
pub fn csv<T>(columns: &[Column<T>], rows: &[T]) -> String {
    let mut out = csv_record(columns.iter().map(|column| column.name.to_owned()));
    for row in rows {
        out.push_str(&csv_record(columns.iter().map(
            |column| match (column.value)(row) {
                Value::Null => String::new(),
                Value::String(text) => text,
                other => other.to_string(),
            },
        )));
    }
    out
}

/// One CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv_record(fields: impl Iterator<Item = String>) -> String {
    let fields: Vec<String> = fields.map(|field| csv_field(&field)).collect();
    // RFC 4180 ends records with CRLF; spreadsheets and CSV readers accept it everywhere.
    format!("{}\r\n", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    struct Row {
        text: String,
        count: Option<i32>,
        at: DateTime<Utc>,
    }

    const COLUMNS: &[Column<Row>] = &[
        Column {
            name: "text",
            value: |row| json!(row.text),
        },
        Column {
            name: "count",
            value: |row| json!(row.count),
        },
        Column {
            name: "at",
            value: |row| time(row.at),
        },
    ];

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("plain text"), "plain text");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"yes\""), "\"say \"\"yes\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn json_and_csv_come_from_the_same_columns() {
        let at = Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap();
        let rows = [
            Row {
                text: "b,c".into(),
                count: Some(3),
                at,
            },
            Row {
                text: "d".into(),
                count: None,
                at: at + chrono::Duration::microseconds(250),
            },
        ];
        assert_eq!(
            csv(COLUMNS, &rows),
            "text,count,at\r\n\
             \"b,c\",3,2026-11-05T15:00:00Z\r\n\
             d,,2026-11-05T15:00:00.000250Z\r\n"
        );
        let mut json = serde_json::Serializer::new(Vec::new());
        serialize(COLUMNS, &rows[1], &mut json).unwrap();
        assert_eq!(
            String::from_utf8(json.into_inner()).unwrap(),
            r#"{"text":"d","count":null,"at":"2026-11-05T15:00:00.000250Z"}"#
        );
    }

    #[test]
    fn times_are_written_as_chrono_serializes_them() {
        let at = Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(time(at), serde_json::to_value(at).unwrap());
        assert_eq!(time(at), "2026-11-05T15:00:00.123456Z");
    }
}
