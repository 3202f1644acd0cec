//! The rank language: parsing only. Semantic checks (definitions, cycles)
//! live in `table.rs`, because they depend on what earlier loads defined.
//!
//! Grammar (see docs/ranks.md):
//!
//! ```text
//! file      := statement*
//! statement := chain ';' | 'nestable' ':' list ';'
//! chain     := list ('<' list)+
//! list      := name (',' name)*
//! name      := [A-Za-z_][A-Za-z0-9_]*
//! comment   := '#' to end of line
//! ```
//!
//! The parser never panics on any input and allocates in proportion to the
//! input only.

use std::fmt;

/// A position in a rank source: file name, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `a, b < c < d;`: each list after the first is defined there.
    Chain(Vec<Vec<Name>>),
    /// `nestable: a, b;`
    Nestable(Vec<Name>),
}

/// A syntax error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Name(String),
    Less,
    Comma,
    Semi,
    Colon,
}

struct Lexer<'a> {
    src: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn bump(&mut self) {
        if self.src[self.i] == b'\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        self.i += 1;
    }

    fn next(&mut self) -> Result<Option<(Tok, Pos)>, SyntaxError> {
        loop {
            let Some(&c) = self.src.get(self.i) else {
                return Ok(None);
            };
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.bump(),
                b'#' => {
                    while self.i < self.src.len() && self.src[self.i] != b'\n' {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let pos = self.pos();
        let c = self.src[self.i];
        let tok = match c {
            b'<' => Tok::Less,
            b',' => Tok::Comma,
            b';' => Tok::Semi,
            b':' => Tok::Colon,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.i < self.src.len()
                    && (self.src[self.i].is_ascii_alphanumeric() || self.src[self.i] == b'_')
                {
                    self.bump();
                }
                // The slice is ASCII by construction.
                let text = String::from_utf8_lossy(&self.src[start..self.i]).into_owned();
                return Ok(Some((Tok::Name(text), pos)));
            }
            _ => {
                let shown = std::str::from_utf8(&self.src[self.i..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map(|ch| format!("'{ch}'"))
                    .unwrap_or_else(|| format!("byte 0x{c:02x}"));
                return Err(SyntaxError {
                    pos,
                    message: format!(
                        "unexpected {shown}: expected a rank name, ',', '<', ';' or a '#' comment"
                    ),
                });
            }
        };
        self.bump();
        Ok(Some((tok, pos)))
    }
}

fn describe(t: &Option<(Tok, Pos)>) -> String {
    match t {
        None => "end of input".into(),
        Some((Tok::Name(n), _)) => format!("'{n}'"),
        Some((Tok::Less, _)) => "'<'".into(),
        Some((Tok::Comma, _)) => "','".into(),
        Some((Tok::Semi, _)) => "';'".into(),
        Some((Tok::Colon, _)) => "':'".into(),
    }
}

/// Parse rank source text into statements.
pub fn parse(src: &str) -> Result<Vec<Statement>, SyntaxError> {
    let mut lx = Lexer {
        src: src.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
    };
    // Tokenise fully first: one token of lookahead is needed for `nestable:`.
    let mut toks = Vec::new();
    while let Some(t) = lx.next()? {
        toks.push(t);
    }
    let end = lx.pos();
    let mut stmts = Vec::new();
    let mut i = 0;
    let at = |i: usize| toks.get(i).cloned();
    let pos_of = |i: usize| toks.get(i).map(|t| t.1.clone()).unwrap_or(end.clone());
    while i < toks.len() {
        // `nestable: a, b;`
        if let (Some((Tok::Name(n), _)), Some((Tok::Colon, _))) = (at(i), at(i + 1)) {
            if n != "nestable" {
                return Err(SyntaxError {
                    pos: pos_of(i),
                    message: format!(
                        "unknown directive '{n}:' (the only directive is 'nestable:')"
                    ),
                });
            }
            i += 2;
            let (list, ni) = parse_list(&toks, i, &end)?;
            i = ni;
            match at(i) {
                Some((Tok::Semi, _)) => i += 1,
                t => {
                    return Err(SyntaxError {
                        pos: pos_of(i),
                        message: format!(
                            "expected ',' or ';' after a name, found {}",
                            describe(&t)
                        ),
                    });
                }
            }
            stmts.push(Statement::Nestable(list));
            continue;
        }
        let mut lists = Vec::new();
        let (first, ni) = parse_list(&toks, i, &end)?;
        lists.push(first);
        i = ni;
        loop {
            match at(i) {
                Some((Tok::Less, _)) => {
                    let (l, ni) = parse_list(&toks, i + 1, &end)?;
                    lists.push(l);
                    i = ni;
                }
                Some((Tok::Semi, _)) => {
                    i += 1;
                    break;
                }
                t => {
                    return Err(SyntaxError {
                        pos: pos_of(i),
                        message: format!(
                            "expected ',', '<' or ';' after a name, found {}",
                            describe(&t)
                        ),
                    });
                }
            }
        }
        if lists.len() < 2 {
            return Err(SyntaxError {
                pos: lists[0][0].pos.clone(),
                message: format!(
                    "'{}' is not ordered: a statement needs at least one '<' (write 'NONE < {};' for a rank that must be taken first)",
                    lists[0][0].text, lists[0][0].text
                ),
            });
        }
        stmts.push(Statement::Chain(lists));
    }
    Ok(stmts)
}

fn parse_list(
    toks: &[(Tok, Pos)],
    mut i: usize,
    end: &Pos,
) -> Result<(Vec<Name>, usize), SyntaxError> {
    let mut out = Vec::new();
    loop {
        match toks.get(i) {
            Some((Tok::Name(n), p)) => {
                out.push(Name {
                    text: n.clone(),
                    pos: p.clone(),
                });
                i += 1;
            }
            other => {
                let t = other.cloned();
                return Err(SyntaxError {
                    pos: other.map(|t| t.1.clone()).unwrap_or(end.clone()),
                    message: format!("expected a rank name, found {}", describe(&t)),
                });
            }
        }
        match toks.get(i) {
            Some((Tok::Comma, _)) => i += 1,
            _ => return Ok((out, i)),
        }
    }
}

/// True for names written entirely in capitals (digits and '_' allowed):
/// pseudo-ranks that structure the order but that no lock may carry.
pub fn is_pseudo(name: &str) -> bool {
    name.bytes().any(|b| b.is_ascii_uppercase()) && !name.bytes().any(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        let e = parse(src).unwrap_err();
        format!("{}: {}", e.pos, e.message)
    }

    #[test]
    fn chains_lists_and_comments() {
        let s = parse("# hi\nNONE < a;\na, b < c < d, e; # tail\nnestable: c;").unwrap();
        assert_eq!(s.len(), 3);
        match &s[1] {
            Statement::Chain(l) => {
                assert_eq!(l.len(), 3);
                assert_eq!(l[0][1].text, "b");
                assert_eq!(l[0][1].pos, Pos { line: 3, col: 4 });
                assert_eq!(l[2][1].text, "e");
            }
            _ => panic!("expected a chain"),
        }
        assert!(matches!(&s[2], Statement::Nestable(l) if l[0].text == "c"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        assert_eq!(
            err("a < b"),
            "1:6: expected ',', '<' or ';' after a name, found end of input"
        );
        assert_eq!(err("a < ;"), "1:5: expected a rank name, found ';'");
        assert!(err("a;").starts_with("1:1: 'a' is not ordered"));
        assert!(err("\n  a < $b;").starts_with("2:7: unexpected '$'"));
        assert_eq!(err("a <, b;"), "1:4: expected a rank name, found ','");
        assert!(err("order: a;").starts_with("1:1: unknown directive 'order:'"));
        assert_eq!(
            err("nestable: a b;"),
            "1:13: expected ',' or ';' after a name, found 'b'"
        );
    }

    #[test]
    fn pseudo_names() {
        assert!(is_pseudo("SCHED"));
        assert!(is_pseudo("TRACE_2"));
        assert!(!is_pseudo("sched"));
        assert!(!is_pseudo("Db"));
        assert!(!is_pseudo("_"));
    }
}
