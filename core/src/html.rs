//! Text made inert in HTML, for every page and mail callscript writes.

use std::fmt::Display;

/// `value` as HTML text or a quoted attribute value: the five characters that could end a text
/// run, a tag or an attribute become entities. Callers pass every interpolated value through
/// here, ids and numbers included, so no call site has to decide whether a value is "safe".
pub fn escape(value: impl Display) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_text_and_attribute_breakers() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>Tom & Jerry</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;"
        );
        assert_eq!(escape("plain words 0:04"), "plain words 0:04");
        assert_eq!(escape(42), "42");
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }
}
