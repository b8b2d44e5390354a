//! Detects a `Content-Length` header in HTTP/1 request heads as they are read.
//!
//! A request with both `Content-Length` and `Transfer-Encoding` is the classic request
//! smuggling vector. hyper follows RFC 9112 §6.3 (the chunked framing wins, the connection is
//! closed afterwards) and removes `Content-Length` before the gateway sees the request, so the
//! conflict is invisible in the parsed head. This scanner watches the raw bytes of each head
//! for a `Content-Length` line so that the gateway can refuse such a request outright with 400,
//! as a security gateway should, instead of guessing what the sender meant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const NAME: &[u8; 15] = b"content-length:";

/// Per-connection scanner state.
#[derive(Debug)]
pub(crate) struct HeadScanner {
    in_head: bool,
    saw_line: bool,
    line: [u8; 15],
    line_len: usize,
    content_length: Arc<AtomicBool>,
}

impl HeadScanner {
    /// A scanner that reports into `content_length` (true while the current head has one).
    pub(crate) fn new(content_length: Arc<AtomicBool>) -> Self {
        Self {
            in_head: true,
            saw_line: false,
            line: [0; 15],
            line_len: 0,
            content_length,
        }
    }

    /// Looks at bytes just read. Only head bytes are examined; once the blank line that ends a
    /// head has been seen, the scanner waits for [`HeadScanner::next_message`].
    pub(crate) fn scan(&mut self, bytes: &[u8]) {
        if !self.in_head {
            return;
        }
        for &byte in bytes {
            if byte == b'\n' {
                let empty = self.line_len == 0 || (self.line_len == 1 && self.line[0] == b'\r');
                if empty && self.saw_line {
                    self.in_head = false;
                    return;
                }
                self.saw_line |= !empty;
                self.line_len = 0;
                continue;
            }
            if self.line_len < NAME.len() {
                self.line[self.line_len] = byte.to_ascii_lowercase();
            }
            self.line_len += 1;
            if self.line_len == NAME.len() && &self.line == NAME {
                self.content_length.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The gateway has answered: the next bytes read start a new head.
    pub(crate) fn next_message(&mut self) {
        if !self.in_head {
            self.in_head = true;
            self.saw_line = false;
            self.line_len = 0;
            self.content_length.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(chunks: &[&[u8]]) -> bool {
        let flag = Arc::new(AtomicBool::new(false));
        let mut scanner = HeadScanner::new(Arc::clone(&flag));
        for chunk in chunks {
            scanner.scan(chunk);
        }
        flag.load(Ordering::Relaxed)
    }

    #[test]
    fn finds_content_length_in_any_case_and_split_reads() {
        assert!(seen(&[
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
        ]));
        assert!(seen(&[b"POST / HTTP/1.1\r\nCONTENT-len", b"gth:4\r\n\r\n"]));
        assert!(!seen(&[
            b"POST / HTTP/1.1\r\nX-Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        // Body bytes after the head are not looked at.
        assert!(!seen(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ncontent-length: 3\r\n"
        ]));
        // Leading blank lines before a request line are allowed and skipped.
        assert!(seen(&[
            b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
        ]));
    }

    #[test]
    fn next_message_resets() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut scanner = HeadScanner::new(Arc::clone(&flag));
        scanner.scan(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(flag.load(Ordering::Relaxed));
        scanner.next_message();
        scanner.scan(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(!flag.load(Ordering::Relaxed));
    }
}
