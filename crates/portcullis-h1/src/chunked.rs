//! The chunked transfer coding (RFC 9112 §7.1), decoded strictly and re-encoded canonically.
//!
//! The decoder is a byte-at-a-time state machine: it never needs to see a byte twice, so a
//! caller feeds it whatever arrived and drops what it consumed. It refuses what parsers are
//! known to read differently:
//!
//! - a chunk size with no digit, a non-hex digit, or one that overflows 64 bits;
//! - a line ending other than CRLF (a bare LF or a lone CR) in the size line, after the data
//!   and in the trailer section;
//! - control characters in a chunk extension, and extensions larger than
//!   [`MAX_EXTENSION_BYTES`] in one message (they are read and dropped: unbounded, they
//!   would let a client send endless bytes that are never counted as body);
//! - a trailer section larger than the bound given to [`Decoder::new`], and trailer lines
//!   that are not `name: value` (obs-fold included).
//!
//! Extensions and trailer fields are dropped (RFC 9110 §6.5.1 lets a recipient discard
//! trailers); the body is re-encoded with [`chunk_header`] and [`LAST_CHUNK`].

use std::ops::Range;

/// Chunk-extension bytes allowed in one message, summed over its chunks.
pub const MAX_EXTENSION_BYTES: usize = 4096;

/// The last chunk and the end of an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends the size line of a chunk of `len` bytes.
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut rest = len;
    loop {
        at -= 1;
        digits[at] = HEX[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk size is missing, not hex, or too large.
    #[error("invalid chunk size")]
    Size,
    /// A chunk extension holds a control character or the message's extensions are too large.
    #[error("invalid chunk extension")]
    Extension,
    /// A line does not end with CRLF where it must.
    #[error("invalid line ending in chunked body")]
    LineEnding,
    /// A trailer line is malformed or the trailer section is too large.
    #[error("invalid trailer section")]
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a size (`digits` read so far).
    Size {
        value: u64,
        digits: u32,
    },
    /// After the digits: optional whitespace, then `;` or CR.
    AfterSize {
        value: u64,
    },
    /// Inside the extensions of a size line.
    Extension {
        value: u64,
    },
    /// Saw the CR of a size line.
    SizeLf {
        value: u64,
    },
    /// Inside chunk data.
    Data {
        left: u64,
    },
    /// After chunk data: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// Inside a trailer field line (`colon` once its `:` was seen).
    TrailerLine {
        colon: bool,
    },
    /// Saw the CR of a trailer line; `last` when that line was empty.
    TrailerLf {
        last: bool,
    },
    /// The message is complete.
    Done,
}

/// What one call to [`Decoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used (framing and data): drop them from the input.
    pub consumed: usize,
    /// The body bytes found, as a range of the input (possibly empty).
    pub data: Range<usize>,
}

/// A chunked-body decoder for one message.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    extension_bytes: usize,
    trailer_bytes: usize,
    max_trailer_bytes: usize,
}

impl Decoder {
    /// A decoder for one message whose trailer section may hold up to `max_trailer_bytes`.
    pub fn new(max_trailer_bytes: usize) -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            extension_bytes: 0,
            trailer_bytes: 0,
            max_trailer_bytes,
        }
    }

    /// Whether the whole message (last chunk and trailer section) was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads framing from `input` up to the next run of body bytes, which it returns, or to
    /// the end of `input`, or to the end of the message. Bytes after the end of the message
    /// are not consumed (they belong to the next one).
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { left } = self.state {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - at);
                let rest = left - take as u64;
                self.state = if rest == 0 {
                    State::DataCr
                } else {
                    State::Data { left: rest }
                };
                return Ok(Decoded {
                    consumed: at + take,
                    data: at..at + take,
                });
            }
            if self.state == State::Done {
                break;
            }
            self.step(input[at])?;
            at += 1;
        }
        Ok(Decoded {
            consumed: at,
            data: at..at,
        })
    }

    /// One framing byte.
    fn step(&mut self, byte: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::Size { value, digits } => match hex(byte) {
                Some(digit) => {
                    let value = value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(u64::from(digit)))
                        .ok_or(ChunkError::Size)?;
                    // Leading zeros do not overflow, but are bounded all the same.
                    if digits >= 64 {
                        return Err(ChunkError::Size);
                    }
                    State::Size {
                        value,
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(ChunkError::Size),
                None => return self.after_size(value, byte),
            },
            State::AfterSize { value } => match byte {
                b' ' | b'\t' => State::AfterSize { value },
                b';' => State::Extension { value },
                b'\r' => State::SizeLf { value },
                b'\n' => return Err(ChunkError::LineEnding),
                _ => return Err(ChunkError::Size),
            },
            State::Extension { value } => {
                self.extension_bytes += 1;
                if self.extension_bytes > MAX_EXTENSION_BYTES {
                    return Err(ChunkError::Extension);
                }
                match byte {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkError::LineEnding),
                    b'\t' => State::Extension { value },
                    0..=0x1f | 0x7f => return Err(ChunkError::Extension),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => match byte {
                b'\n' if value == 0 => State::TrailerStart,
                b'\n' => State::Data { left: value },
                _ => return Err(ChunkError::LineEnding),
            },
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError::LineEnding),
            },
            State::DataLf => match byte {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(ChunkError::LineEnding),
            },
            State::TrailerStart => match byte {
                b'\r' => State::TrailerLf { last: true },
                b'\n' => return Err(ChunkError::LineEnding),
                // obs-fold, or a line with no field name.
                b' ' | b'\t' | b':' => return Err(ChunkError::Trailer),
                _ => self.trailer_byte(byte, false)?,
            },
            State::TrailerLine { colon } => match byte {
                b'\r' if colon => State::TrailerLf { last: false },
                b'\r' => return Err(ChunkError::Trailer),
                b'\n' => return Err(ChunkError::LineEnding),
                _ => self.trailer_byte(byte, colon)?,
            },
            State::TrailerLf { last } => match byte {
                b'\n' if last => State::Done,
                b'\n' => State::TrailerStart,
                _ => return Err(ChunkError::LineEnding),
            },
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }

    fn after_size(&mut self, value: u64, byte: u8) -> Result<(), ChunkError> {
        self.state = State::AfterSize { value };
        self.step(byte)
    }

    fn trailer_byte(&mut self, byte: u8, colon: bool) -> Result<State, ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer_bytes {
            return Err(ChunkError::Trailer);
        }
        if matches!(byte, 0..=0x08 | 0x0a..=0x1f | 0x7f) {
            return Err(ChunkError::Trailer);
        }
        Ok(State::TrailerLine {
            colon: colon || byte == b':',
        })
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}
