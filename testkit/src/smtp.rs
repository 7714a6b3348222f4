//! A loopback SMTP server that records the mail it takes, for email channels' tests. It speaks
//! the ESMTP a submission client needs (RFC 5321): EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN
//! and LOGIN (RFC 4954), MAIL, RCPT, DATA, RSET, NOOP and QUIT, over TLS with a certificate for
//! `localhost` and `127.0.0.1` issued at start by a CA of its own, whose PEM a client trusts as
//! a private server's root ([`SmtpSink::root_ca_pem`]). Like a real submission server it offers
//! AUTH only once the connection is encrypted (unless it runs without TLS) and takes no mail
//! before a login when it has one. Tests can make it refuse the next messages with 451.
//!
//! Written here rather than taken from crates.io: the maintained embeddable server
//! (`mailin-embedded`) blocks a thread pool, reads its certificate from files and cannot be
//! stopped, while a test wants a task per test on a free port.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use mail_parser::MessageParser;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::certs::TestCa;

/// How the sink encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain at first, STARTTLS offered (a submission port, 587).
    StartTls,
    /// TLS from the first byte (465).
    Tls,
    /// Never: not even STARTTLS is offered.
    None,
}

/// One message the sink took.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope: `MAIL FROM` and the `RCPT TO`s.
    pub from: String,
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dot-stuffing undone.
    pub data: String,
    /// Whether it came over TLS (STARTTLS or from the start).
    pub over_tls: bool,
    /// The username the client logged in as.
    pub login: Option<String>,
}

impl ReceivedMail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("the sink took a message that does not parse")
    }

    /// The subject, decoded.
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    /// A header's value as sent (unfolded, not decoded), if it has one.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed()
            .header_raw(name)
            .map(|value| value.trim().to_owned())
    }

    /// The text/plain part, decoded.
    pub fn text(&self) -> String {
        self.parsed().body_text(0).unwrap_or_default().into_owned()
    }

    /// The text/html part, decoded.
    pub fn html(&self) -> String {
        self.parsed().body_html(0).unwrap_or_default().into_owned()
    }
}

struct Sink {
    tls: SinkTls,
    acceptor: TlsAcceptor,
    /// The username and password AUTH must give; `None`: no AUTH offered, none needed.
    login: Option<(String, String)>,
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    /// Replies to give at the end of the next messages' DATA instead of taking them.
    refusals: VecDeque<&'static str>,
    messages: Vec<ReceivedMail>,
}

/// The server; stops taking connections when dropped.
pub struct SmtpSink {
    sink: Arc<Sink>,
    port: u16,
    root_ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on a free loopback port. With `login` (username, password) it wants AUTH before
    /// mail.
    pub async fn start(tls: SinkTls, login: Option<(&str, &str)>) -> Self {
        let (root_ca_pem, acceptor) = tls_acceptor();
        let sink = Arc::new(Sink {
            tls,
            acceptor,
            login: login.map(|(user, password)| (user.to_owned(), password.to_owned())),
            state: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local address").port();
        let accepting = sink.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // A client that hangs up mid-session is no failure of the sink.
                tokio::spawn(session(stream, accepting.clone()));
            }
        });
        Self {
            sink,
            port,
            root_ca_pem,
            task,
        }
    }

    /// The host its certificate names.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM of the CA that issued its certificate.
    pub fn root_ca_pem(&self) -> &str {
        &self.root_ca_pem
    }

    /// The next `n` messages are refused at the end of DATA with `451 4.3.0`, as a server
    /// short of resources does.
    pub fn defer_next(&self, n: usize) {
        let mut state = self.sink.state.lock().expect("sink state");
        state
            .refusals
            .extend(std::iter::repeat_n("451 4.3.0 Try again later", n));
    }

    /// The messages taken, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.sink.state.lock().expect("sink state").messages.clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA made now, and a TLS acceptor with a certificate it issued for the loopback names.
fn tls_acceptor() -> (String, TlsAcceptor) {
    let ca = TestCa::new("callscript test mail CA");
    let (certificate, key) = ca.issue(&["localhost", "127.0.0.1"]);
    // Both ring and aws-lc-rs are compiled into the workspace's rustls, so there is no default
    // provider to fall back on: name one.
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server certificate and key");
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

async fn session(stream: TcpStream, sink: Arc<Sink>) -> io::Result<()> {
    if sink.tls == SinkTls::Tls {
        let stream = sink.acceptor.accept(stream).await?;
        converse(stream, &sink, true).await?;
    } else if let Some(plain) = converse(stream, &sink, false).await? {
        let stream = sink.acceptor.accept(plain).await?;
        converse(stream, &sink, true).await?;
    }
    Ok(())
}

/// One envelope being given.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    recipients: Vec<String>,
}

