//! How log lines render their fields: no field value can break a line or forge a field.
//!
//! Stream names, apps, tcUrls, request paths and error texts come from clients. Rendered raw,
//! a name holding `\n` or `\r` writes a forged line (`... ERROR admin login`), an escape byte
//! recolours a terminal, and a space or `=` forges a field (`stream=live/x role=admin`).
//! [`EscapedFields`] renders every value of every event the way logfmt does: a value made of
//! plain characters as it is (`worker=0 stream=live/demo`), anything else in double quotes with
//! control characters, quotes and backslashes escaped (`stream="live/x\nERROR forged"`).
//! String fields are always quoted, as tracing's default renders them (`role="player"`).
//! Because it is the subscriber's formatter, it covers every call site, present and future.

mod repeat;

pub use repeat::{install, report_suppressed, RepeatFilter, RepeatLimit};

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The field formatter for `tracing_subscriber::fmt().fmt_fields(EscapedFields)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapedVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        EscapedVisitor {
            writer: target,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's fields; see [`EscapedFields`].
pub struct EscapedVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl EscapedVisitor<'_> {
    fn field(&mut self, field: &Field, value: &str, always_quote: bool) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            self.writer
                .write_str(separator)
                .and_then(|()| write_escaped(&mut self.writer, value))
        } else {
            let name = field.name().strip_prefix("r#").unwrap_or(field.name());
            write!(self.writer, "{separator}{name}=")
                .and_then(|()| write_value(&mut self.writer, value, always_quote))
        };
    }
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"), false);
    }
}

impl VisitOutput<fmt::Result> for EscapedVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn Write {
        &mut self.writer
    }
}

/// A character that may stand unquoted in a value.
fn is_plain(c: char) -> bool {
    !(c.is_control() || c.is_whitespace() || needs_escape(c) || c == '=')
}

/// A character written as an escape inside quotes: controls (newlines, ESC), the quote and
/// backslash themselves, and the invisible characters that reorder or split a line on screen.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '"' | '\\' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `value` as it is when plain (and not `always_quote`), else quoted and escaped.
pub fn write_value(w: &mut impl Write, value: &str, always_quote: bool) -> fmt::Result {
    if !always_quote && !value.is_empty() && value.chars().all(is_plain) {
        return w.write_str(value);
    }
    w.write_char('"')?;
    write_escaped(w, value)?;
    w.write_char('"')
}

/// `value` with every character of [`needs_escape`] escaped (`\n`, `\u{1b}`, `\"`).
fn write_escaped(w: &mut impl Write, value: &str) -> fmt::Result {
    for c in value.chars() {
        if needs_escape(c) {
            match c {
                '"' | '\\' | '\n' | '\r' | '\t' => write!(w, "{}", c.escape_default())?,
                _ => write!(w, "\\u{{{:x}}}", u32::from(c))?,
            }
        } else {
            w.write_char(c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(value: &str, always_quote: bool) -> String {
        let mut s = String::new();
        write_value(&mut s, value, always_quote).unwrap();
        s
    }

    #[test]
    fn plain_values_stand_as_they_are() {
        assert_eq!(rendered("live/demo", false), "live/demo");
        assert_eq!(rendered("127.0.0.1:1935", false), "127.0.0.1:1935");
        assert_eq!(rendered("caméra", false), "caméra");
    }

    #[test]
    fn a_newline_in_a_value_cannot_start_a_line() {
        let out = rendered("live/x\nERROR forged\r", false);
        assert_eq!(out, r#""live/x\nERROR forged\r""#);
        assert!(!out.contains('\n') && !out.contains('\r'));
    }

    #[test]
    fn escape_bytes_and_bidi_overrides_are_escaped() {
        assert_eq!(rendered("a\u{1b}[31mb", false), r#""a\u{1b}[31mb""#);
        assert_eq!(rendered("a\u{202e}b", false), r#""a\u{202e}b""#);
    }

    #[test]
    fn spaces_equals_and_quotes_are_quoted_so_no_field_can_be_forged() {
        assert_eq!(rendered("x role=admin", false), r#""x role=admin""#);
        assert_eq!(rendered("a\"b\\c", false), r#""a\"b\\c""#);
        assert_eq!(rendered("", false), r#""""#);
    }

    #[test]
    fn string_fields_are_always_quoted() {
        assert_eq!(rendered("player", true), r#""player""#);
    }
}
