//! Redis key names of presence records, and how to find one topic's keys with `SCAN`.

/// Hex digits of a process id in a key: a fixed length, so that a key read back from
/// `SCAN` tells exactly which topic it belongs to even when topic names contain `:`.
pub(crate) const PROCESS_ID_LEN: usize = 32;

/// `{namespace}presence:{topic}:`, the prefix shared by every process's key of `topic`.
pub(crate) fn topic_prefix(namespace: &str, topic: &str) -> String {
    format!("{namespace}presence:{topic}:")
}

/// The key of one process's records in `topic`.
pub(crate) fn key(namespace: &str, topic: &str, process: &str) -> String {
    format!("{}{process}", topic_prefix(namespace, topic))
}

/// The `SCAN MATCH` pattern of `topic`'s keys. The namespace and topic are escaped: a
/// topic named `a*` must not match the keys of topic `ab`.
pub(crate) fn pattern(namespace: &str, topic: &str) -> String {
    let mut pattern = escape_glob(&topic_prefix(namespace, topic));
    pattern.push('*');
    pattern
}

/// The process id of a key that `pattern` matched, if the key is one of `topic`'s: the
/// pattern's trailing `*` also matches the keys of topic `a:b` when looking for `a`.
pub(crate) fn process_of<'k>(key: &'k str, namespace: &str, topic: &str) -> Option<&'k str> {
    let process = key.strip_prefix(&topic_prefix(namespace, topic))?;
    let well_formed =
        process.len() == PROCESS_ID_LEN && process.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some(process)
}

/// `text` with Redis glob's special characters (`*`, `?`, `[`, `]`, `\`) escaped.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESS: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(pattern("ns:", "a*b?[c]\\"), r"ns:presence:a\*b\?\[c\]\\:*");
    }

    #[test]
    fn a_key_belongs_to_its_topic_only() {
        let key = key("ns:", "a:b", PROCESS);
        assert_eq!(key, format!("ns:presence:a:b:{PROCESS}"));
        assert_eq!(process_of(&key, "ns:", "a:b"), Some(PROCESS));
        // `ns:presence:a:*` matches it, but it is not topic `a`'s.
        assert_eq!(process_of(&key, "ns:", "a"), None);
        assert_eq!(process_of("ns:presence:a:short", "ns:", "a"), None);
    }
}
