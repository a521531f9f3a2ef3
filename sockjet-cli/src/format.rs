//! How received messages are shown on a terminal.
//!
//! Messages come from an untrusted peer and go straight to the user's terminal, so nothing
//! that a terminal interprets (escape sequences, carriage returns, bidi overrides) may pass
//! through raw: each message must stay on one `< ` line and look like what was received.

use std::fmt::Write as _;

use sockjet::Message;

/// How many bytes of a binary message are shown in hex; the rest is summarized by `...`.
const HEX_PREVIEW: usize = 32;

/// Formats a received message as one line without the `< ` prefix: escaped text, or a hex
/// summary for binary data.
pub(crate) fn message(message: &Message) -> String {
    match message {
        Message::Text(text) => escape_text(text),
        Message::Binary(data) => hex_summary(data),
    }
}

/// Escapes `text` for a one-line display.
///
/// Like [`str::escape_debug`], but ASCII controls are written `\xNN` (the form people
/// recognize in terminal traces, e.g. `\x1b`) rather than `\u{1b}`, and quotes are left
/// alone: nothing here is a string literal, and JSON, the most common payload, is full of
/// them. The backslash is escaped so that a literal `\n` in a message cannot be mistaken
/// for a newline.
///
/// ```text
/// "a\nb\x1b"  ->  a\nb\x1b
/// "héllo ✓"   ->  héllo ✓
/// ```
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, c) in text.char_indices() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            ' '..='~' => out.push(c),
            _ if c.is_ascii() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            _ => escape_non_ascii(&mut out, c, index == 0),
        }
    }
    out
}

/// Appends a non-ASCII character: printable ones as they are, others (C1 controls, bidi
/// overrides, unassigned code points) as `\u{...}`.
///
/// `char::escape_debug` also escapes every combining mark, which would mangle "é" written
/// as "e" + U+0301; `str::escape_debug` escapes one only at the start of a string, where it
/// has no base character to attach to. Asking `str::escape_debug` about `c` after a base
/// character gives that rule for characters in the middle of the text.
fn escape_non_ascii(out: &mut String, c: char, at_start: bool) {
    if at_start {
        out.extend(c.escape_debug());
        return;
    }
    let mut buffer = [0u8; 5];
    buffer[0] = b'x';
    let len = 1 + c.encode_utf8(&mut buffer[1..]).len();
    // The buffer holds 'x' and the UTF-8 encoding of `c`, so it is valid UTF-8.
    let with_base = std::str::from_utf8(&buffer[..len]).unwrap_or_default();
    out.extend(with_base.escape_debug().skip(1));
}

/// Summarizes binary data: its length and its first [`HEX_PREVIEW`] bytes in hex, e.g.
/// `(binary) 5 bytes: 01 02 03 04 05`.
pub(crate) fn hex_summary(data: &[u8]) -> String {
    let unit = if data.len() == 1 { "byte" } else { "bytes" };
    let mut out = format!("(binary) {} {unit}", data.len());
    if data.is_empty() {
        return out;
    }
    out.push(':');
    for byte in data.iter().take(HEX_PREVIEW) {
        let _ = write!(out, " {byte:02x}");
    }
    if data.len() > HEX_PREVIEW {
        out.push_str(" ...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_text("a\nb\x1b"), r"a\nb\x1b");
        assert_eq!(escape_text("\r\t\0\x7f\x01"), r"\r\t\0\x7f\x01");
        assert_eq!(escape_text(r"back\slash"), r"back\\slash");
    }

    #[test]
    fn printable_text_is_kept() {
        assert_eq!(escape_text("hello, world"), "hello, world");
        assert_eq!(escape_text(r#"{"a": 'b'}"#), r#"{"a": 'b'}"#);
        assert_eq!(escape_text("héllo ✓ 日本 🦀"), "héllo ✓ 日本 🦀");
        assert_eq!(escape_text(""), "");
    }

    #[test]
    fn combining_marks_are_kept_after_a_base_character() {
        assert_eq!(escape_text("e\u{301}"), "e\u{301}");
        // Alone at the start, a combining mark would attach to the `< ` prefix.
        assert_eq!(escape_text("\u{301}"), r"\u{301}");
    }

    #[test]
    fn invisible_and_terminal_controlling_unicode_is_escaped() {
        // C1 control (NEL), right-to-left override, line separator.
        assert_eq!(escape_text("a\u{85}b"), r"a\u{85}b");
        assert_eq!(escape_text("a\u{202e}b"), r"a\u{202e}b");
        assert_eq!(escape_text("a\u{2028}b"), r"a\u{2028}b");
    }

    #[test]
    fn binary_is_summarized_in_hex() {
        assert_eq!(hex_summary(&[]), "(binary) 0 bytes");
        assert_eq!(hex_summary(&[0xff]), "(binary) 1 byte: ff");
        assert_eq!(
            hex_summary(&[1, 2, 3, 4, 5]),
            "(binary) 5 bytes: 01 02 03 04 05"
        );
        let exactly: Vec<u8> = (0..32).collect();
        assert!(!hex_summary(&exactly).ends_with("..."));
        let long: Vec<u8> = (0..40).collect();
        let summary = hex_summary(&long);
        assert!(summary.starts_with("(binary) 40 bytes: 00 01 02"));
        assert!(summary.ends_with(" 1e 1f ..."), "{summary}");
    }

    #[test]
    fn messages_dispatch_on_type() {
        assert_eq!(message(&Message::from("x\ty")), r"x\ty");
        assert_eq!(
            message(&Message::from(vec![1u8, 2, 3])),
            "(binary) 3 bytes: 01 02 03"
        );
    }
}
