//! "Did you mean …?" for a misspelt name: a pool a route names, a key in the file.

/// The known name nearest to a misspelt one, if it is close enough to be a typo (at most two
/// edits, or a quarter of the name for long ones).
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(wanted, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_hint() {
        let pools = ["api", "stream", "search"];
        assert_eq!(closest("strem", pools), Some("stream"));
        assert_eq!(closest("video", pools), None);
    }
}
