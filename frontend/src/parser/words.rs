//! Line-level splitters: BuildKit's `extractBuilderFlags`, `parseWords`, JSON arrays.

/// A `--flag[=value]` word as written before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    /// The word with quotes and escapes removed, `--` included.
    pub text: String,
    /// Byte offset of the word in the logical line.
    pub offset: usize,
}

/// Split leading `--flags` off `line`; returns (flags, byte offset where the rest starts).
/// Quotes inside flags are removed and `\` escapes one character, as BuildKit does.
pub(crate) fn extract_flags(line: &str, base: usize) -> (Vec<RawFlag>, usize) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    let push = |flags: &mut Vec<RawFlag>, word: &[u8], start: usize| {
        flags.push(RawFlag { text: String::from_utf8_lossy(word).into_owned(), offset: base + start });
    };
    while pos <= b.len() {
        let ch = if pos < b.len() { b[pos] } else { 0 };
        if phase == Phase::Spaces {
            if pos == b.len() {
                break;
            }
            if ch.is_ascii_whitespace() {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == b.len() || b[pos + 1] != b'-' {
                return (flags, base + pos);
            }
            phase = Phase::Word;
            start = pos;
        }
        if pos == b.len() {
            if word != b"--" && (blank_ok || !word.is_empty()) {
                push(&mut flags, &word, start);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_ascii_whitespace() {
                phase = Phase::Spaces;
                if word == b"--" {
                    return (flags, base + pos);
                }
                if blank_ok || !word.is_empty() {
                    push(&mut flags, &word, start);
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == b'\\' {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
            }
            word.push(b[pos]);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == b'\\' {
            if pos + 1 == b.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
        }
        word.push(b[pos]);
        pos += 1;
    }
    (flags, base + b.len())
}

/// BuildKit's `parseWords`: split on whitespace honouring quotes and the escape
/// character, but keep quotes and escapes in the words (expansion removes them later).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut it = rest.chars().peekable();
    loop {
        let ch = it.next();
        if phase == Phase::Spaces {
            match ch {
                None => break,
                Some(c) if c.is_whitespace() => continue,
                Some(_) => phase = Phase::Word,
            }
        }
        let Some(ch) = ch else {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                match it.next() {
                    None => continue,
                    Some(n) => {
                        word.push(ch);
                        word.push(n);
                        continue;
                    }
                }
            }
            word.push(ch);
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            match it.next() {
                None => {
                    phase = Phase::Word;
                    continue;
                }
                Some(n) => {
                    word.push(ch);
                    word.push(n);
                    continue;
                }
            }
        }
        word.push(ch);
    }
    words
}

/// Outcome of trying to read an instruction's arguments as a JSON array.
pub(crate) enum Json {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Valid JSON array, but not all strings: an error, never a fallback.
    NotStrings,
    /// Not a JSON array: use the shell/whitespace form.
    No,
}

/// Parse `rest` as a JSON array of strings, as BuildKit's `parseJSON`.
pub(crate) fn parse_json(rest: &str) -> Json {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Json::No;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => Json::No,
        Ok(v) => {
            let mut out = Vec::with_capacity(v.len());
            for x in v {
                match x {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Strings(out)
        }
    }
}

/// Split on runs of spaces/tabs (BuildKit's `parseStringsWhitespaceDelimited`).
pub(crate) fn split_ws(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.is_empty() {
        return Vec::new();
    }
    t.split([' ', '\t', '\x0b', '\x0c', '\r']).filter(|s| !s.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let (f, at) = extract_flags("--from=a --chown=\"x y\" src dst", 0);
        assert_eq!(f.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(), ["--from=a", "--chown=x y"]);
        assert_eq!(at, 23);
        let (f, at) = extract_flags("-- --x", 0);
        assert!(f.is_empty());
        assert_eq!(at, 2);
    }

    #[test]
    fn words() {
        assert_eq!(parse_words("a=\"b c\" d=e\\ f", '\\'), ["a=\"b c\"", "d=e\\ f"]);
    }
}
