//! **Email** is one mail to all of the channel's recipients, submitted over SMTP with lettre:
//! the [`render::Message`]'s title as the subject, and a `multipart/alternative` body whose
//! plain-text and HTML parts say the same (fields, the quote, a digest's lines, the link).
//!
//! - `Message-ID` is made from the delivery id, so every attempt of one notification is the same
//!   message and mail clients and receiving servers can drop repeats; `X-Callscript-Delivery`
//!   carries the delivery id itself, as on webhooks.
//! - TLS: STARTTLS by default, required before the login and the mail go (a server that does
//!   not offer it gets nothing); or TLS from the first byte; or none, which
//!   [`crate::channels`] allows only to a loopback server. The public roots are trusted, plus
//!   the channel's own root CA when it has one (a private relay's).
//!
//! A 4xx refusal, a lost connection or a timeout is retried like any failed delivery. A 5xx
//! refusal (a wrong login, a recipient the server does not take) will come again until the
//! channel or the server changes; the lane has no outcome for "never", so it is retried too,
//! until its attempts run out, and its error says it is permanent.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use callscript_core::credentials::Secret;
use callscript_core::html::escape;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use super::{link_label, Notification, Outcome, DELIVERY_HEADER};
use crate::channels::{email_address, EmailSettings, SmtpSettings, SmtpTls};
use crate::render::{self, Message};

/// The most one submission may take, from connecting to the server's last answer. SMTP does
/// not go through the lane's HTTP client, so it has its own: the lane's default request
/// timeout, well within the 60 s lease a claim holds by default.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Submits the notification's mail once.
pub(super) async fn send(
    settings: &EmailSettings,
    password: Option<&Secret>,
    notification: &Notification<'_>,
) -> Outcome {
    let submitted = async {
        let mail = mail(settings, notification)?;
        let transport = transport(&settings.smtp, password)?;
        transport.send(mail).await.map_err(|e| describe(&e))
    };
    let error = match tokio::time::timeout(SMTP_TIMEOUT, submitted).await {
        Ok(Ok(_)) => return Outcome::Delivered,
        Ok(Err(error)) => error,
        Err(_) => format!(
            "SMTP: the mail server did not finish within {} s",
            SMTP_TIMEOUT.as_secs()
        ),
    };
    Outcome::Retry {
        error,
        retry_after: None,
    }
}

/// The mail for a notification (see the module docs).
fn mail(
    settings: &EmailSettings,
    notification: &Notification<'_>,
) -> Result<lettre::Message, String> {
    let message = render::message(notification.event, notification.link.clone());
    let from = email_address(&settings.from, "sender").map_err(|e| e.to_string())?;
    let mut builder = lettre::Message::builder()
        .message_id(Some(message_id(notification.dedup_key, &from)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(DELIVERY_HEADER),
            notification.dedup_key.to_owned(),
        ))
        // When the event was queued, so every attempt is the same mail.
        .date(SystemTime::from(notification.created_at))
        .from(from)
        .subject(message.title.clone());
    for to in &settings.to {
        builder = builder.to(email_address(to, "recipient").map_err(|e| e.to_string())?);
    }
    let label = link_label(notification.event);
    builder
        .multipart(MultiPart::alternative_plain_html(
            text_body(&message, label),
            html_body(&message, label),
        ))
        .map_err(|e| format!("the mail does not build: {e}"))
}

/// `<hash of the delivery id @ the sender's domain>`: the same for every attempt, and made of
/// characters a Message-ID allows (a dedup key has `:` and `%`).
fn message_id(dedup_key: &str, from: &Mailbox) -> String {
    let digest = hex::encode(Sha256::digest(dedup_key.as_bytes()));
    format!("<{}@{}>", &digest[..32], from.email.domain())
}

fn text_body(message: &Message, link_label: &str) -> String {
    let mut text = format!("{}\n", message.title);
    if !message.fields.is_empty() {
        text.push('\n');
        for (name, value) in &message.fields {
            let _ = writeln!(text, "{name}: {value}");
        }
    }
    if let Some(quote) = &message.quote {
        text.push('\n');
        for line in quote.lines() {
            let _ = writeln!(text, "> {line}");
        }
    }
    if !message.lines.is_empty() {
        text.push('\n');
        for line in &message.lines {
            let _ = writeln!(text, "- {line}");
        }
    }
    match (&message.link, &message.reference) {
        (Some(link), _) => {
            let _ = write!(text, "\n{link_label}: {link}\n");
        }
        (None, Some(reference)) => {
            let _ = write!(text, "\n{reference}\n");
        }
        (None, None) => {}
    }
    text
}

