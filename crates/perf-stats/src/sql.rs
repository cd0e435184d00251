//! A small SQL lexer for SQLite and PostgreSQL text, enough to fingerprint statements and to read
//! which columns a query filters on. It never fails: text it does not understand becomes
//! single-character punctuation, which still fingerprints deterministically.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A keyword or an unquoted identifier.
    Word,
    /// A `"quoted"` or `` `quoted` `` identifier; the text keeps its quotes.
    QuotedIdent,
    /// A string literal (`'..'`, `E'..'`, `X'..'`, `$$..$$`).
    String,
    /// A numeric literal, a leading unary minus folded in.
    Number,
    /// A bind parameter: `?`, `?3`, `$1`, `:name`, `@name`, `$name`.
    Placeholder,
    /// `( ) , ; . [ ]`
    Punct,
    /// An operator such as `=`, `<=`, `||`, `::`.
    Operator,
}

/// One token: its kind and its text in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: TokenKind,
    pub(crate) text: &'a str,
}

impl Token<'_> {
    /// Whether this token is the punctuation or operator `s`.
    pub(crate) fn is(&self, s: &str) -> bool {
        matches!(self.kind, TokenKind::Punct | TokenKind::Operator) && self.text == s
    }

    /// Whether this token is the (case-insensitive) word `keyword`.
    pub(crate) fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    /// Whether this is a literal or a bind parameter: a value that varies between executions.
    pub(crate) fn is_value(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::String | TokenKind::Number | TokenKind::Placeholder
        )
    }

    /// The identifier this token names, without quotes (`"a""b"` → `a"b`), for words and
    /// quoted identifiers.
    pub(crate) fn ident(&self) -> Option<String> {
        match self.kind {
            TokenKind::Word => Some(self.text.to_ascii_lowercase()),
            TokenKind::QuotedIdent => Some(unquote(self.text)),
            _ => None,
        }
    }
}

/// Strips the quotes of a quoted identifier and undoes doubled quotes.
pub(crate) fn unquote(text: &str) -> String {
    let Some(quote) = text.chars().next() else {
        return String::new();
    };
    let inner = text
        .strip_prefix(quote)
        .map(|rest| rest.strip_suffix(quote).unwrap_or(rest))
        .unwrap_or(text);
    let doubled = format!("{quote}{quote}");
    inner.replace(&doubled, &quote.to_string())
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Splits `sql` into tokens, dropping whitespace and comments.
pub(crate) fn tokenize<'a>(sql: &'a str) -> Vec<Token<'a>> {
    let bytes = sql.as_bytes();
    let mut tokens: Vec<Token<'a>> = Vec::with_capacity(sql.len() / 4);
    let mut i = 0;
    // Slicing is always at ASCII bytes or the end, so every slice is on a char boundary.
    let push = |tokens: &mut Vec<Token<'a>>, kind, start: usize, end: usize| {
        if let Some(text) = sql.get(start..end) {
            tokens.push(Token { kind, text });
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            _ if b.is_ascii_whitespace() => i += 1,
            b'-' if next == Some(b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if next == Some(b'*') => i = skip_block_comment(bytes, i),
            b'\'' => {
                let end = skip_quoted(bytes, i, b'\'', false);
                push(&mut tokens, TokenKind::String, i, end);
                i = end;
            }
            b'"' | b'`' => {
                let end = skip_quoted(bytes, i, b, false);
                push(&mut tokens, TokenKind::QuotedIdent, i, end);
                i = end;
            }
            b'0'..=b'9' => {
                let end = skip_number(bytes, i);
                push(&mut tokens, TokenKind::Number, i, end);
                i = end;
            }
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let end = skip_number(bytes, i);
                push(&mut tokens, TokenKind::Number, i, end);
                i = end;
            }
            b'?' => {
                let mut end = i + 1;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                push(&mut tokens, TokenKind::Placeholder, i, end);
                i = end;
            }
            b'$' => {
                if next.is_some_and(|n| n.is_ascii_digit()) {
                    let mut end = i + 1;
                    while end < bytes.len() && bytes[end].is_ascii_digit() {
                        end += 1;
                    }
                    push(&mut tokens, TokenKind::Placeholder, i, end);
                    i = end;
                } else if let Some(end) = skip_dollar_quoted(bytes, i) {
                    push(&mut tokens, TokenKind::String, i, end);
                    i = end;
                } else if next.is_some_and(is_word_start) {
                    let end = skip_word(bytes, i + 1);
                    push(&mut tokens, TokenKind::Placeholder, i, end);
                    i = end;
                } else {
                    push(&mut tokens, TokenKind::Operator, i, i + 1);
                    i += 1;
                }
            }
            b':' if next == Some(b':') => {
                push(&mut tokens, TokenKind::Operator, i, i + 2);
                i += 2;
            }
            b':' | b'@' if next.is_some_and(is_word_start) => {
                let end = skip_word(bytes, i + 1);
                push(&mut tokens, TokenKind::Placeholder, i, end);
                i = end;
            }
            _ if is_word_start(b) => {
                let end = skip_word(bytes, i);
                // A one-letter prefix glued to a quote makes a string: E'..', X'..', B'..', N'..'.
                if end == i + 1
                    && bytes.get(end) == Some(&b'\'')
                    && matches!(b.to_ascii_lowercase(), b'e' | b'x' | b'b' | b'n')
                {
                    let backslash = b.eq_ignore_ascii_case(&b'e');
                    let close = skip_quoted(bytes, end, b'\'', backslash);
                    push(&mut tokens, TokenKind::String, i, close);
                    i = close;
                } else {
                    push(&mut tokens, TokenKind::Word, i, end);
                    i = end;
                }
            }
            b'(' | b')' | b',' | b';' | b'.' | b'[' | b']' => {
                push(&mut tokens, TokenKind::Punct, i, i + 1);
                i += 1;
            }
            _ => {
                let len = operator_len(bytes, i);
                push(&mut tokens, TokenKind::Operator, i, i + len);
                i += len;
            }
        }
        fold_unary_minus(&mut tokens);
    }
    tokens
}

