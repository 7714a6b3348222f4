//! The pages' HTML, from the review crate's data: pure functions, so markup is tested without
//! a server. Element ids and classes (`table#flags`, `a.call-link`, `.flag-status`,
//! `button.confirm`…) are part of the contract with the browser test; keep them stable.

use std::collections::HashMap;

use axum::http::StatusCode;
use callscript_core::model::{ReviewStatus, Severity};
use callscript_review::calls::{clock, CallView, Segment};
use callscript_review::flags::{FlagRow, Page};
use callscript_review::health::QueueHealth;
use callscript_review::members::{can_review, Member};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::html::{escape, page};
use crate::api::FlagQuery;

/// Speaker colours in the stylesheet (`.speaker-0` …); more speakers reuse them in turn.
const SPEAKER_COLOURS: usize = 4;

/// Seeks the page's player to a time button's `data-seek` second and plays from there. Inline
/// (and delegated, so one listener serves every button) because the UI has no script build.
const SEEK_SCRIPT: &str = "<script>
document.addEventListener('click', function (event) {
  var button = event.target.closest('[data-seek]');
  var player = document.getElementById('player');
  if (!button || !player) return;
  player.currentTime = Number(button.dataset.seek);
  player.play().catch(function () {});
});
</script>";

pub fn login(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    let body = format!(
        "<h1>Sign in</h1>{error}\
         <form id=\"login\" method=\"post\" action=\"/login\">\
         <label for=\"token\">API token</label> \
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required> \
         <button type=\"submit\">Sign in</button></form>\
         <p>Your API token comes from an admin of your organization.</p>"
    );
    page("Sign in", None, &body)
}

pub fn error(status: StatusCode, message: &str) -> String {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Back to the queue</a></p>",
        escape(title),
        escape(message)
    );
    page(title, None, &body)
}

pub fn health(member: &Member, health: &QueueHealth) -> String {
    let states: String = health
        .by_state
        .iter()
        .map(|(state, count)| {
            format!(
                "<tr class=\"state-{state}\"><td>{state}</td><td class=\"count\">{count}</td></tr>",
                state = escape(state),
                count = escape(count)
            )
        })
        .collect();
    let oldest = health
        .oldest_downloaded_seconds
        .map_or_else(|| "none waiting".to_owned(), age);
    let body = format!(
        "<h1>Queue health</h1>\
         <table id=\"states\"><caption>Calls by state, in pipeline order</caption>\
         <thead><tr><th scope=\"col\">State</th><th scope=\"col\">Calls</th></tr></thead>\
         <tbody>{states}</tbody></table>\
         <h2>Throughput</h2><dl class=\"facts\" id=\"throughput\">\
         <dt>Judged in the last hour</dt><dd id=\"judged-last-hour\">{judged}</dd>\
         <dt>Audio judged in the last hour</dt><dd id=\"audio-hours\">{hours} h</dd>\
         <dt>Oldest call waiting for a worker</dt><dd id=\"oldest-waiting\">{oldest}</dd>\
         <dt>Waiting to retry after an error</dt><dd id=\"retrying\">{retrying}</dd>\
         <dt>Open flags</dt><dd id=\"open-flags\"><a href=\"/flags?status=open\">{open}</a></dd>\
         </dl>",
        judged = escape(health.judged_last_hour),
        hours = escape(format!("{:.2}", health.audio_hours_last_hour)),
        oldest = escape(oldest),
        retrying = escape(health.retrying),
        open = escape(health.open_flags),
    );
    page("Queue health", Some(member), &body)
}

/// A wait in seconds as people read it: "45s", "3m 20s", "2h 05m".
fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m"),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The flags page: the filter form as `query` asked, then the page of flags or why the filter
/// was refused.
pub fn flags(member: &Member, query: &FlagQuery, listing: Result<&Page<FlagRow>, &str>) -> String {
    let listing = match listing {
        Ok(page) => flag_table(query, page),
        Err(message) => format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message)),
    };
    let body = format!("<h1>Flags</h1>{}{listing}", filter_form(query));
    page("Flags", Some(member), &body)
}

