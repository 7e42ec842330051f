//! Commands: what a chat line means — plain text, or an IRC-style `/command`.
//!
//! Pure parsing, no state: the chat calls [`parse`] on every chat line and carries out
//! the result. Commands are typed as text, so they work from any page, the classic one included.

/// The help text `/help` sends.
pub const HELP: &str = "Commands: /nick NEW (change your name), /me ACTION (an action line), \
    /who (who is in this room), /msg NAME TEXT (a private message), /help (this list). \
    Start a line with // to send a literal /.";

/// One chat line, understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Text for the room (a leading `//` already turned into `/`).
    Say(&'a str),
    /// `/nick NEW`
    Nick(&'a str),
    /// `/me ACTION`
    Me(&'a str),
    /// `/who`
    Who,
    /// `/msg NAME TEXT`: everything after `/msg `; the name is resolved against the room,
    /// because names may contain spaces.
    Msg(&'a str),
    /// `/help`
    Help,
    /// A known command without its argument: the usage to show.
    Usage(&'static str),
    /// An unknown command (the word after `/`).
    Unknown(&'a str),
}

/// Parses one chat line.
pub fn parse(line: &str) -> Line<'_> {
    let Some(rest) = line.strip_prefix('/') else {
        return Line::Say(line);
    };
    if rest.starts_with('/') {
        return Line::Say(rest);
    }
    let (word, arg) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    match word.to_ascii_lowercase().as_str() {
        "nick" if arg.trim().is_empty() => Line::Usage("/nick NEW"),
        "nick" => Line::Nick(arg.trim_end()),
        "me" if arg.is_empty() => Line::Usage("/me ACTION"),
        "me" => Line::Me(arg),
        "who" => Line::Who,
        "msg" if arg.is_empty() => Line::Usage("/msg NAME TEXT"),
        "msg" => Line::Msg(arg),
        "help" => Line::Help,
        _ => Line::Unknown(word),
    }
}

/// Splits the argument of `/msg` into the recipient and the text: the recipient is the longest
/// of `names` (compared case-insensitively) followed by whitespace and a non-empty text.
/// Returns the matching name as given in `names`, and the text.
pub fn split_recipient<'n, 'a>(
    arg: &'a str,
    names: impl IntoIterator<Item = &'n str>,
) -> Option<(&'n str, &'a str)> {
    let mut best: Option<(&'n str, &'a str)> = None;
    for name in names {
        let n = name.len();
        if arg.len() <= n || !arg.is_char_boundary(n) {
            continue;
        }
        let (head, tail) = arg.split_at(n);
        if !tail.starts_with(char::is_whitespace) || head.to_lowercase() != name.to_lowercase() {
            continue;
        }
        let text = tail.trim_start();
        if !text.is_empty() && best.is_none_or(|(b, _)| name.len() > b.len()) {
            best = Some((name, text));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_escaped_slashes() {
        assert_eq!(parse("hello"), Line::Say("hello"));
        assert_eq!(parse(" /nick x"), Line::Say(" /nick x"));
        assert_eq!(parse("//nick x"), Line::Say("/nick x"));
        assert_eq!(parse("//"), Line::Say("/"));
        assert_eq!(parse("a/b"), Line::Say("a/b"));
    }

    #[test]
    fn commands() {
        assert_eq!(parse("/nick  ally "), Line::Nick("ally"));
        assert_eq!(parse("/NICK bob smith"), Line::Nick("bob smith"));
        assert_eq!(parse("/me waves  twice"), Line::Me("waves  twice"));
        assert_eq!(parse("/who"), Line::Who);
        assert_eq!(parse("/who cares"), Line::Who);
        assert_eq!(parse("/msg bob hi there"), Line::Msg("bob hi there"));
        assert_eq!(parse("/help"), Line::Help);
    }

    #[test]
    fn usage_and_unknown() {
        assert_eq!(parse("/nick"), Line::Usage("/nick NEW"));
        assert_eq!(parse("/nick   "), Line::Usage("/nick NEW"));
        assert_eq!(parse("/me"), Line::Usage("/me ACTION"));
        assert_eq!(parse("/msg"), Line::Usage("/msg NAME TEXT"));
        assert_eq!(parse("/dance now"), Line::Unknown("dance"));
        assert_eq!(parse("/"), Line::Unknown(""));
    }

    #[test]
    fn recipients_with_spaces_and_case() {
        let names = ["bob", "bob smith", "Ann"];
        assert_eq!(split_recipient("bob hi", names), Some(("bob", "hi")));
        assert_eq!(
            split_recipient("bob smith hi there", names),
            Some(("bob smith", "hi there"))
        );
        assert_eq!(split_recipient("ANN  hello", names), Some(("Ann", "hello")));
        assert_eq!(split_recipient("carol hi", names), None);
        assert_eq!(split_recipient("bob", names), None);
        assert_eq!(split_recipient("bob   ", names), None);
        assert_eq!(split_recipient("bobby hi", names), None);
    }
}