/// Folds `-` `1` into the number `-1` when the minus cannot be binary (it follows an operator,
/// an opening parenthesis, a comma, a keyword or nothing), so `a = -1` and `a = 1` fingerprint
/// alike.
fn fold_unary_minus(tokens: &mut Vec<Token<'_>>) {
    let n = tokens.len();
    if n < 2 || tokens[n - 1].kind != TokenKind::Number || !tokens[n - 2].is("-") {
        return;
    }
    let unary = match tokens.get(n.wrapping_sub(3)) {
        None => true,
        Some(prev) => match prev.kind {
            TokenKind::Operator => true,
            TokenKind::Punct => prev.text != ")" && prev.text != "]",
            TokenKind::Word => is_keyword(prev.text).is_some(),
            _ => false,
        },
    };
    if unary {
        let number = tokens[n - 1];
        tokens.truncate(n - 2);
        tokens.push(number);
    }
}

fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    // PostgreSQL nests block comments; SQLite does not, but nested ones never appear there.
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The end (exclusive) of a quoted run starting at `start`, where a doubled quote is an escaped
/// one (and, for E'' strings, a backslash escapes the next byte).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// `$tag$ ... $tag$` (PostgreSQL dollar quoting), or `None` when `$` does not open one.
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        if i == start + 1 && bytes[i].is_ascii_digit() {
            return None;
        }
        i += 1;
    }
    if bytes.get(i) != Some(&b'$') {
        return None;
    }
    let tag = &bytes[start..=i];
    let body = i + 1;
    let end = bytes[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map(|p| body + p + tag.len())
        .unwrap_or(bytes.len());
    Some(end)
}

fn skip_word(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && is_word_byte(bytes[i]) {
        i += 1;
    }
    i
}

fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(|b| b.is_ascii_digit()) {
            i = j;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

fn operator_len(bytes: &[u8], i: usize) -> usize {
    const LONG: [&[u8]; 13] = [
        b"->>", b"<=", b">=", b"<>", b"!=", b"==", b"||", b"->", b"@>", b"<@", b"&&", b"<<", b">>",
    ];
    LONG.iter()
        .find(|op| bytes[i..].starts_with(op))
        .map_or(1, |op| op.len())
}

/// How a keyword is written in a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    /// A clause keyword: upper case, a space before a following `(`.
    Clause,
    /// A function name: upper case, glued to its `(`.
    Function,
}

