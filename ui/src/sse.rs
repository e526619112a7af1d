//! A server-sent-events parser over raw bytes. The dashboard reads `/api/events/stream` with `fetch` (an
//! `EventSource` cannot send the `Authorization` header), so it frames the messages itself.

/// One message: its `event:` name (default `message`), `id:` if any, and `data:` lines joined by newlines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Bytes in, whole messages out; partial lines wait for the next chunk (a chunk may split anywhere, even
/// inside a UTF-8 character).
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    current: Message,
    has_data: bool,
}

impl Parser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Message> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                // A blank line ends a message; one without data (a keep-alive) is not dispatched.
                let msg = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) {
                    out.push(Message { event: if msg.event.is_empty() { "message".into() } else { msg.event }, ..msg });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) =
                line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
            match field {
                "event" => self.current.event = value.to_owned(),
                "id" => self.current.id = Some(value.to_owned()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}
