//! The last lines of a failed engine's stderr, bounded so a runaway log cannot grow the runner's
//! memory; written to the cell's `stderr.tail.txt`.

use std::collections::VecDeque;

/// Lines kept.
pub const TAIL_LINES: usize = 64;
/// Bytes kept, all lines together.
pub const TAIL_BYTES: usize = 16 * 1024;
// One huge line (a dumped tensor) must not push every other line out.
const LINE_BYTES: usize = 4096;

/// A bounded ring of the most recent lines.
#[derive(Debug, Default, Clone)]
pub struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    /// Adds one line (its `\n` or `\r\n` optional; invalid UTF-8 replaced), dropping the oldest
    /// lines beyond [`TAIL_LINES`] or [`TAIL_BYTES`].
    pub fn push_line(&mut self, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut line = String::from_utf8_lossy(raw).into_owned();
        if line.len() > LINE_BYTES {
            let mut end = LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str(" …");
        }
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES || self.bytes > TAIL_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    /// The kept lines, each ending in `\n`.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.bytes);
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The last line that is not blank.
    pub fn last_line(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }
}

/// The last `n` bytes of `s` or slightly fewer, cut at a character boundary.
pub fn last_bytes(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_within_bounds() {
        let mut t = Tail::default();
        for i in 0..100 {
            t.push_line(format!("line {i}\n").as_bytes());
        }
        let text = t.text();
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.starts_with("line 36\n") && text.ends_with("line 99\n"));
        assert_eq!(t.last_line(), Some("line 99"));

        let mut t = Tail::default();
        for _ in 0..10 {
            t.push_line(&[b'x'; 10_000]);
        }
        assert!(t.text().len() <= TAIL_BYTES);
        assert!(t.text().lines().all(|l| l.ends_with(" …")));
    }

    #[test]
    fn odd_bytes_and_blank_lines() {
        let mut t = Tail::default();
        t.push_line(b"caf\xc3\xa9 \xff\r\n");
        t.push_line(b"   \n");
        assert_eq!(t.last_line(), Some("café \u{fffd}"));
        assert_eq!(last_bytes("aé", 1), "");
        assert_eq!(last_bytes("aé", 2), "é");
        assert_eq!(last_bytes("ab", 9), "ab");
    }
}
