//! A real SMTP server for the mail tests, inside the harness.
//!
//! [`SmtpSink`] listens on a free port of 127.0.0.1, speaks plain SMTP (no TLS,
//! no authentication) to whoever connects, and keeps every mail it accepts,
//! decoded with `mail-parser`. A mail is kept before its 250 goes out, so a
//! mail the client saw accepted is already in [`SmtpSink::received`]. Stopping
//! the sink closes the listener and every open connection, so deliveries fail
//! until it is started again on the same port.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::MessageParser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The name the server gives itself in its greeting and EHLO answer.
const HOSTNAME: &str = "smtp-sink.test";

/// A real SMTP server on a free port that keeps every mail it accepts; it can
/// be stopped and started again on the same port.
pub struct SmtpSink {
    port: u16,
    mails: Mails,
    running: tokio::sync::Mutex<Option<Running>>,
}

type Mails = Arc<Mutex<Vec<ReceivedMail>>>;

/// A mail as the SMTP server received it, headers decoded.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReceivedMail {
    /// The envelope's recipients.
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub body: String,
}

/// A server that accepts connections until told to stop.
struct Running {
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    /// How long [`SmtpSink::wait_for`] waits.
    pub const PATIENCE: Duration = Duration::from_secs(10);

    pub async fn start() -> SmtpSink {
        let mails = Mails::default();
        let listener = listen(0).await;
        let port = listener.local_addr().unwrap().port();
        SmtpSink {
            port,
            running: tokio::sync::Mutex::new(Some(Running::spawn(listener, mails.clone()))),
            mails,
        }
    }

    /// `smtp://127.0.0.1:PORT` (no TLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server: connections are refused until [`SmtpSink::restart`].
    pub async fn stop(&self) {
        if let Some(running) = self.running.lock().await.take() {
            running.stop().await;
        }
    }

    /// Starts the server again on the same port, keeping what it received.
    pub async fn restart(&self) {
        let mut running = self.running.lock().await;
        assert!(running.is_none(), "the SMTP sink is running");
        *running = Some(Running::spawn(listen(self.port).await, self.mails.clone()));
    }

