//! Names: the rules for nicknames (room names follow them too).

/// Longest nickname, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 32;

/// Checks a requested nickname: surrounding whitespace is trimmed, and what is left must be
/// 1 to [`MAX_NAME_CHARS`] characters with no control characters. Returns the name to use, or
/// `None` when the server must pick one.
pub fn clean_name(raw: &str) -> Option<&str> {
    let name = raw.trim();
    let chars = name.chars().count();
    let ok = (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control);
    ok.then_some(name)
}

/// Returns `base`, or `base` with the smallest numeric suffix (2, 3, …) that `taken` does not
/// reject, keeping the result within [`MAX_NAME_CHARS`].
pub fn unique_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    for n in 2u64.. {
        let suffix = n.to_string();
        let keep = MAX_NAME_CHARS - suffix.len();
        let stem: String = base.chars().take(keep).collect();
        let candidate = format!("{stem}{suffix}");
        if !taken(&candidate) {
            return candidate;
        }
    }
    unreachable!("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(clean_name("alice"), Some("alice"));
        assert_eq!(clean_name("  bob smith "), Some("bob smith"));
        assert_eq!(clean_name(""), None);
        assert_eq!(clean_name("   "), None);
        assert_eq!(clean_name("a\u{7}b"), None);
        assert_eq!(clean_name("tab\tname"), None);
        assert_eq!(clean_name(&"x".repeat(32)).map(str::len), Some(32));
        assert_eq!(clean_name(&"x".repeat(33)), None);
        assert_eq!(
            clean_name(&"é".repeat(32)).map(|n| n.chars().count()),
            Some(32)
        );
    }

    #[test]
    fn duplicate_names_get_the_smallest_free_suffix() {
        let taken = ["alice", "alice2"];
        assert_eq!(unique_name("bob", |n| taken.contains(&n)), "bob");
        assert_eq!(unique_name("alice", |n| taken.contains(&n)), "alice3");
        let long = "y".repeat(32);
        let got = unique_name(&long, |n| n == long);
        assert_eq!(got.chars().count(), 32);
        assert!(got.ends_with('2'));
    }

    #[test]
    fn the_documented_examples() {
        assert_eq!(clean_name("  ada lovelace "), Some("ada lovelace"));
        assert_eq!(clean_name("bell\u{7}"), None); // a control character
        assert_eq!(clean_name(&"x".repeat(33)), None); // too long
        let taken = ["ada", "ada2"];
        assert_eq!(unique_name("ada", |n| taken.contains(&n)), "ada3");
        assert_eq!(unique_name("bob", |n| taken.contains(&n)), "bob");
    }
}
