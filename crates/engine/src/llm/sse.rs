//! An incremental Server-Sent Events decoder, correct however the bytes are chunked.
//!
//! Lines are split on bytes and decoded only when whole, so a UTF-8 sequence split across
//! reads is never mangled.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty means the default `message`.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    pub id: Option<String>,
}

/// Feeds on chunks of bytes and yields whole events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The line being read; its buffer is reused from line to line.
    line: Vec<u8>,
    event: String,
    /// The `data:` lines so far, joined with `\n`.
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Consumes a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(end);
            rest = &tail[1..];
            // A line begun in an earlier chunk is gathered first; one wholly in this chunk is
            // read where it lies.
            let event = if self.line.is_empty() {
                self.process_line(without_cr(head))
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let event = self.process_line(without_cr(&line));
                line.clear();
                self.line = line;
                event
            };
            events.extend(event);
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// Ends the stream: a last event not followed by a blank line is still delivered.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        let from_line = if line.is_empty() {
            None
        } else {
            self.process_line(without_cr(&line))
        };
        from_line.or_else(|| self.dispatch())
    }

    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // a comment, e.g. a keep-alive
        }
        // Checked as UTF-8 first: much faster than the lossy decoding of a valid line.
        let line = std::str::from_utf8(line).map_or_else(
            |_| String::from_utf8_lossy(line),
            std::borrow::Cow::Borrowed,
        );
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            "id" => self.id = Some(value.to_string()),
            _ => {} // `retry` and unknown fields do not concern a one-shot client
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !std::mem::take(&mut self.has_data) {
            self.event.clear();
            return None;
        }
        Some(SseEvent {
            event: std::mem::take(&mut self.event),
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        })
    }
}

/// A line without the `\r` of a `\r\n` ending.
fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_comments_crlf_multiline_data_and_split_utf8() {
        let bytes =
            ": keep-alive\r\ndata: hé\r\ndata: llo\r\n\r\nevent: error\ndata: x\n\n".as_bytes();
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for b in bytes {
            events.extend(decoder.push(std::slice::from_ref(b)));
        }
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "hé\nllo");
        assert_eq!(events[1].event, "error");
        assert_eq!(decoder.finish(), None);
    }

    #[test]
    fn finish_delivers_an_unterminated_event() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: [DONE]").is_empty());
        assert_eq!(decoder.finish().map(|e| e.data), Some("[DONE]".to_string()));
    }
}