fn filter_form(query: &FlagQuery) -> String {
    let text = |name: &str, label: &str, value: &Option<String>, placeholder: &str| {
        format!(
            "<label>{label} <input id=\"filter-{name}\" name=\"{name}\" value=\"{value}\" \
             placeholder=\"{placeholder}\"></label>",
            label = escape(label),
            name = escape(name),
            value = escape(value.as_deref().unwrap_or_default()),
            placeholder = escape(placeholder),
        )
    };
    let select = |name: &str, label: &str, value: &Option<String>, options: &[&str]| {
        let chosen = value.as_deref().unwrap_or_default();
        let options: String = options
            .iter()
            .map(|option| {
                format!(
                    "<option value=\"{v}\"{selected}>{v}</option>",
                    v = escape(option),
                    selected = if *option == chosen { " selected" } else { "" }
                )
            })
            .collect();
        format!(
            "<label>{label} <select id=\"filter-{name}\" name=\"{name}\">\
             <option value=\"\">any</option>{options}</select></label>",
            label = escape(label),
            name = escape(name),
        )
    };
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let statuses: Vec<&str> = ReviewStatus::ALL.iter().map(|s| s.as_str()).collect();
    format!(
        "<form id=\"filters\" method=\"get\" action=\"/flags\">{}{}{}{}{}{}{}\
         <button type=\"submit\">Filter</button> <a href=\"/flags\">Clear</a></form>",
        text("campaign", "Campaign", &query.campaign, "name or id"),
        text("rule", "Rule", &query.rule, "rule id"),
        select("severity", "Minimum severity", &query.severity, &severities),
        select("status", "Status", &query.status, &statuses),
        text("from", "From", &query.from, "YYYY-MM-DD"),
        text("to", "To", &query.to, "YYYY-MM-DD"),
        // The page size is not in the form; a link that set it keeps it.
        query
            .limit
            .as_ref()
            .map_or_else(String::new, |limit| format!(
                "<input type=\"hidden\" name=\"limit\" value=\"{}\">",
                escape(limit)
            )),
    )
}

fn flag_table(query: &FlagQuery, page: &Page<FlagRow>) -> String {
    if page.items.is_empty() {
        return "<p id=\"summary\">No flags match.</p>".to_owned();
    }
    let rows: String = page
        .items
        .iter()
        .map(|flag| {
            format!(
                "<tr id=\"row-{id}\"><td><a class=\"call-link\" href=\"/calls/{call}#flag-{id}\">\
                 {started}</a></td><td class=\"campaign\">{campaign}</td>\
                 <td class=\"rule\">{rule}</td><td class=\"severity sev-{severity}\">{severity}</td>\
                 <td class=\"flag-status\">{status}</td><td class=\"evidence\">{evidence}</td>\
                 <td class=\"at\">{at}</td></tr>",
                id = escape(flag.id),
                call = escape(flag.call_id),
                started = escape(time(flag.call_started_at)),
                campaign = escape(flag.campaign.as_deref().unwrap_or("—")),
                rule = escape(&flag.rule_id),
                severity = escape(flag.severity),
                status = escape(flag.review_status),
                evidence = escape(&flag.evidence),
                at = escape(flag.start_ms.map_or_else(|| "—".to_owned(), clock)),
            )
        })
        .collect();
    let first = page.offset + 1;
    let last = page.offset + page.items.len() as i64;
    let prev = (page.offset > 0).then(|| {
        format!(
            "<a rel=\"prev\" href=\"{}\">Previous</a>",
            escape(flags_href(query, (page.offset - page.limit).max(0)))
        )
    });
    let next = page.next_offset().map(|offset| {
        format!(
            "<a rel=\"next\" href=\"{}\">Next</a>",
            escape(flags_href(query, offset))
        )
    });
    format!(
        "<p id=\"summary\">Flags {first}–{last} of {total}</p>\
         <table id=\"flags\"><thead><tr><th scope=\"col\">Call started</th>\
         <th scope=\"col\">Campaign</th><th scope=\"col\">Rule</th><th scope=\"col\">Severity</th>\
         <th scope=\"col\">Status</th><th scope=\"col\">Evidence</th><th scope=\"col\">At</th>\
         </tr></thead><tbody>{rows}</tbody></table>\
         <nav class=\"pages\" aria-label=\"Pages\">{} {}</nav>",
        prev.unwrap_or_default(),
        next.unwrap_or_default(),
        first = escape(first),
        last = escape(last),
        total = escape(page.total),
    )
}

