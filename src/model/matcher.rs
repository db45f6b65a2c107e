//! Label matchers with Prometheus semantics: regexes are anchored at both
//! ends, and a label that is absent has the value "".

use std::fmt;

use regex::Regex;

use super::labels::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
    BadRegex {
        name: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
}

/// How a regex matcher is evaluated: common shapes skip the regex engine.
#[derive(Debug, Clone)]
enum Pattern {
    /// `.*`: every value without a newline (`.` does not match `\n`), the
    /// empty value included.
    Any,
    /// `.+`: every non-empty value without a newline.
    NonEmpty,
    /// A pattern without metacharacters.
    Literal(String),
    /// `a|b|c` of literals.
    Alternatives(Vec<String>),
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    pattern: Option<Pattern>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

fn is_literal(s: &str) -> bool {
    regex::escape(s) == s
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let pattern = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::Regex | MatchOp::NotRegex => Some(compile(&name, &value)?),
        };
        Ok(Self {
            name,
            op,
            value,
            pattern,
        })
    }

    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            pattern: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (``""`` for an absent label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.pattern_matches(value),
            MatchOp::NotRegex => !self.pattern_matches(value),
        }
    }

    fn pattern_matches(&self, value: &str) -> bool {
        match &self.pattern {
            Some(Pattern::Any) => !value.contains('\n'),
            Some(Pattern::NonEmpty) => !value.is_empty() && !value.contains('\n'),
            Some(Pattern::Literal(l)) => value == l,
            Some(Pattern::Alternatives(alts)) => alts.iter().any(|a| a == value),
            Some(Pattern::Regex(re)) => re.is_match(value),
            None => false,
        }
    }

    /// Whether the matcher accepts a series that lacks the label altogether.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

/// Go's regexp reads a `{` that does not start a repetition (`a{b}`) as a
/// literal; the regex crate refuses it. Escape such braces.
pub fn go_compatible(re: &str) -> std::borrow::Cow<'_, str> {
    if !re.contains('{') {
        return std::borrow::Cow::Borrowed(re);
    }
    let b = re.as_bytes();
    let mut out = String::with_capacity(re.len() + 4);
    let (mut i, mut class) = (0, false);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => {
                let end = (i + 2).min(b.len());
                let end = (end..=b.len())
                    .find(|&e| re.is_char_boundary(e))
                    .unwrap_or(b.len());
                out.push_str(&re[i..end]);
                i = end;
                continue;
            }
            b'[' if !class => class = true,
            b']' if class => class = false,
            b'{' if !class && !is_repetition(&b[i..]) => {
                out.push_str("\\{");
                i += 1;
                continue;
            }
            _ => {}
        }
        let end = (i + 1..=b.len())
            .find(|&e| re.is_char_boundary(e))
            .unwrap_or(b.len());
        out.push_str(&re[i..end]);
        i = end;
    }
    std::borrow::Cow::Owned(out)
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `b`. Reads only as far as the
/// digits go, so that text full of braces is checked in linear time.
fn is_repetition(b: &[u8]) -> bool {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let first = digits(1);
    if first == 0 {
        return false;
    }
    let mut i = 1 + first;
    if b.get(i) == Some(&b',') {
        i += 1 + digits(i + 1);
    }
    b.get(i) == Some(&b'}')
}

fn compile(name: &str, value: &str) -> Result<Pattern, MatcherError> {
    // Compile first so that an invalid pattern is always an error, even one
    // a fast path below would have accepted.
    let re = Regex::new(&format!("^(?:{})$", go_compatible(value))).map_err(|e| {
        MatcherError::BadRegex {
            name: name.to_string(),
            pattern: value.to_string(),
            source: Box::new(e),
        }
    })?;
    Ok(match value {
        ".*" => Pattern::Any,
        ".+" => Pattern::NonEmpty,
        v if is_literal(v) => Pattern::Literal(v.to_string()),
        v if v.split('|').all(|a| !a.is_empty() && is_literal(a)) => {
            Pattern::Alternatives(v.split('|').map(str::to_string).collect())
        }
        _ => Pattern::Regex(re),
    })
}

/// A matcher as PromQL writes it (`name=~"value"`), the value quoted so
/// that Prometheus' parser reads it back.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.op.as_str(),
            go_quote(&self.value)
        )
    }
}

/// Go's `%q` of a string: double quotes, backslash escapes for quotes,
/// backslashes and control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether every matcher accepts the label set.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.value_or_empty(&m.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(op: MatchOp, name: &str, v: &str) -> Matcher {
        Matcher::new(op, name, v).unwrap()
    }

    #[test]
    fn brace_runs_are_rewritten_in_linear_time() {
        // Each `{` once scanned to the end of the text for a `}`: 200,000
        // of them took tens of seconds.
        let text = "{".repeat(200_000);
        let out = go_compatible(&text);
        assert_eq!(out.len(), 400_000);
        let mixed = "a{1{2,{3,4}{x}".repeat(20_000);
        assert!(go_compatible(&mixed).contains("a\\{1\\{2,{3,4}\\{x}"));
    }

    #[test]
    fn go_literal_braces() {
        assert_eq!(go_compatible("a{b}"), "a\\{b}");
        assert_eq!(go_compatible("a{2}"), "a{2}");
        assert_eq!(go_compatible("a{2,}x{1,3}"), "a{2,}x{1,3}");
        assert_eq!(go_compatible("[{]"), "[{]");
        assert_eq!(go_compatible("\\{x"), "\\{x");
        assert!(m(MatchOp::Regex, "a", "x{y}").matches("x{y}"));
    }

    #[test]
    fn regexes_are_anchored() {
        let re = m(MatchOp::Regex, "a", "fo+");
        assert!(re.matches("foo"));
        assert!(!re.matches("xfoo"));
        assert!(!re.matches("foox"));
        let alt = m(MatchOp::Regex, "a", "x|y.*");
        assert!(alt.matches("yes"));
        assert!(!alt.matches("nox"));
        assert!(!m(MatchOp::NotRegex, "a", "fo+").matches("foo"));
    }

    #[test]
    fn empty_matches_absent() {
        let labels = Labels::from_pairs([("b", "1")]).unwrap();
        assert!(matches_all(&[m(MatchOp::Equal, "a", "")], &labels));
        assert!(!matches_all(&[m(MatchOp::Equal, "b", "")], &labels));
        assert!(matches_all(&[m(MatchOp::Regex, "a", ".*")], &labels));
        assert!(!matches_all(&[m(MatchOp::Regex, "a", ".+")], &labels));
        assert!(matches_all(&[m(MatchOp::NotEqual, "a", "x")], &labels));
    }

    #[test]
    fn fast_paths_agree_with_regex() {
        for (pat, yes, no) in [
            (".*", "", "\n"),
            (".+", "x", ""),
            ("abc", "abc", "abcd"),
            ("a|bc|d", "bc", "b"),
            ("a|", "", "b"),
        ] {
            let matcher = m(MatchOp::Regex, "l", pat);
            let re = Regex::new(&format!("^(?:{pat})$")).unwrap();
            assert!(matcher.matches(yes), "{pat} should match {yes:?}");
            assert!(!matcher.matches(no), "{pat} should not match {no:?}");
            assert_eq!(matcher.matches(no), re.is_match(no));
        }
    }

    #[test]
    fn bad_regex_is_an_error() {
        let err = Matcher::new(MatchOp::Regex, "job", "(unclosed").unwrap_err();
        assert!(err.to_string().contains("job"), "{err}");
        assert!(Matcher::new(MatchOp::NotRegex, "job", "[").is_err());
    }
}
