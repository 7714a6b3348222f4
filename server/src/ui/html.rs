//! The pieces every page is made of: escaping and the shared layout.

use callscript_review::members::Member;

pub use callscript_core::html::escape;

/// Kept inline so the binary serves the UI with no static files or build step.
const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 0; color: #1f2937; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.5rem;
         background: #111827; color: #f9fafb; }
header a { color: #f9fafb; }
header .who { margin-left: auto; }
header form { display: inline; }
main { padding: 1rem 1.5rem; max-width: 75rem; }
table { border-collapse: collapse; width: 100%; }
table#states { width: auto; min-width: 20rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb;
         vertical-align: top; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
form#filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end;
               margin-bottom: 1rem; }
form#filters label { display: flex; flex-direction: column; font-size: .85rem; }
.error { color: #b91c1c; font-weight: 600; }
.sev-critical { color: #b91c1c; font-weight: 700; }
.sev-high { color: #c2410c; font-weight: 600; }
.sev-medium { color: #a16207; }
.speaker-0 td { border-left: 4px solid #2563eb; }
.speaker-0 .speaker { color: #1d4ed8; }
.speaker-1 td { border-left: 4px solid #16a34a; }
.speaker-1 .speaker { color: #15803d; }
.speaker-2 td { border-left: 4px solid #9333ea; }
.speaker-2 .speaker { color: #7e22ce; }
.speaker-3 td { border-left: 4px solid #db2777; }
.speaker-3 .speaker { color: #be185d; }
tr.flagged { background: #fef3c7; }
ol#call-flags li { margin-bottom: .8rem; }
blockquote.evidence { margin: .3rem 0 .3rem 1rem; font-style: italic; }
form.review { display: inline-flex; gap: .4rem; margin-left: .6rem; }
audio { width: 100%; margin: .6rem 0 1rem; }
";

/// A whole page: `title` (escaped here) and `body` (already HTML), with the navigation and,
/// when someone is signed in, who they are and a sign-out button.
pub fn page(title: &str, member: Option<&Member>, body: &str) -> String {
    let who = member.map_or_else(String::new, |m| {
        format!(
            "<span class=\"who\">{} ({})</span>\
             <form method=\"post\" action=\"/logout\"><button type=\"submit\" id=\"logout\">\
             Sign out</button></form>",
            escape(&m.email),
            escape(m.role)
        )
    });
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · callscript</title><style>{STYLE}</style></head>\n<body>\
         <header><strong>callscript</strong><nav><a href=\"/\">Queue</a> · \
         <a href=\"/flags\">Flags</a></nav>{who}</header>\n<main>{body}</main></body></html>\n",
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_title_is_escaped() {
        let html = super::page("<script>", None, "<p>body</p>");
        assert!(html.contains("<title>&lt;script&gt; · callscript</title>"));
        assert!(html.contains("<main><p>body</p></main>"));
    }
}