/// `/flags` with `query`'s filters and page size, starting at `offset`.
fn flags_href(query: &FlagQuery, offset: i64) -> String {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("campaign", &query.campaign),
        ("rule", &query.rule),
        ("severity", &query.severity),
        ("status", &query.status),
        ("from", &query.from),
        ("to", &query.to),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            pairs.append_pair(name, value);
        }
    }
    if let Some(limit) = query.limit.as_deref().filter(|v| !v.trim().is_empty()) {
        pairs.append_pair("limit", limit);
    }
    if offset > 0 {
        pairs.append_pair("offset", &offset.to_string());
    }
    let pairs = pairs.finish();
    if pairs.is_empty() {
        "/flags".to_owned()
    } else {
        format!("/flags?{pairs}")
    }
}

/// A button that plays the recording from `ms` (plain text when there is no recording).
fn seek_button(ms: i32, class: &str, label: &str, playable: bool) -> String {
    if !playable {
        return escape(label);
    }
    format!(
        "<button type=\"button\" class=\"{class}\" data-seek=\"{second}\">{label}</button>",
        class = escape(class),
        second = escape(f64::from(ms) / 1000.0),
        label = escape(label),
    )
}

pub fn call(member: &Member, call: &CallView) -> String {
    let playable = call.object_key.is_some();
    let optional = |value: Option<String>| value.unwrap_or_else(|| "—".to_owned());
    let facts = [
        ("Source", call.source.clone()),
        ("State", call.state.clone()),
        ("Campaign", optional(call.campaign.clone())),
        ("Started", time(call.call_started_at)),
        ("Duration", optional(call.duration_ms.map(clock))),
        ("Caller", optional(call.caller_number.clone())),
        ("Called", optional(call.callee_number.clone())),
        ("Channels", optional(call.channels.map(|c| c.to_string()))),
        ("Transcribed by", optional(call.transcript_model.clone())),
        ("Last error", optional(call.last_error.clone())),
    ];
    let facts: String = facts
        .iter()
        .map(|(name, value)| format!("<dt>{}</dt><dd>{}</dd>", escape(name), escape(value)))
        .collect();
    let player = if playable {
        format!(
            "<audio controls id=\"player\" src=\"/calls/{}/audio\" preload=\"metadata\"></audio>",
            escape(call.id)
        )
    } else {
        "<p id=\"no-recording\">No recording is stored for this call.</p>".to_owned()
    };
    let body = format!(
        "<h1>Call {external}</h1><dl class=\"facts\" id=\"call-facts\">{facts}</dl>{player}\
         <h2>Transcript</h2>{transcript}<h2>Flags</h2>{flags}{SEEK_SCRIPT}",
        external = escape(&call.external_id),
        transcript = transcript(call, playable),
        flags = call_flags(member, &call.flags, playable),
    );
    page(&format!("Call {}", call.external_id), Some(member), &body)
}

/// Who said a segment, as shown: the diarized speaker, else the channel.
fn speaker_label(segment: &Segment) -> String {
    match (&segment.speaker, segment.channel) {
        (Some(speaker), _) => speaker.clone(),
        (None, Some(channel)) => format!("channel {channel}"),
        (None, None) => "unknown".to_owned(),
    }
}

fn transcript(call: &CallView, playable: bool) -> String {
    if call.segments.is_empty() {
        return "<p id=\"no-transcript\">No transcript yet.</p>".to_owned();
    }
    let rules: HashMap<Uuid, &str> = call
        .flags
        .iter()
        .map(|f| (f.id, f.rule_id.as_str()))
        .collect();
    // Colours follow the order speakers first speak in, so a call's first speaker is always
    // the same colour whatever the diarizer named them.
    let mut speakers: Vec<String> = Vec::new();
    let rows: String = call
        .segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let label = speaker_label(segment);
            let colour = speakers
                .iter()
                .position(|s| *s == label)
                .unwrap_or_else(|| {
                    speakers.push(label.clone());
                    speakers.len() - 1
                })
                % SPEAKER_COLOURS;
            let role = segment.role.as_deref().unwrap_or("unknown");
            let markers: String = segment
                .flag_ids
                .iter()
                .map(|id| {
                    format!(
                        " <a class=\"flag-marker\" href=\"#flag-{}\">⚑ {}</a>",
                        escape(id),
                        escape(rules.get(id).copied().unwrap_or("flag"))
                    )
                })
                .collect();
            format!(
                "<tr id=\"segment-{i}\" class=\"segment speaker-{colour} role-{role}{flagged}\" \
                 data-speaker=\"{label}\"><td>{at}</td><td class=\"speaker\">{label}</td>\
                 <td class=\"role\">{role}</td><td class=\"text\">{text}{markers}</td></tr>",
                i = escape(i),
                colour = escape(colour),
                role = escape(role),
                flagged = if segment.flag_ids.is_empty() {
                    ""
                } else {
                    " flagged"
                },
                label = escape(&label),
                at = seek_button(segment.start_ms, "seek", &clock(segment.start_ms), playable),
                text = escape(&segment.text),
            )
        })
        .collect();
    format!(
        "<table id=\"transcript\"><thead><tr><th scope=\"col\">At</th>\
         <th scope=\"col\">Speaker</th><th scope=\"col\">Role</th><th scope=\"col\">Said</th>\
         </tr></thead><tbody>{rows}</tbody></table>"
    )
}

