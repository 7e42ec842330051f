//! Engine.IO long-polling: the payloads that carry packets over HTTP, the polling open packet,
//! and the checks on a polling request's query.
//!
//! Pure functions: no socket, thread or clock. The polling reader (`reader::polling`) decodes
//! POST bodies with them, the outbox's polling side (`outbox::polling`) frames what a pending
//! GET carries. A payload is several Engine.IO packets in one HTTP body:
//!
//! | version | framing | example (`2` then `42["message","hé"]`) |
//! |---|---|---|
//! | `EIO=3` | `<length>:<packet>` repeated; the length counts UTF-16 code units | `1:218:42["message","hé"]` |
//! | `EIO=4` | packets separated by the record separator `\x1e` | `2\x1e42["message","hé"]` |

use serde_json::json;

use crate::http;
use crate::socketio::Eio;

/// The record separator between packets of an EIO=4 payload.
pub(crate) const SEPARATOR: u8 = 0x1e;

/// The packet that releases a pending GET without news (a client about to upgrade).
pub(crate) const NOOP: &str = "6";

/// Why a POST body is not a payload: the reason for the HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadPayload(pub String);

/// Appends one packet to a payload being built in `out`.
pub(crate) fn push_packet(eio: Eio, out: &mut Vec<u8>, packet: &str) {
    match eio {
        Eio::V4 => {
            if !out.is_empty() {
                out.push(SEPARATOR);
            }
        }
        Eio::V3 => {
            let units = packet.encode_utf16().count();
            out.extend_from_slice(units.to_string().as_bytes());
            out.push(b':');
        }
    }
    out.extend_from_slice(packet.as_bytes());
}

/// Encodes packets as one payload.
pub(crate) fn encode_payload(eio: Eio, packets: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for packet in packets {
        push_packet(eio, &mut out, packet);
    }
    out
}

/// Splits a payload into its packets. An empty payload, an empty packet, or (v3) a length
/// that is missing, not a number, or does not end on a character is an error.
pub(crate) fn decode_payload(eio: Eio, body: &str) -> Result<Vec<&str>, BadPayload> {
    if body.is_empty() {
        return Err(BadPayload("an empty payload".into()));
    }
    let packets: Vec<&str> = match eio {
        Eio::V4 => body.split(SEPARATOR as char).collect(),
        Eio::V3 => decode_v3(body)?,
    };
    if packets.iter().any(|p| p.is_empty()) {
        return Err(BadPayload("an empty packet in the payload".into()));
    }
    Ok(packets)
}

/// `<length>:<packet>` repeated, the length in UTF-16 code units (an emoji counts 2).
fn decode_v3(mut body: &str) -> Result<Vec<&str>, BadPayload> {
    let mut packets = Vec::new();
    while !body.is_empty() {
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || body.as_bytes().get(digits) != Some(&b':') {
            return Err(BadPayload(
                "EIO=3 payload: expected <length>:<packet>".into(),
            ));
        }
        let units: usize = body[..digits]
            .parse()
            .map_err(|_| BadPayload("EIO=3 payload: length out of range".into()))?;
        let rest = &body[digits + 1..];
        let mut taken = 0;
        let mut end = 0;
        for ch in rest.chars() {
            if taken >= units {
                break;
            }
            taken += ch.len_utf16();
            end += ch.len_utf8();
        }
        if taken != units {
            return Err(BadPayload(format!(
                "EIO=3 payload: length {units} does not match the packet"
            )));
        }
        packets.push(&rest[..end]);
        body = &rest[end..];
    }
    Ok(packets)
}

/// The open packet of a polling session: like the WebSocket one, but offering the upgrade.
/// Times in milliseconds, `max_payload` in bytes (v4 only).
pub(crate) fn open_packet(
    eio: Eio,
    sid: &str,
    ping_interval_ms: u128,
    ping_timeout_ms: u128,
    max_payload_bytes: usize,
) -> String {
    let mut open = json!({
        "sid": sid,
        "upgrades": ["websocket"],
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
    });
    if eio == Eio::V4 {
        open["maxPayload"] = json!(max_payload_bytes);
    }
    format!("0{open}")
}

/// Checks the query of a polling request (`EIO` and `transport=polling`); the error is the
/// reason for an HTTP 400.
pub(crate) fn check_polling_query(query: &str) -> Result<Eio, String> {
    let eio = match http::query_param(query, "EIO").as_deref() {
        Some("4") => Eio::V4,
        Some("3") => Eio::V3,
        Some(other) => {
            return Err(format!(
                "unsupported EIO={other}: wschat speaks EIO=4 (socket.io-client v3 and v4) \
                 and EIO=3 (socket.io-client v2)"
            ))
        }
        None => return Err("missing EIO: socket.io clients send EIO=4 or EIO=3".into()),
    };
    match http::query_param(query, "transport").as_deref() {
        Some("polling") => Ok(eio),
        _ => Err("expected transport=polling".into()),
    }
}

