//! Signed URLs: `?exp=UNIX&sig=HEX[&kid=KEY]` where
//! `sig = HMAC-SHA256(secret, "{role}/{app}/{stream}?exp={exp}")`, hex-encoded.
//!
//! Verification is sans-IO (the Unix time comes in as an argument) and compares the MAC in
//! constant time (`Mac::verify_slice`). Neither the secret nor the signature is ever part of
//! an error or a `Debug` output.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Denial, Role};

/// The key a URL without `kid` is signed with.
pub const DEFAULT_KID: &str = "default";

/// Signing secrets by key id (`[auth.keys]`). `Debug` names the key ids only.
#[derive(Clone, Default)]
pub struct Keys(HashMap<String, Box<[u8]>>);

impl Keys {
    /// Keys from `kid → secret` pairs.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(kid, secret)| (kid.to_owned(), secret.as_bytes().into()))
                .collect(),
        )
    }

    /// The secret of `kid` (`None`: [`DEFAULT_KID`]).
    pub fn get(&self, kid: Option<&str>) -> Option<&[u8]> {
        self.0.get(kid.unwrap_or(DEFAULT_KID)).map(|s| &**s)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.0.keys().map(String::as_str).collect();
        kids.sort_unstable();
        write!(f, "Keys({kids:?}, secrets redacted)")
    }
}

fn mac(secret: &[u8], role: Role, app: &str, stream: &str, exp: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of any length");
    for part in [role.as_str(), "/", app, "/", stream, "?exp=", exp] {
        mac.update(part.as_bytes());
    }
    mac
}