fn call_flags(member: &Member, flags: &[FlagRow], playable: bool) -> String {
    if flags.is_empty() {
        return "<p id=\"no-flags\">No flags.</p>".to_owned();
    }
    let items: String = flags
        .iter()
        .map(|flag| {
            let when = match (flag.start_ms, flag.end_ms) {
                (Some(start), Some(end)) => format!("{}–{}", clock(start), clock(end)),
                (Some(start), None) => clock(start),
                _ => "time unknown".to_owned(),
            };
            let who = match (&flag.speaker, &flag.role) {
                (Some(speaker), Some(role)) => format!(" · {speaker} ({role})"),
                (Some(speaker), None) => format!(" · {speaker}"),
                (None, Some(role)) => format!(" · {role}"),
                (None, None) => String::new(),
            };
            let play = flag.start_ms.map_or_else(String::new, |ms| {
                seek_button(
                    ms,
                    "play-from",
                    &format!("Play from {}", clock(ms)),
                    playable,
                )
            });
            let reviewed = flag.reviewed_at.map_or_else(String::new, |at| {
                format!(
                    "<p class=\"reviewed\">{} by {} at {}{}</p>",
                    escape(flag.review_status),
                    escape(flag.reviewer.as_deref().unwrap_or("someone")),
                    escape(time(at)),
                    flag.note
                        .as_deref()
                        .map_or_else(String::new, |note| format!(": {}", escape(note))),
                )
            });
            let review = if can_review(member.role) {
                format!(
                    "<form class=\"review\" method=\"post\" action=\"/flags/{id}/review\">\
                     <label>Note <input name=\"note\" class=\"note\"></label>\
                     <button type=\"submit\" name=\"decision\" value=\"confirm\" class=\"confirm\">\
                     Confirm</button>\
                     <button type=\"submit\" name=\"decision\" value=\"dismiss\" class=\"dismiss\">\
                     Dismiss</button></form>",
                    id = escape(flag.id)
                )
            } else {
                String::new()
            };
            format!(
                "<li id=\"flag-{id}\" class=\"flag\"><strong class=\"rule\">{rule}</strong> \
                 <span class=\"severity sev-{severity}\">{severity}</span> · \
                 <span class=\"category\">{category}</span> · \
                 <span class=\"flag-status\">{status}</span>\
                 <blockquote class=\"evidence\">{evidence}</blockquote>\
                 <span class=\"when\">{when}{who}</span> {play}{review}{reviewed}</li>",
                id = escape(flag.id),
                severity = escape(flag.severity),
                rule = escape(&flag.rule_id),
                category = escape(flag.category),
                status = escape(flag.review_status),
                evidence = escape(&flag.evidence),
                when = escape(when),
                who = escape(who),
            )
        })
        .collect();
    format!("<ol id=\"call-flags\">{items}</ol>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(45), "45s");
        assert_eq!(age(200), "3m 20s");
        assert_eq!(age(7_500), "2h 05m");
    }

    #[test]
    fn page_links_keep_the_filters() {
        let query = FlagQuery {
            rule: Some("do-not-call".into()),
            campaign: Some("Solar & Co".into()),
            status: Some(String::new()),
            limit: Some("10".into()),
            ..FlagQuery::default()
        };
        assert_eq!(
            flags_href(&query, 20),
            "/flags?campaign=Solar+%26+Co&rule=do-not-call&limit=10&offset=20"
        );
        assert_eq!(flags_href(&FlagQuery::default(), 0), "/flags");
    }
}