fn html_body(message: &Message, link_label: &str) -> String {
    let mut body = format!("<h2>{}</h2>\n", escape(&message.title));
    if !message.fields.is_empty() {
        body.push_str("<table>\n");
        for (name, value) in &message.fields {
            let _ = writeln!(
                body,
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(name),
                escape(value)
            );
        }
        body.push_str("</table>\n");
    }
    if let Some(quote) = &message.quote {
        let lines: Vec<String> = quote.lines().map(escape).collect();
        let _ = writeln!(
            body,
            "<blockquote style=\"border-left: 3px solid #ccc; margin: 1em 0; padding-left: \
             1em\">{}</blockquote>",
            lines.join("<br>")
        );
    }
    if !message.lines.is_empty() {
        body.push_str("<ul>\n");
        for line in &message.lines {
            let _ = writeln!(body, "<li>{}</li>", escape(line));
        }
        body.push_str("</ul>\n");
    }
    match (&message.link, &message.reference) {
        (Some(link), _) => {
            let _ = writeln!(
                body,
                "<p><a href=\"{}\">{}</a></p>",
                escape(link),
                escape(link_label)
            );
        }
        (None, Some(reference)) => {
            let _ = writeln!(body, "<p><code>{}</code></p>", escape(reference));
        }
        (None, None) => {}
    }
    format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n{body}</body></html>\n"
    )
}

/// A transport for one submission (no pool: alerts are few, and a connection kept open would
/// outlive a server's idle timeout between them).
fn transport(
    smtp: &SmtpSettings,
    password: Option<&Secret>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = match smtp.tls {
        SmtpTls::StartTls => Tls::Required(tls_parameters(smtp)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(smtp)?),
        SmtpTls::None => Tls::None,
    };
    // "Dangerous" only because this builder starts without TLS; it is set just above.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let (Some(username), Some(password)) = (&smtp.username, password) {
        builder = builder.credentials(Credentials::new(
            username.clone(),
            password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// The TLS settings for `smtp`: its host's certificate checked against the public roots and
/// the channel's own root CA. Also how [`crate::channels`] checks a root CA before storing it.
pub(crate) fn tls_parameters(smtp: &SmtpSettings) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(pem) = &smtp.root_ca_pem {
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not PEM: {e}"))?;
        if certificates.is_empty() {
            return Err("no -----BEGIN CERTIFICATE----- block in it".into());
        }
        for certificate in certificates {
            let certificate =
                Certificate::from_der(certificate.to_vec()).map_err(|e| e.to_string())?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build_rustls().map_err(|e| e.to_string())
}

/// An SMTP failure in words, a permanent refusal marked as one.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    if e.is_permanent() {
        format!(
            "SMTP {e} (a permanent refusal: it fails again until the channel's settings or the \
             mail server change; retried until the attempts run out)"
        )
    } else {
        format!("SMTP {e}")
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::test_flag;

    #[test]
    fn a_flag_mail_says_it_all_in_text_and_inert_html() {
        let event = test_flag("card-number", "it's 4242 <b>now</b> & done", Some(42_000));
        let link = render::link(Some("https://qa.example.com"), &event);
        let message = render::message(&event, link.clone());
        let text = text_body(&message, "Open the call");
        assert_eq!(
            text,
            format!(
                "🚨 Critical compliance flag: card-number\n\nRule: card-number\nSeverity: \
                 Critical\nAt: 0:42\nSpeaker: customer\n\n> it's 4242 <b>now</b> & done\n\n\
                 Open the call: {}\n",
                link.as_deref().unwrap()
            )
        );
        let page = html_body(&message, "Open the call");
        assert!(
            page.contains("it&#39;s 4242 &lt;b&gt;now&lt;/b&gt; &amp; done"),
            "{page}"
        );
        assert!(page.contains("<tr><th align=\"left\">At</th><td>0:42</td></tr>"));
        assert!(!page.contains("<b>"));

        let unlinked = render::message(&event, None);
        assert!(
            text_body(&unlinked, "Open the call").ends_with(&format!("\ncall {}\n", Uuid::nil()))
        );
    }

    #[test]
    fn every_attempt_is_the_same_message() {
        let from: Mailbox = "Callscript <alerts@acme.example>".parse().unwrap();
        let id = message_id("flag:x:card-number:42000", &from);
        assert_eq!(id, message_id("flag:x:card-number:42000", &from));
        assert_ne!(id, message_id("flag:x:card-number:43000", &from));
        assert!(
            id.starts_with('<') && id.ends_with("@acme.example>"),
            "{id}"
        );
        assert_eq!(id.len(), 1 + 32 + 1 + "acme.example".len() + 1);
    }
}
