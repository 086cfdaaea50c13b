//! Media payload helpers shared by both roles: `@setDataFrame` stripping, AMF3 data
//! unwrapping and aggregate message splitting, all zero-copy (`Bytes` slices).

use bytes::Bytes;

use crate::rtmp::message::type_id;

/// AMF0 encoding of the string `@setDataFrame` (marker, u16 length, bytes).
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// A data payload without a leading `@setDataFrame` string (a slice of the same buffer).
pub fn strip_set_data_frame(payload: Bytes) -> Bytes {
    if payload.starts_with(SET_DATA_FRAME) {
        payload.slice(SET_DATA_FRAME.len()..)
    } else {
        payload
    }
}

/// The first string of an AMF0 data payload, if it starts with one (e.g. `onMetaData`).
pub fn data_name(payload: &[u8]) -> Option<&[u8]> {
    if payload.first() != Some(&0x02) || payload.len() < 3 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([payload[1], payload[2]]));
    payload.get(3..3 + len)
}

/// Normalises one media message: AMF3 data (15) loses its format byte and becomes 18;
/// AMF0 data loses `@setDataFrame`. Other types pass through. `None` for an empty AMF3 data.
pub fn normalise(type_id: u8, payload: Bytes) -> Option<(u8, Bytes)> {
    match type_id {
        type_id::DATA_AMF3 => {
            if payload.is_empty() {
                return None;
            }
            Some((type_id::DATA_AMF0, strip_set_data_frame(payload.slice(1..))))
        }
        type_id::DATA_AMF0 => Some((type_id, strip_set_data_frame(payload))),
        _ => Some((type_id, payload)),
    }
}

/// One sub-message of an aggregate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Why an aggregate message could not be split (the rest of it is dropped; not fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedAggregate;

/// Splits an aggregate message (type 22) into its sub-messages, rebasing timestamps so that
/// the first sub-message carries the aggregate's own timestamp. Sub-messages other than
/// audio, video and data are skipped.
pub fn split_aggregate(
    timestamp: u32,
    payload: &Bytes,
    out: &mut Vec<SubMessage>,
) -> Result<(), MalformedAggregate> {
    const HEADER: usize = 11;
    const BACK_POINTER: usize = 4;
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < payload.len() {
        let header = payload.get(pos..pos + HEADER).ok_or(MalformedAggregate)?;
        let sub_type = header[0];
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let sub_ts = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let body_start = pos + HEADER;
        let body_end = body_start.checked_add(size).ok_or(MalformedAggregate)?;
        if body_end > payload.len() {
            return Err(MalformedAggregate);
        }
        let base = *first_ts.get_or_insert(sub_ts);
        if matches!(
            sub_type,
            type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0 | type_id::DATA_AMF3
        ) {
            out.push(SubMessage {
                type_id: sub_type,
                timestamp: timestamp.wrapping_add(sub_ts.wrapping_sub(base)),
                payload: payload.slice(body_start..body_end),
            });
        }
        // The back pointer is optional on the last sub-message in some muxers.
        pos = (body_end + BACK_POINTER).min(payload.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![type_id];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        v
    }

    #[test]
    fn strips_set_data_frame_without_copying() {
        let mut raw = SET_DATA_FRAME.to_vec();
        raw.extend_from_slice(b"\x02\x00\x0aonMetaData\x05");
        let payload = Bytes::from(raw);
        let stripped = strip_set_data_frame(payload.clone());
        assert_eq!(&stripped[..], b"\x02\x00\x0aonMetaData\x05");
        assert_eq!(
            stripped.as_ptr(),
            payload[SET_DATA_FRAME.len()..].as_ptr(),
            "a slice of the same buffer"
        );
        assert_eq!(data_name(&stripped), Some(&b"onMetaData"[..]));
    }

    #[test]
    fn amf3_data_loses_its_format_byte_and_becomes_amf0_data() {
        let payload = Bytes::from_static(b"\x00\x02\x00\x0d@setDataFrame\x02\x00\x01x");
        let (t, p) = normalise(type_id::DATA_AMF3, payload).expect("non-empty");
        assert_eq!(t, type_id::DATA_AMF0);
        assert_eq!(&p[..], b"\x02\x00\x01x");
    }

    #[test]
    fn splits_an_aggregate_and_rebases_timestamps() {
        let mut raw = sub(type_id::VIDEO, 1000, b"vv");
        raw.extend(sub(type_id::AUDIO, 1023, b"a"));
        let payload = Bytes::from(raw);
        let mut out = Vec::new();
        split_aggregate(5000, &payload, &mut out).expect("well formed");
        assert_eq!(
            out,
            vec![
                SubMessage {
                    type_id: type_id::VIDEO,
                    timestamp: 5000,
                    payload: Bytes::from_static(b"vv")
                },
                SubMessage {
                    type_id: type_id::AUDIO,
                    timestamp: 5023,
                    payload: Bytes::from_static(b"a")
                },
            ]
        );
    }

    #[test]
    fn reports_an_aggregate_whose_sub_message_overruns() {
        let mut raw = sub(type_id::VIDEO, 0, b"vvvv");
        raw.truncate(13);
        let mut out = Vec::new();
        assert_eq!(
            split_aggregate(0, &Bytes::from(raw), &mut out),
            Err(MalformedAggregate)
        );
    }
}