/// Whether `word` is a keyword the fingerprint writes in upper case.
pub(crate) fn is_keyword(word: &str) -> Option<Keyword> {
    const CLAUSE: &[&str] = &[
        "all",
        "and",
        "any",
        "as",
        "asc",
        "begin",
        "between",
        "by",
        "case",
        "commit",
        "conflict",
        "create",
        "cross",
        "current_date",
        "current_timestamp",
        "default",
        "delete",
        "desc",
        "distinct",
        "do",
        "drop",
        "else",
        "end",
        "escape",
        "except",
        "exists",
        "explain",
        "false",
        "fetch",
        "filter",
        "first",
        "for",
        "from",
        "full",
        "group",
        "having",
        "ignore",
        "ilike",
        "in",
        "index",
        "inner",
        "insert",
        "intersect",
        "into",
        "is",
        "join",
        "last",
        "left",
        "like",
        "limit",
        "lock",
        "materialized",
        "not",
        "nothing",
        "null",
        "nulls",
        "offset",
        "on",
        "or",
        "order",
        "outer",
        "over",
        "partition",
        "plan",
        "pragma",
        "query",
        "recursive",
        "release",
        "replace",
        "returning",
        "right",
        "rollback",
        "rows",
        "savepoint",
        "select",
        "set",
        "share",
        "skip",
        "table",
        "then",
        "true",
        "union",
        "update",
        "using",
        "values",
        "when",
        "where",
        "window",
        "with",
    ];
    const FUNCTION: &[&str] = &[
        "abs",
        "avg",
        "cast",
        "coalesce",
        "count",
        "date",
        "extract",
        "greatest",
        "ifnull",
        "least",
        "length",
        "lower",
        "max",
        "min",
        "now",
        "nullif",
        "round",
        "substr",
        "substring",
        "sum",
        "upper",
    ];
    if word.len() > 17 || !word.is_ascii() {
        return None;
    }
    let mut buf = [0u8; 17];
    let lower = &mut buf[..word.len()];
    lower.copy_from_slice(word.as_bytes());
    lower.make_ascii_lowercase();
    let lower = std::str::from_utf8(lower).ok()?;
    if CLAUSE.binary_search(&lower).is_ok() {
        Some(Keyword::Clause)
    } else if FUNCTION.binary_search(&lower).is_ok() {
        Some(Keyword::Function)
    } else {
        None
    }
}

/// Index of the `)` matching the `(` at `open`, or `None` when it is never closed.
pub(crate) fn matching_paren(tokens: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        if token.is("(") {
            depth += 1;
        } else if token.is(")") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, &str)> {
        tokenize(sql)
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn keyword_lists_are_sorted_for_binary_search() {
        // is_keyword relies on sorted lists; a word added out of order would silently vanish.
        for word in ["select", "where", "values", "with", "abs", "upper", "count"] {
            assert!(is_keyword(word).is_some(), "{word}");
        }
        assert_eq!(is_keyword("bookings"), None);
    }

    #[test]
    fn comments_and_whitespace_disappear() {
        assert_eq!(
            kinds("SELECT /* a /* nested */ comment */ 1 -- tail\n FROM t"),
            vec![
                (TokenKind::Word, "SELECT"),
                (TokenKind::Number, "1"),
                (TokenKind::Word, "FROM"),
                (TokenKind::Word, "t"),
            ]
        );
    }

    #[test]
    fn literals_placeholders_and_casts() {
        assert_eq!(
            kinds(
                "a = 'it''s' AND b = E'x\\'y' AND c = $1::date AND d = ?2 AND e = :name AND f = $$x$$ AND g = -1.5e3"
            ),
            vec![
                (TokenKind::Word, "a"),
                (TokenKind::Operator, "="),
                (TokenKind::String, "'it''s'"),
                (TokenKind::Word, "AND"),
                (TokenKind::Word, "b"),
                (TokenKind::Operator, "="),
                (TokenKind::String, "E'x\\'y'"),
                (TokenKind::Word, "AND"),
                (TokenKind::Word, "c"),
                (TokenKind::Operator, "="),
                (TokenKind::Placeholder, "$1"),
                (TokenKind::Operator, "::"),
                (TokenKind::Word, "date"),
                (TokenKind::Word, "AND"),
                (TokenKind::Word, "d"),
                (TokenKind::Operator, "="),
                (TokenKind::Placeholder, "?2"),
                (TokenKind::Word, "AND"),
                (TokenKind::Word, "e"),
                (TokenKind::Operator, "="),
                (TokenKind::Placeholder, ":name"),
                (TokenKind::Word, "AND"),
                (TokenKind::Word, "f"),
                (TokenKind::Operator, "="),
                (TokenKind::String, "$$x$$"),
                (TokenKind::Word, "AND"),
                (TokenKind::Word, "g"),
                (TokenKind::Operator, "="),
                (TokenKind::Number, "1.5e3"),
            ]
        );
    }

    #[test]
    fn binary_minus_stays_an_operator() {
        assert_eq!(
            kinds("a - 1"),
            vec![
                (TokenKind::Word, "a"),
                (TokenKind::Operator, "-"),
                (TokenKind::Number, "1"),
            ]
        );
    }

    #[test]
    fn quoted_identifiers_unquote() {
        let tokens = tokenize(r#""book""ings" `x`"#);
        assert_eq!(tokens[0].ident().as_deref(), Some("book\"ings"));
        assert_eq!(tokens[1].ident().as_deref(), Some("x"));
    }

    #[test]
    fn unterminated_input_never_panics() {
        for sql in [
            "'abc",
            "\"abc",
            "/* abc",
            "$tag$ abc",
            "E'",
            "x'",
            "0x",
            "1e",
            "$",
            ":",
        ] {
            let _ = tokenize(sql);
        }
    }
}
