//! TOML text → [`RawConfig`], reporting every syntax-level problem of the file at once:
//! unknown keys (with a "did you mean"), values of the wrong type, bad durations and words a
//! setting does not take — each with its key path and line.
//!
//! serde stops at the first error, so the typed pass runs over the parsed tree again and
//! again: each time it fails, the problem is recorded and the offending key taken out of the
//! tree (it then gets its default), until the tree deserializes. A missing required key, or a
//! table in a list that is not a table, cannot be taken out that way: the pass stops there
//! and semantic validation does not run (its findings would be about a file with holes).

use serde_path_to_error::Segment;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigIssue;
use super::raw::RawConfig;
use super::suggest::closest;

/// Most problems reported from one file: past it the rest is noise.
const MAX_SYNTAX_ISSUES: usize = 200;

/// The typed file, when it could be read whole (possibly with keys taken out), and every
/// syntax-level problem found.
pub fn parse(text: &str) -> (Option<RawConfig>, Vec<ConfigIssue>) {
    let mut tree = match DeTable::parse(text) {
        Ok(tree) => tree,
        Err(err) => return (None, vec![issue(text, String::new(), &err)]),
    };
    let mut issues = Vec::new();
    loop {
        let de = toml::Deserializer::from(tree.clone());
        let err = match serde_path_to_error::deserialize::<_, RawConfig>(de) {
            Ok(raw) => return (Some(raw), issues),
            Err(err) => err,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let key = key_path(&segments);
        issues.push(issue(text, key, err.inner()));
        if issues.len() >= MAX_SYNTAX_ISSUES || !take_out(tree.get_mut(), &segments) {
            return (None, issues);
        }
    }
}

fn issue(text: &str, key: String, err: &toml::de::Error) -> ConfigIssue {
    let message = with_hint(err.message());
    let message = match err.span() {
        Some(span) => format!("{message} (line {})", line_of(text, span.start)),
        None => message,
    };
    ConfigIssue { key, message }
}

/// `unknown field `path_prefx`, expected one of …` gets the nearest known key, when one is
/// close enough to be a typo.
fn with_hint(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((wanted, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known = expected.split('`').skip(1).step_by(2);
    match closest(wanted, known) {
        Some(near) => format!("unknown field `{wanted}` (did you mean `{near}`?)"),
        None => message.to_string(),
    }
}

/// `routes[0].timeouts.connect`, as the rest of the validation names keys.
fn key_path(segments: &[Segment]) -> String {
    let mut key = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => key.push_str(".?"),
        }
    }
    key
}

/// Takes the value at `path` out of the tree so the next pass gets past it: a key is removed
/// from its table (the setting then takes its default); a value inside a list of plain values
/// removes the list. False when nothing can be taken out (the root, a table inside a list, a
/// path that does not lead anywhere).
fn take_out(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(key.as_str()).is_some();
    }
    let Some(value) = table.get_mut(key.as_str()) else {
        return false;
    };
    match take_out_of(value, rest) {
        Removal::Done => true,
        Removal::Impossible => false,
        Removal::WholeList => table.remove(key.as_str()).is_some(),
    }
}

enum Removal {
    Done,
    Impossible,
    /// A value inside a list of plain values: the caller removes the list.
    WholeList,
}

fn take_out_of(value: &mut Spanned<DeValue<'_>>, path: &[Segment]) -> Removal {
    match (value.get_mut(), path.split_first()) {
        (DeValue::Table(table), Some(_)) => match take_out(table, path) {
            true => Removal::Done,
            false => Removal::Impossible,
        },
        (DeValue::Array(items), Some((Segment::Seq { index }, rest))) => {
            let Some(item) = items.get_mut(*index) else {
                return Removal::Impossible;
            };
            match (item.get_ref(), rest.is_empty()) {
                (DeValue::Table(_), true) => Removal::Impossible,
                (_, true) => Removal::WholeList,
                (_, false) => take_out_of(item, rest),
            }
        }
        _ => Removal::Impossible,
    }
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|before| before.matches('\n').count() + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        let (_, issues) = parse(text);
        issues.into_iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn every_syntax_level_problem_is_reported_with_its_path() {
        let found = keys(
            "[node]\nworkers = \"two\"\nlisen = \"127.0.0.1:1\"\n\
             [[routes]]\nid = \"r\"\npool = \"p\"\ntimeouts = { connect = \"fast\" }\n\
             overflow = \"teleport\"\n",
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        let all = found.join("\n");
        for expected in [
            "node.workers: invalid type: string \"two\"",
            "node.lisen: unknown field `lisen` (did you mean `listen`?)",
            "routes[0].timeouts.connect: \"fast\" is not a duration",
            "routes[0].overflow: unknown overflow \"teleport\"; expected one of off, forward, redirect",
        ] {
            assert!(all.contains(expected), "{expected} missing from:\n{all}");
        }
    }

    #[test]
    fn a_file_with_problems_still_yields_its_other_settings() {
        let (raw, issues) = parse("[node]\nregion = \"eu\"\nshutdown_delay = 5\n");
        assert_eq!(issues.len(), 1);
        assert_eq!(raw.unwrap().node.region, "eu");
    }

    #[test]
    fn a_bad_value_in_a_list_of_plain_values_drops_the_list() {
        let (raw, issues) = parse("[node]\ntrusted_proxies = [\"10.0.0.0/8\", 5]\n");
        assert_eq!(issues[0].key, "node.trusted_proxies[1]");
        assert!(raw.unwrap().node.trusted_proxies.is_empty());
    }

    #[test]
    fn a_missing_required_key_stops_the_typed_pass() {
        let (raw, issues) = parse("[[routes]]\npool = \"p\"\nbogus = 1\n");
        assert!(raw.is_none());
        let all: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert!(
            all[0].starts_with("routes[0].bogus: unknown field"),
            "{all:?}"
        );
        assert!(all[1].contains("missing field `id`"), "{all:?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let (raw, issues) = parse("[node\nlisten = 1\n");
        assert!(raw.is_none());
        assert!(issues[0].message.contains("line 1"), "{issues:?}");
    }
}