/// The hex signature of `role` of `app/stream` until `exp` (Unix seconds).
pub fn signature(secret: &[u8], role: Role, app: &str, stream: &str, exp: u64) -> String {
    let digest = mac(secret, role, app, stream, &exp.to_string())
        .finalize()
        .into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The query a signed URL carries: `exp=…[&kid=…]&sig=…`.
pub fn signed_query(
    secret: &[u8],
    kid: Option<&str>,
    role: Role,
    app: &str,
    stream: &str,
    exp: u64,
) -> String {
    let sig = signature(secret, role, app, stream, exp);
    match kid {
        Some(kid) => format!("exp={exp}&kid={kid}&sig={sig}"),
        None => format!("exp={exp}&sig={sig}"),
    }
}

/// The value of `name` in a query string (`a=1&b=2`), the first if repeated.
pub fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `query` without its `sig` parameter (for the webhook body: the hook sees `exp` and `kid`
/// but never the signature).
pub fn without_sig(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("sig"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks the signature in `query` for `role` of `app/stream` at Unix time `now`.
pub fn verify(
    keys: &Keys,
    role: Role,
    app: &str,
    stream: &str,
    query: &str,
    now: u64,
) -> Result<(), Denial> {
    let (Some(exp_text), Some(sig)) = (param(query, "exp"), param(query, "sig")) else {
        return Err(Denial::SignatureMissing);
    };
    let exp: u64 = exp_text.parse().map_err(|_| Denial::SignatureMalformed)?;
    let sig = decode_hex(sig).ok_or(Denial::SignatureMalformed)?;
    let kid = param(query, "kid");
    let secret = keys.get(kid).ok_or_else(|| Denial::UnknownKey {
        kid: kid.unwrap_or(DEFAULT_KID).to_owned(),
    })?;
    mac(secret, role, app, stream, exp_text)
        .verify_slice(&sig)
        .map_err(|_| Denial::SignatureInvalid)?;
    if exp < now {
        return Err(Denial::SignatureExpired { exp });
    }
    Ok(())
}

/// 64 hex digits (either case) as the 32 bytes of a SHA-256 MAC.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys() -> Keys {
        Keys::new([("default", "s3cret"), ("k2", "other")])
    }

    #[test]
    fn a_signature_is_the_hmac_of_the_documented_string() {
        // Independently: HMAC-SHA256("s3cret", "play/live/cam?exp=1800000060").
        let expected = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(b"play/live/cam?exp=1800000060");
            mac.finalize().into_bytes()
        };
        let hex = signature(b"s3cret", Role::Play, "live", "cam", NOW + 60);
        assert_eq!(decode_hex(&hex).unwrap(), expected.to_vec());
        assert_eq!(hex.len(), 64);
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let q = signed_query(b"s3cret", None, Role::Publish, "live", "cam", NOW + 60);
        assert_eq!(
            verify(&keys(), Role::Publish, "live", "cam", &q, NOW),
            Ok(())
        );
        let upper = q.to_uppercase().replace("EXP", "exp").replace("SIG", "sig");
        assert_eq!(
            verify(&keys(), Role::Publish, "live", "cam", &upper, NOW),
            Ok(())
        );
    }

    #[test]
    fn an_expired_signature_is_refused() {
        let q = signed_query(b"s3cret", None, Role::Play, "live", "cam", NOW - 1);
        assert_eq!(
            verify(&keys(), Role::Play, "live", "cam", &q, NOW),
            Err(Denial::SignatureExpired { exp: NOW - 1 })
        );
    }

    #[test]
    fn a_signature_for_another_role_stream_or_expiry_is_refused() {
        let q = signed_query(b"s3cret", None, Role::Play, "live", "cam", NOW + 60);
        let bad = Err(Denial::SignatureInvalid);
        assert_eq!(verify(&keys(), Role::Publish, "live", "cam", &q, NOW), bad);
        assert_eq!(verify(&keys(), Role::Play, "live", "cam2", &q, NOW), bad);
        assert_eq!(verify(&keys(), Role::Play, "other", "cam", &q, NOW), bad);
        let later = q.replace(&format!("exp={}", NOW + 60), &format!("exp={}", NOW + 6000));
        assert_eq!(verify(&keys(), Role::Play, "live", "cam", &later, NOW), bad);
        let mut flipped = q.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            verify(&keys(), Role::Play, "live", "cam", &flipped, NOW),
            bad
        );
    }

    #[test]
    fn the_key_id_picks_the_secret() {
        let q = signed_query(b"other", Some("k2"), Role::Play, "live", "cam", NOW + 60);
        assert_eq!(verify(&keys(), Role::Play, "live", "cam", &q, NOW), Ok(()));
        let wrong = q.replace("kid=k2", "kid=default");
        assert_eq!(
            verify(&keys(), Role::Play, "live", "cam", &wrong, NOW),
            Err(Denial::SignatureInvalid)
        );
        let unknown = q.replace("kid=k2", "kid=k9");
        assert_eq!(
            verify(&keys(), Role::Play, "live", "cam", &unknown, NOW),
            Err(Denial::UnknownKey { kid: "k9".into() })
        );
    }

    #[test]
    fn missing_or_malformed_parameters_are_refused() {
        let k = keys();
        let check = |q: &str| verify(&k, Role::Play, "live", "cam", q, NOW);
        assert_eq!(check(""), Err(Denial::SignatureMissing));
        assert_eq!(check("exp=5"), Err(Denial::SignatureMissing));
        assert_eq!(check("sig=00"), Err(Denial::SignatureMissing));
        assert_eq!(check("exp=x&sig=00"), Err(Denial::SignatureMalformed));
        assert_eq!(check("exp=5&sig=zz"), Err(Denial::SignatureMalformed));
        let short = format!("exp={}&sig={}", NOW + 5, "ab".repeat(31));
        assert_eq!(check(&short), Err(Denial::SignatureMalformed));
    }

    #[test]
    fn the_hook_query_keeps_everything_but_the_signature() {
        assert_eq!(without_sig("exp=5&sig=abcd&kid=k&x=1"), "exp=5&kid=k&x=1");
        assert_eq!(without_sig("sig=abcd"), "");
        assert_eq!(without_sig(""), "");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let text = format!("{:?}", keys());
        assert!(
            !text.contains("s3cret") && !text.contains("other"),
            "{text}"
        );
        assert!(text.contains("k2"));
    }
}
