//! Recording file names: `{app}/{stream}-{UTC start}[-N].{flv|mp4}` under `record.dir`.
//!
//! App and stream names come from clients. They are used as they are (so an operator finds
//! `live/cam1-20261206T041500Z.flv` for `live/cam1`) when they are safe as one file name
//! each, and refused otherwise ([`NameError`], one variant per rule): nothing that could name
//! another directory (`/`, `\`, `.` or `..`, any `..`), hide a file (a leading `.`), or
//! garble a terminal or a listing (control and bidi characters), and nothing too long for
//! a file name once the time stamp and suffix are added. Pure functions, no file system.

use crate::fanout::StreamKey;

use super::RecordFormat;

/// Longest app or stream name recorded, in bytes: with `-{stamp}-{suffix}.{ext}` the file name
/// stays well under the 255 bytes file systems accept.
pub const MAX_NAME_BYTES: usize = 200;

/// Why an app or stream name cannot name a recording (nothing is written for it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("the name is {len} bytes long, over the {max} bytes a recording name may have")]
    TooLong { len: usize, max: usize },
    /// Holds `/` or `\`: it would name a directory.
    #[error("the name holds a path separator")]
    PathSeparator,
    /// Starts with `.`: `.`, `..` or a hidden file.
    #[error("the name starts with a dot")]
    LeadingDot,
    /// Holds `..`.
    #[error("the name holds `..`")]
    DotDot,
    /// Holds a control character (C0, DEL, C1: a newline, an escape, NUL…).
    #[error("the name holds a control character")]
    ControlCharacter,
    /// Holds a bidirectional formatting character, which makes a listing lie about the name.
    #[error("the name holds a bidirectional formatting character")]
    BidiCharacter,
}

/// Which part of a stream key a [`NameError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamePart {
    App,
    Stream,
}

/// A stream key whose app and stream names are safe as file names ([`checked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordName {
    /// The app: the directory under `record.dir`.
    pub app: String,
    /// The stream: the start of the file name.
    pub stream: String,
}

/// Checks one app or stream name against every rule of [`NameError`].
pub fn check(name: &str) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::PathSeparator);
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    if name.contains("..") {
        return Err(NameError::DotDot);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if name.chars().any(is_bidi_control) {
        return Err(NameError::BidiCharacter);
    }
    Ok(name)
}

/// The app and stream of `key` (split at its last `/`, as HTTP paths are), each checked.
pub fn checked(key: &StreamKey) -> Result<RecordName, (NamePart, NameError)> {
    let (app, stream) = key.as_str().rsplit_once('/').unwrap_or(("", key.as_str()));
    let app = check(app).map_err(|e| (NamePart::App, e))?;
    let stream = check(stream).map_err(|e| (NamePart::Stream, e))?;
    Ok(RecordName {
        app: app.to_string(),
        stream: stream.to_string(),
    })
}

/// The file name of a recording of `stream` started at `stamp` ([`utc_stamp`]): suffix 0 is
/// the plain name, a later one (the plain name was taken) is appended as `-N`.
pub fn file_name(stream: &str, stamp: &str, suffix: u32, format: RecordFormat) -> String {
    let ext = format.extension();
    match suffix {
        0 => format!("{stream}-{stamp}.{ext}"),
        n => format!("{stream}-{stamp}-{n}.{ext}"),
    }
}

/// Unix milliseconds as a compact ISO 8601 UTC time, `20261206T041500Z`.
pub fn utc_stamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unicode's explicit bidirectional formatting characters (marks, embeddings, overrides,
/// isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> Result<RecordName, (NamePart, NameError)> {
        checked(&StreamKey::new("live", name))
    }

    #[test]
    fn plain_names_are_used_as_they_are() {
        for name in [
            "cam1", "cam-1.hd", "a b", "café", "%2e%2e", "x.", "a.b.c", "~",
        ] {
            let got = stream(name).unwrap();
            assert_eq!((got.app.as_str(), got.stream.as_str()), ("live", name));
        }
    }

    #[test]
    fn hostile_names_are_refused_naming_the_rule() {
        let refused = [
            ("..", NameError::LeadingDot),
            (".", NameError::LeadingDot),
            (".hidden", NameError::LeadingDot),
            ("a..b", NameError::DotDot),
            ("a\\b", NameError::PathSeparator),
            ("..\\..\\x", NameError::PathSeparator),
            ("x\ny", NameError::ControlCharacter),
            ("x\0", NameError::ControlCharacter),
            ("x\u{1b}[31m", NameError::ControlCharacter),
            ("x\u{7f}", NameError::ControlCharacter),
            ("x\u{85}", NameError::ControlCharacter),
            ("gpj.\u{202e}exe", NameError::BidiCharacter),
            ("", NameError::Empty),
        ];
        for (name, rule) in refused {
            assert_eq!(stream(name), Err((NamePart::Stream, rule)), "{name:?}");
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            stream(&long),
            Err((
                NamePart::Stream,
                NameError::TooLong {
                    len: MAX_NAME_BYTES + 1,
                    max: MAX_NAME_BYTES
                }
            ))
        );
        assert!(stream(&"x".repeat(MAX_NAME_BYTES)).is_ok());
    }

    #[test]
    fn a_slash_in_the_stream_name_leaves_an_app_that_is_refused() {
        // `live` + `../../etc/x` is the key `live/../../etc/x`: its last part is `x`, and the
        // app part `live/../../etc` is refused.
        for name in ["../../etc/x", "a/b", "/etc/passwd", "x/"] {
            let got = stream(name);
            assert!(got.is_err(), "{name:?} → {got:?}");
        }
        assert_eq!(
            stream("a/b"),
            Err((NamePart::App, NameError::PathSeparator))
        );
        assert_eq!(
            checked(&StreamKey::new("..", "x")),
            Err((NamePart::App, NameError::LeadingDot))
        );
        assert_eq!(
            checked(&StreamKey::new("", "x")),
            Err((NamePart::App, NameError::Empty))
        );
    }

    #[test]
    fn every_accepted_name_is_one_plain_path_component() {
        use std::path::{Component, Path};
        let names = ["cam", "%2e%2e", "a b", "x.", "é", "~", "-", "a:b", "*"];
        for name in names {
            let n = stream(name).unwrap();
            let file = file_name(&n.stream, "20261206T041500Z", 3, RecordFormat::Flv);
            let path = Path::new(&n.app).join(&file);
            let parts: Vec<_> = path.components().collect();
            assert_eq!(parts.len(), 2, "{name:?} → {path:?}");
            assert!(
                parts.iter().all(|c| matches!(c, Component::Normal(_))),
                "{name:?} → {path:?}"
            );
            assert!(file.len() < 255);
        }
    }

    #[test]
    fn file_names_carry_the_utc_start_and_a_suffix_when_taken() {
        // 2026-12-06 04:15:00 UTC.
        let ms = 1_796_530_500_000 + 999;
        assert_eq!(utc_stamp(ms), "20261206T041500Z");
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // A leap day and the last second of a year.
        assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
        assert_eq!(utc_stamp(1_735_689_599_000), "20241231T235959Z");
        let stamp = utc_stamp(ms);
        assert_eq!(
            file_name("cam", &stamp, 0, RecordFormat::Flv),
            "cam-20261206T041500Z.flv"
        );
        assert_eq!(
            file_name("cam", &stamp, 2, RecordFormat::Mp4),
            "cam-20261206T041500Z-2.mp4"
        );
    }
}