/// The body engine.io sends with the 400 for a sid it does not know.
pub(crate) const UNKNOWN_SID_BODY: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

/// The body for a request that breaks a session's rules (engine.io's "Bad request").
pub(crate) const BAD_REQUEST_BODY: &str = r#"{"code":3,"message":"Bad request"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::Mutator;

    #[test]
    fn v4_payloads() {
        let body = encode_payload(Eio::V4, &["2", r#"42["message","hé"]"#]);
        assert_eq!(body, b"2\x1e42[\"message\",\"h\xc3\xa9\"]");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            decode_payload(Eio::V4, &text),
            Ok(vec!["2", r#"42["message","hé"]"#])
        );
        assert_eq!(decode_payload(Eio::V4, "6"), Ok(vec!["6"]));
        assert!(decode_payload(Eio::V4, "").is_err());
        assert!(decode_payload(Eio::V4, "2\x1e").is_err());
        assert!(decode_payload(Eio::V4, "\x1e2").is_err());
    }

    #[test]
    fn v3_lengths_count_utf16_units() {
        // "😀" is one char, four UTF-8 bytes, two UTF-16 units.
        let packet = r#"42["message","😀é"]"#;
        let body = encode_payload(Eio::V3, &["3", packet]);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!("1:319:{packet}")
        );
        let text = String::from_utf8(body).unwrap();
        assert_eq!(decode_payload(Eio::V3, &text), Ok(vec!["3", packet]));
        assert_eq!(decode_payload(Eio::V3, "2:40"), Ok(vec!["40"]));
    }

    #[test]
    fn bad_v3_payloads() {
        for bad in [
            "",
            "2",
            ":2",
            "x:2",
            "5:40", // too short
            "1:40", // the rest is not a length
            "0:",   // an empty packet
            "1:😀", // ends inside the emoji's surrogate pair
            "99999999999999999999999:1",
        ] {
            assert!(decode_payload(Eio::V3, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn polling_queries() {
        assert_eq!(
            check_polling_query("EIO=4&transport=polling&t=x"),
            Ok(Eio::V4)
        );
        assert_eq!(
            check_polling_query("EIO=3&transport=polling&sid=a"),
            Ok(Eio::V3)
        );
        assert!(check_polling_query("EIO=5&transport=polling").is_err());
        assert!(check_polling_query("transport=polling").is_err());
        assert!(check_polling_query("EIO=4&transport=websocket").is_err());
    }

    #[test]
    fn open_packets_offer_the_upgrade() {
        assert_eq!(
            open_packet(Eio::V4, "s", 25_000, 20_000, 4096),
            r#"0{"maxPayload":4096,"pingInterval":25000,"pingTimeout":20000,"sid":"s","upgrades":["websocket"]}"#
        );
        let v3 = open_packet(Eio::V3, "s", 25_000, 20_000, 4096);
        assert!(!v3.contains("maxPayload"), "{v3}");
        assert!(v3.contains(r#""upgrades":["websocket"]"#), "{v3}");
    }

    /// Every prefix and many mutations of valid payloads, both versions: packets that
    /// re-encode to the same payload, or an error, never a panic (the packet codec's
    /// `mutated_packets_never_panic`, one layer down).
    #[test]
    fn mutated_payloads_never_panic() {
        let packets: [&[&str]; 4] = [
            &["2", "3probe"],
            &[r#"42["message","😀 hé"]"#, "40"],
            &["6"],
            &[r#"42["message","a:b\u001e"]"#, "1", "5"],
        ];
        let mut mutator = Mutator::new(0x2545_F491_4F6C_DD1D, "0123456789:\x1e[]\"😀é ab");
        let mut cases = 0;
        for eio in [Eio::V3, Eio::V4] {
            for list in packets {
                let valid = String::from_utf8(encode_payload(eio, list)).unwrap();
                let inputs = mutator.inputs(&valid, 500);
                for input in &inputs {
                    if let Ok(decoded) = decode_payload(eio, input) {
                        // (v3 lengths may have leading zeros, so compare the packets.)
                        let again = String::from_utf8(encode_payload(eio, &decoded)).unwrap();
                        assert_eq!(decode_payload(eio, &again), Ok(decoded), "{input:?}");
                    }
                    cases += 1;
                }
            }
        }
        assert!(cases > 4_000, "{cases}");
    }
}