    /// Everything received so far, in the order it arrived.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.mails.lock().unwrap().clone()
    }

    /// The mails received for `recipient` whose subject contains `subject`.
    pub fn received_for(&self, recipient: &str, subject: &str) -> Vec<ReceivedMail> {
        self.received()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == recipient) && m.subject.contains(subject))
            .collect()
    }

    /// Waits up to [`SmtpSink::PATIENCE`] for a mail to `recipient` whose
    /// subject contains `subject`; panics when none arrives.
    pub async fn wait_for(&self, recipient: &str, subject: &str) -> ReceivedMail {
        let deadline = Instant::now() + Self::PATIENCE;
        loop {
            if let Some(mail) = self.received_for(recipient, subject).into_iter().next() {
                return mail;
            }
            assert!(
                Instant::now() < deadline,
                "no mail to {recipient} with `{subject}` within {:?}; received: {:#?}",
                Self::PATIENCE,
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to [`SmtpSink::PATIENCE`] until at least `count` mails arrived.
    pub async fn wait_for_count(&self, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Self::PATIENCE;
        loop {
            let mails = self.received();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mails within {:?}",
                mails.len(),
                Self::PATIENCE
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A listener on 127.0.0.1:`port` (0: a free port). The port of a stopped
/// server can take a moment to be free again.
async fn listen(port: u16) -> TcpListener {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + SmtpSink::PATIENCE;
    loop {
        let bound = TcpSocket::new_v4().and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(128)
        });
        match bound {
            Ok(listener) => return listener,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the SMTP sink cannot listen on {address}: {err}"),
        }
    }
}

impl Running {
    fn spawn(listener: TcpListener, mails: Mails) -> Running {
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(serve(listener, mails, stopped));
        Running { stop, server }
    }

    /// Returns once the listener and every connection are closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap();
    }
}

/// Accepts connections until `stopped` fires (or its sender is dropped with
/// the sink), then closes the listener and every open connection.
async fn serve(listener: TcpListener, mails: Mails, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(converse(stream, mails.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// One client's SMTP session, until it quits or hangs up.
async fn converse(stream: TcpStream, mails: Mails) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(GREETING.as_bytes()).await?;
    let mut session = Session::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let reply = match session.line(&line) {
            Step::Read => continue,
            Step::Reply(reply) => reply,
            Step::Deliver(envelope) => {
                mails.lock().unwrap().push(envelope.decode());
                Cow::Borrowed(ACCEPTED)
            }
            Step::Quit => {
                write.write_all(BYE.as_bytes()).await?;
                return write.shutdown().await;
            }
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

const GREETING: &str = "220 smtp-sink.test ESMTP\r\n";
const ACCEPTED: &str = "250 Message accepted for delivery\r\n";
const BYE: &str = "221 Bye\r\n";

/// A mail as it came in: its recipients and the message's bytes, unstuffed.
#[derive(Debug, PartialEq, Eq)]
struct Envelope {
    rcpt_tos: Vec<String>,
    content: Vec<u8>,
}

impl Envelope {
    fn decode(self) -> ReceivedMail {
        let message = MessageParser::default().parse(&self.content);
        let message = message.as_ref();
        let from = message
            .and_then(|m| m.from())
            .map(|from| {
                from.iter()
                    .map(|addr| match (&addr.name, &addr.address) {
                        (Some(name), Some(address)) => format!("{name} <{address}>"),
                        (_, address) => address.as_deref().unwrap_or_default().to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        ReceivedMail {
            rcpt_tos: self.rcpt_tos,
            from,
            subject: message
                .and_then(|m| m.subject())
                .unwrap_or_default()
                .to_owned(),
            message_id: message
                .and_then(|m| m.message_id())
                .map(|id| format!("<{id}>"))
                .unwrap_or_default(),
            body: message
                .and_then(|m| m.body_text(0))
                .map(|text| text.replace("\r\n", "\n"))
                .unwrap_or_default(),
        }
    }
}

/// The protocol state of one connection, fed line by line.
#[derive(Debug, Default)]
struct Session {
    greeted: bool,
    /// Between MAIL and the end of DATA (or RSET).
    in_mail: bool,
    rcpt_tos: Vec<String>,
    /// The message so far while in DATA.
    data: Option<Vec<u8>>,
}

/// What a session does with a line.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A line of the message: nothing to answer yet.
    Read,
    Reply(Cow<'static, str>),
    /// The message ended: keep it, then answer 250.
    Deliver(Envelope),
    /// Answer 221 and close.
    Quit,
}

impl Session {
    fn line(&mut self, line: &[u8]) -> Step {
        match &mut self.data {
            Some(data) => {
                let text = line.strip_suffix(b"\n").unwrap_or(line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if text == b"." {
                    let content = self.data.take().unwrap_or_default();
                    let rcpt_tos = std::mem::take(&mut self.rcpt_tos);
                    self.reset();
                    return Step::Deliver(Envelope { rcpt_tos, content });
                }
                data.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
                Step::Read
            }
            None => self.command(String::from_utf8_lossy(line).trim_end()),
        }
    }

    fn command(&mut self, line: &str) -> Step {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim();
        let reply = |text: &'static str| Step::Reply(Cow::Borrowed(text));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if argument.is_empty() => reply("501 Syntax: EHLO hostname\r\n"),
            "EHLO" => {
                self.greeted = true;
                self.reset();
                Step::Reply(Cow::Owned(format!(
                    "250-{HOSTNAME}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
                )))
            }
            "HELO" => {
                self.greeted = true;
                self.reset();
                Step::Reply(Cow::Owned(format!("250 {HOSTNAME}\r\n")))
            }
            "MAIL" | "RCPT" | "DATA" if !self.greeted => reply("503 Send EHLO first\r\n"),
            "MAIL" if self.in_mail => reply("503 Nested MAIL command\r\n"),
            "MAIL" => match path(argument, "FROM:") {
                Some(_) => {
                    self.in_mail = true;
                    reply("250 OK\r\n")
                }
                None => reply("501 Syntax: MAIL FROM:<address>\r\n"),
            },
            "RCPT" if !self.in_mail => reply("503 Need MAIL before RCPT\r\n"),
            "RCPT" => match path(argument, "TO:").filter(|to| !to.is_empty()) {
                Some(to) => {
                    self.rcpt_tos.push(to);
                    reply("250 OK\r\n")
                }
                None => reply("501 Syntax: RCPT TO:<address>\r\n"),
            },
            "DATA" if self.rcpt_tos.is_empty() => reply("503 Need RCPT before DATA\r\n"),
            "DATA" => {
                self.data = Some(Vec::new());
                reply("354 End data with <CR><LF>.<CR><LF>\r\n")
            }
            "RSET" => {
                self.reset();
                reply("250 OK\r\n")
            }
            "NOOP" => reply("250 OK\r\n"),
            "QUIT" => Step::Quit,
            _ => reply("500 Command not recognized\r\n"),
        }
    }

    /// Forgets the mail in progress.
    fn reset(&mut self) {
        self.in_mail = false;
        self.rcpt_tos.clear();
    }
}

/// The address of `FROM:<address> PARAMETERS` (after `keyword`, any case).
fn path(argument: &str, keyword: &str) -> Option<String> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start().strip_prefix('<')?;
    let (address, _parameters) = rest.split_once('>')?;
    Some(address.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `lines` to a fresh session; answers each step.
    fn run(lines: &[&str]) -> Vec<Step> {
        let mut session = Session::default();
        lines
            .iter()
            .map(|line| session.line(format!("{line}\r\n").as_bytes()))
            .collect()
    }

    fn code(step: &Step) -> &str {
        match step {
            Step::Reply(reply) => &reply[..3],
            Step::Read => "read",
            Step::Deliver(_) => "deliver",
            Step::Quit => "quit",
        }
    }

    fn codes(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(code).collect()
    }

    fn delivered(steps: Vec<Step>) -> Vec<Envelope> {
        steps
            .into_iter()
            .filter_map(|step| match step {
                Step::Deliver(envelope) => Some(envelope),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_mail_to_several_recipients_is_delivered_once_with_all_of_them() {
        let steps = run(&[
            "EHLO client.test",
            "MAIL FROM:<from@example.org> BODY=8BITMIME",
            "RCPT TO:<a@example.org>",
            "rcpt to: <b@example.org>",
            "DATA",
            "Subject: Hi",
            "",
            "Hello",
            ".",
            "QUIT",
        ]);
        assert_eq!(
            codes(&steps),
            [
                "250", "250", "250", "250", "354", "read", "read", "read", "deliver", "quit"
            ]
        );
        assert_eq!(
            delivered(steps),
            [Envelope {
                rcpt_tos: vec!["a@example.org".into(), "b@example.org".into()],
                content: b"Subject: Hi\r\n\r\nHello\r\n".to_vec(),
            }]
        );
    }

    #[test]
    fn dots_at_the_start_of_a_line_are_unstuffed() {
        let steps = run(&[
            "HELO client.test",
            "MAIL FROM:<>",
            "RCPT TO:<a@example.org>",
            "DATA",
            "..",
            "..hidden",
            "a . inside",
            ".",
        ]);
        let [mail] = &delivered(steps)[..] else {
            panic!("not one mail");
        };
        assert_eq!(mail.content, b".\r\n.hidden\r\na . inside\r\n");
    }

    #[test]
    fn commands_out_of_order_are_refused() {
        let steps = run(&[
            "MAIL FROM:<from@example.org>",
            "EHLO client.test",
            "RCPT TO:<a@example.org>",
            "DATA",
            "MAIL FROM:<from@example.org>",
            "MAIL FROM:<again@example.org>",
            "DATA",
            "RSET",
            "RCPT TO:<a@example.org>",
            "MAIL FROM:from@example.org",
            "RCPT",
            "EHLO",
            "STARTTLS",
            "NOOP",
        ]);
        assert_eq!(
            codes(&steps),
            [
                "503", "250", "503", "503", "250", "503", "503", "250", "503", "501", "503", "501",
                "500", "250"
            ]
        );
    }

    #[test]
    fn a_second_mail_on_the_connection_starts_afresh() {
        let mail = [
            "MAIL FROM:<from@example.org>",
            "RCPT TO:<a@example.org>",
            "DATA",
            "one",
            ".",
        ];
        let mut lines = vec!["EHLO client.test"];
        lines.extend(mail);
        lines.extend(["MAIL FROM:<from@example.org>", "RCPT TO:<b@example.org>"]);
        lines.extend(&mail[2..]);
        let mails = delivered(run(&lines));
        let recipients: Vec<_> = mails.iter().map(|m| m.rcpt_tos.clone()).collect();
        assert_eq!(recipients, [["a@example.org"], ["b@example.org"]]);
    }

    #[test]
    fn encoded_headers_and_bodies_are_decoded() {
        let envelope = Envelope {
            rcpt_tos: vec!["anna@example.org".into()],
            content: concat!(
                "From: =?utf-8?q?M=C3=BCller?= <outbox@example.org>\r\n",
                "Subject: =?utf-8?b?U2NobMO8c3NlbCBLLTE3?=\r\n",
                "Message-ID: <1@example.org>\r\n",
                "Content-Type: text/plain; charset=utf-8\r\n",
                "Content-Transfer-Encoding: quoted-printable\r\n",
                "\r\n",
                "T=C3=BCr=C3=B6ffnungen pr=C3=BCfen\r\n",
                "zweite Zeile\r\n",
            )
            .as_bytes()
            .to_vec(),
        };
        let mail = envelope.decode();
        assert_eq!(mail.from, "Müller <outbox@example.org>");
        assert_eq!(mail.subject, "Schlüssel K-17");
        assert_eq!(mail.message_id, "<1@example.org>");
        assert_eq!(mail.body, "Türöffnungen prüfen\nzweite Zeile\n");
        assert_eq!(mail.rcpt_tos, ["anna@example.org"]);
    }

    /// Sends `lines` and answers the server's replies, greeting first.
    async fn talk(port: u16, lines: &[&str]) -> io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        for line in lines {
            stream.write_all(format!("{line}\r\n").as_bytes()).await?;
        }
        let mut replies = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut replies).await?;
        Ok(replies)
    }

    #[tokio::test]
    async fn a_stopped_sink_refuses_connections_and_keeps_its_mails_when_restarted() {
        let sink = SmtpSink::start().await;
        let port = sink.port;
        let mail = |to| {
            [
                "EHLO client.test",
                "MAIL FROM:<from@example.org>",
                to,
                "DATA",
                "Subject: Hi",
                "",
                ".",
                "QUIT",
            ]
        };
        let replies = talk(port, &mail("RCPT TO:<a@example.org>")).await.unwrap();
        assert!(replies.starts_with("220 "), "{replies}");
        assert!(replies.ends_with(&format!("{ACCEPTED}{BYE}")), "{replies}");

        let mut idle = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        let mut greeting = String::new();
        idle.read_line(&mut greeting).await.unwrap();
        assert_eq!(greeting, GREETING);
        sink.stop().await;
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut idle, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, "", "the open connection is closed");
        let refused = talk(port, &["NOOP"]).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        sink.restart().await;
        talk(port, &mail("RCPT TO:<b@example.org>")).await.unwrap();
        let recipients: Vec<_> = sink.received().into_iter().map(|m| m.rcpt_tos).collect();
        assert_eq!(recipients, [["a@example.org"], ["b@example.org"]]);
        assert_eq!(sink.received_for("b@example.org", "Hi").len(), 1);
    }
}
