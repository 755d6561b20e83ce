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
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    pub fn new(key: &[u8]) -> TokenKey {
        TokenKey { key: key.to_vec() }
    }

    /// A random key: tokens then hold only for this process.
    pub fn random() -> TokenKey {
        let key: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
        TokenKey { key }
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
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
        let (id, tag) = token.split_once('.')?;
        let uuid = Uuid::parse_str(id).ok()?;
        if tag.len() != 64 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&tag[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        let mut mac = self.mac();
        mac.update(uuid.as_hyphenated().to_string().as_bytes());
        mac.verify_slice(&bytes).ok().map(|_| uuid)
    }
}

#[cfg(test)]
mod tests {
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
}
