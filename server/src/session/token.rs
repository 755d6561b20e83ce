//! Session tokens: `<uuid>.<hmac>`, the HMAC-SHA256 of the uuid under the router's key, in
//! hex. Any router node with the same key can check a token; a forged or altered one fails
//! the check (in constant time) and is ignored.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks session tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
    /// A key being rotated out: its tokens are still accepted until the instant given.
    previous: Option<(Vec<u8>, std::time::Instant)>,
}

/// How a token checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Signed with the current key.
    Current(Uuid),
    /// Signed with the previous key, inside its window: valid, but should be re-issued.
    Previous(Uuid),
}

impl Verified {
    pub fn id(self) -> Uuid {
        match self {
            Verified::Current(id) | Verified::Previous(id) => id,
        }
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    pub fn new(key: &[u8]) -> TokenKey {
        TokenKey {
            key: key.to_vec(),
            previous: None,
        }
    }

    /// A random key from the operating system's generator: tokens then hold only for this
    /// process. `Err` when the system cannot give randomness (the caller refuses to start
    /// rather than sign with a guessable key).
    pub fn random() -> Result<TokenKey, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(TokenKey::new(&key))
    }

    /// Also accepts tokens of `previous` until `until` (key rotation).
    pub fn with_previous(mut self, previous: &[u8], until: std::time::Instant) -> TokenKey {
        self.previous = Some((previous.to_vec(), until));
        self
    }

    fn mac_with(key: &[u8]) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    fn mac(&self) -> HmacSha256 {
        TokenKey::mac_with(&self.key)
    }

    /// The token for a session id.
    pub fn sign(&self, id: Uuid) -> String {
        let mut mac = self.mac();
        mac.update(id.as_hyphenated().to_string().as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = id.as_hyphenated().to_string();
        out.push('.');
        for b in tag.iter() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// The session id of a genuine token; `None` for anything unsigned, altered or malformed.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        self.check(token).map(Verified::id)
    }

    /// Like [`TokenKey::verify`], saying which key signed it.
    pub fn check(&self, token: &str) -> Option<Verified> {
        let (id, tag) = token.split_once('.')?;
        let uuid = Uuid::parse_str(id).ok()?;
        // One spelling only, the one this router signs: lowercase hyphenated. Braced, URN,
        // simple or uppercase forms of the same id are not tokens.
        if id != uuid.as_hyphenated().to_string() {
            return None;
        }
        // The tag too: lowercase hex, as signed ("AE" for "ae" is not the same token).
        if tag.len() != 64 || !tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&tag[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        let signed_by = |key: &[u8]| {
            let mut mac = TokenKey::mac_with(key);
            mac.update(uuid.as_hyphenated().to_string().as_bytes());
            mac.verify_slice(&bytes).is_ok()
        };
        if signed_by(&self.key) {
            return Some(Verified::Current(uuid));
        }
        match &self.previous {
            Some((key, until)) if std::time::Instant::now() < *until && signed_by(key) => {
                Some(Verified::Previous(uuid))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_token_verifies_only_in_the_spelling_it_was_signed_in() {
        let key = TokenKey::new(b"a key for spellings");
        let id = Uuid::new_v4();
        let token = key.sign(id);
        assert_eq!(key.verify(&token), Some(id));
        let (_, tag) = token.split_once('.').unwrap();
        for other in [
            id.as_simple().to_string(),
            id.as_braced().to_string(),
            id.as_urn().to_string(),
            id.as_hyphenated().to_string().to_uppercase(),
        ] {
            assert_eq!(key.verify(&format!("{other}.{tag}")), None, "{other}");
        }
    }

    /// Found by the `session_token` fuzz target: an uppercase hex digit in the tag verified.
    #[test]
    fn a_tag_spelt_in_uppercase_is_not_the_token() {
        let key = TokenKey::new(b"fuzz: the previous key");
        let signed = "6f1d2c3a-9b8e-4f70-a1b2-c3d4e5f60718.000f96678cd30ab7b4e6b6c97cbd90913f3d6d7eb85e0576918d93b381aae856";
        let id = Uuid::parse_str("6f1d2c3a-9b8e-4f70-a1b2-c3d4e5f60718").unwrap();
        assert_eq!(key.verify(signed), Some(id));
        let altered = "6f1d2c3a-9b8e-4f70-a1b2-c3d4e5f60718.000f96678cd30ab7b4e6b6c97cbd90913f3d6d7eb85e0576918d93b381aAe856";
        assert_eq!(key.verify(altered), None);
        assert_eq!(key.verify(&signed.to_uppercase()), None);
    }

    #[test]
    fn a_random_key_comes_from_the_system_and_differs_every_time() {
        let (a, b) = (TokenKey::random().unwrap(), TokenKey::random().unwrap());
        assert_eq!(a.key.len(), 32);
        assert_ne!(a.key, b.key);
        let id = uuid::Uuid::new_v4();
        assert!(a.verify(&a.sign(id)).is_some() && b.verify(&a.sign(id)).is_none());
    }

    use super::*;

    #[test]
    fn a_signed_token_verifies_and_anything_else_does_not() {
        let key = TokenKey::new(b"secret");
        let id = Uuid::new_v4();
        let token = key.sign(id);
        assert_eq!(key.verify(&token), Some(id));
        // Another key, a changed id, a changed tag, garbage: all refused.
        assert_eq!(TokenKey::new(b"other").verify(&token), None);
        let other = Uuid::new_v4();
        let forged = format!("{}{}", other, &token[36..]);
        assert_eq!(key.verify(&forged), None);
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        assert_eq!(key.verify(&tampered), None);
        for junk in ["", ".", "abc", &id.to_string(), &format!("{id}.zz")] {
            assert_eq!(key.verify(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_rotated_out_key_is_accepted_only_within_its_window() {
        let old = TokenKey::new(b"old");
        let id = Uuid::new_v4();
        let token = old.sign(id);
        let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let rotated = TokenKey::new(b"new").with_previous(b"old", later);
        assert_eq!(rotated.check(&token), Some(Verified::Previous(id)));
        assert_eq!(
            rotated.check(&rotated.sign(id)),
            Some(Verified::Current(id))
        );
        let expired = TokenKey::new(b"new").with_previous(b"old", std::time::Instant::now());
        assert_eq!(expired.check(&token), None);
    }
}
