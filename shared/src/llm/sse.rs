//! Reading Server-Sent Events from a streamed HTTP body, as both chat APIs send them
//! (`text/event-stream`: `event:` / `data:` lines, events separated by a blank line).

/// One event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// Turns body chunks, split anywhere (even inside a UTF-8 character), into whole events.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// How far `buffer` is known to hold no blank line (so each byte is scanned once).
    scanned: usize,
}

impl Decoder {
    /// Most bytes held while waiting for the end of one event: a provider that never sends a
    /// blank line must not grow memory without bound.
    pub const MAX_EVENT_BYTES: usize = 1 << 20;

    /// Feeds a chunk and returns the events it completed; `Err` when one event grows past
    /// [`Self::MAX_EVENT_BYTES`].
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        // A separator may straddle the previous chunk's end: back up by its longest length.
        let mut from = self.scanned.saturating_sub(3);
        while let Some((end, separator)) = find_blank_line(&self.buffer, from) {
            let raw: Vec<u8> = self.buffer.drain(..end + separator).collect();
            if let Some(event) = parse(&String::from_utf8_lossy(&raw[..end])) {
                events.push(event);
            }
            from = 0;
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > Self::MAX_EVENT_BYTES {
            return Err(format!(
                "an event of more than {} bytes",
                Self::MAX_EVENT_BYTES
            ));
        }
        Ok(events)
    }

    /// The last event when the body ended without a final blank line.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buffer);
        self.scanned = 0;
        parse(&String::from_utf8_lossy(&rest))
    }
}

/// Position and length of the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`) at or
/// after `from`.
fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    (from..buf.len()).find_map(|i| {
        let rest = &buf[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
            Some((i, 2))
        } else {
            None
        }
    })
}

/// Parses one event block; comments (`:`) and unknown fields are skipped, and a block with
/// neither a name nor data (a keep-alive) gives nothing.
fn parse(block: &str) -> Option<Event> {
    let mut name = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => match &mut data {
                Some(existing) => {
                    existing.push('\n');
                    existing.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    (name.is_some() || data.is_some()).then(|| Event {
        name,
        data: data.unwrap_or_default(),
    })
}

/// Writes one event in the wire format (each line of `data` as its own `data:` line).
pub fn encode(name: &str, data: &str) -> String {
    let mut out = format!("event: {name}\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere() {
        let wire = "event: a\ndata: {\"x\":1}\n\n: keep-alive\n\ndata: two\ndata: lines\r\n\r\ndata: [DONE]\n\n";
        let all = Decoder::default().feed(wire.as_bytes()).unwrap();
        // Fed byte by byte, the same events come out.
        let mut decoder = Decoder::default();
        let mut piecewise = Vec::new();
        for byte in wire.as_bytes() {
            piecewise.extend(decoder.feed(&[*byte]).unwrap());
        }
        assert_eq!(all, piecewise);
        assert_eq!(
            all,
            vec![
                Event {
                    name: Some("a".into()),
                    data: "{\"x\":1}".into()
                },
                Event {
                    name: None,
                    data: "two\nlines".into()
                },
                Event {
                    name: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn unterminated_tail_and_limit() {
        let mut decoder = Decoder::default();
        assert!(decoder.feed(b"data: tail").unwrap().is_empty());
        assert_eq!(decoder.finish().unwrap().data, "tail");
        let mut decoder = Decoder::default();
        assert!(
            decoder
                .feed(&vec![b'x'; Decoder::MAX_EVENT_BYTES + 1])
                .is_err()
        );
    }

    #[test]
    fn encode_round_trips() {
        let wire = encode("delta", "line one\nline two");
        let events = Decoder::default().feed(wire.as_bytes()).unwrap();
        assert_eq!(events[0].name.as_deref(), Some("delta"));
        assert_eq!(events[0].data, "line one\nline two");
    }
}