/// Answers commands until QUIT or the client leaves; the stream back when the client asked for
/// STARTTLS (answered 220), to go on over TLS with a fresh session, as RFC 3207 wants.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    sink: &Sink,
    over_tls: bool,
) -> io::Result<Option<S>> {
    let mut stream = BufStream::new(stream);
    // After STARTTLS the client speaks first (EHLO again).
    let upgraded = over_tls && sink.tls == SinkTls::StartTls;
    if !upgraded {
        reply(&mut stream, "220 callscript-sink ESMTP ready").await?;
    }
    let offers_starttls = sink.tls == SinkTls::StartTls && !over_tls;
    let offers_auth = sink.login.is_some() && (over_tls || sink.tls == SinkTls::None);
    let mut login = None;
    let mut envelope = Envelope::default();
    while let Some(line) = read_line(&mut stream).await? {
        let (verb, argument) = line.split_once(' ').unwrap_or((&line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => {
                envelope = Envelope::default();
                let mut lines = vec!["callscript-sink", "8BITMIME"];
                if offers_starttls {
                    lines.push("STARTTLS");
                }
                if offers_auth {
                    lines.push("AUTH PLAIN LOGIN");
                }
                let last = lines.len() - 1;
                for (i, text) in lines.iter().enumerate() {
                    let separator = if i == last { ' ' } else { '-' };
                    write_line(&mut stream, &format!("250{separator}{text}")).await?;
                }
                stream.flush().await?;
            }
            "STARTTLS" if offers_starttls => {
                reply(&mut stream, "220 2.0.0 Ready to start TLS").await?;
                return Ok(Some(stream.into_inner()));
            }
            "AUTH" if offers_auth => {
                login = authenticate(&mut stream, sink, argument).await?;
            }
            "MAIL" if sink.login.is_some() && login.is_none() => {
                reply(&mut stream, "530 5.7.0 Authentication required").await?;
            }
            "MAIL" => {
                envelope = Envelope {
                    from: Some(path(argument)),
                    recipients: Vec::new(),
                };
                reply(&mut stream, "250 2.1.0 OK").await?;
            }
            "RCPT" if envelope.from.is_none() => {
                reply(&mut stream, "503 5.5.1 MAIL first").await?;
            }
            "RCPT" => {
                envelope.recipients.push(path(argument));
                reply(&mut stream, "250 2.1.5 OK").await?;
            }
            "DATA" if envelope.recipients.is_empty() => {
                reply(&mut stream, "503 5.5.1 RCPT first").await?;
            }
            "DATA" => {
                reply(&mut stream, "354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut stream).await? else {
                    return Ok(None);
                };
                let taken = std::mem::take(&mut envelope);
                let answer = {
                    let mut state = sink.state.lock().expect("sink state");
                    match state.refusals.pop_front() {
                        Some(refusal) => refusal,
                        None => {
                            state.messages.push(ReceivedMail {
                                from: taken.from.unwrap_or_default(),
                                recipients: taken.recipients,
                                data,
                                over_tls,
                                login: login.clone(),
                            });
                            "250 2.0.0 OK: queued"
                        }
                    }
                };
                reply(&mut stream, answer).await?;
            }
            "RSET" => {
                envelope = Envelope::default();
                reply(&mut stream, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut stream, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut stream, "221 2.0.0 Bye").await?;
                return Ok(None);
            }
            _ => reply(&mut stream, "502 5.5.2 Command not recognized").await?,
        }
    }
    Ok(None)
}

/// Runs an AUTH exchange (`argument`: the mechanism and any initial response); the username
/// when the login is right.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufStream<S>,
    sink: &Sink,
    argument: &str,
) -> io::Result<Option<String>> {
    let mut words = argument.split_whitespace();
    let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    let (username, password) = match mechanism.as_str() {
        // One response: authorization id, username and password, NUL-separated.
        "PLAIN" => {
            let response = match initial {
                Some(response) => response,
                None => challenge(stream, "").await?,
            };
            let decoded = decode(&response);
            let mut fields = decoded.split('\0').skip(1);
            (
                fields.next().unwrap_or_default().to_owned(),
                fields.next().unwrap_or_default().to_owned(),
            )
        }
        // Asked for one at a time, the prompts in base64 ("Username:", "Password:").
        "LOGIN" => {
            let username = match initial {
                Some(username) => username,
                None => challenge(stream, "VXNlcm5hbWU6").await?,
            };
            let password = challenge(stream, "UGFzc3dvcmQ6").await?;
            (decode(&username), decode(&password))
        }
        _ => {
            reply(stream, "504 5.5.4 Unrecognized authentication type").await?;
            return Ok(None);
        }
    };
    let expected = sink.login.as_ref().expect("AUTH is offered with a login");
    if (&username, &password) == (&expected.0, &expected.1) {
        reply(stream, "235 2.7.0 Authentication successful").await?;
        Ok(Some(username))
    } else {
        reply(stream, "535 5.7.8 Authentication credentials invalid").await?;
        Ok(None)
    }
}

/// Sends a `334` challenge and reads the client's answer.
async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufStream<S>,
    prompt: &str,
) -> io::Result<String> {
    reply(stream, &format!("334 {prompt}")).await?;
    read_line(stream)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no AUTH answer"))
}

fn decode(base64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The address in `FROM:<a@b> SIZE=…` or `TO:<a@b>`.
fn path(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}

/// The lines after DATA up to the lone `.`, dot-stuffing undone; `None` when the client left.
async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufStream<S>,
) -> io::Result<Option<String>> {
    let mut data = String::new();
    while let Some(line) = read_line(stream).await? {
        if line == "." {
            return Ok(Some(data));
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push_str("\r\n");
    }
    Ok(None)
}

/// One line without its CRLF; `None` at the end of the stream.
async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufStream<S>,
) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if stream.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

async fn write_line<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufStream<S>,
    text: &str,
) -> io::Result<()> {
    stream.write_all(text.as_bytes()).await?;
    stream.write_all(b"\r\n").await
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufStream<S>,
    text: &str,
) -> io::Result<()> {
    write_line(stream, text).await?;
    stream.flush().await
}
