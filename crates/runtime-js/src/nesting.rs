//! A bound on how deeply a JavaScript source makes Boa recurse, checked
//! before Boa sees the source: Boa 0.22's parser (and its compiler, and
//! the drop of the syntax tree) recurse on the native stack without a
//! limit, so a deeply nested source would overflow the stack and abort the
//! process. Every source Boa parses for an extension goes through
//! [`check`]: the entry script at load, `eval` and `Function` bodies (the
//! `ensure_can_compile_strings` host hook), `JSON.parse` text.
//!
//! The scanner is a tokenizer, not a parser: strings, comments, template
//! literals and regular expressions are skipped, and what the parser and
//! the compiler will recurse through is added up along the current path,
//! in thousandths of a *unit* (about 20 KiB of native stack in Boa,
//! measured on a 16 MiB thread, morph-core's execution threads):
//!
//! - an open bracket (`(`, `[`, `{`, `${`): [`BRACKET`] units (Boa spends
//!   about 170 KiB of stack per bracket level);
//! - within a bracket, each right-recursive construct pending since the
//!   last `;` or `,` (prefix operators, `?`, `=>`, assignments, `**`, `if`,
//!   `else`, loops, labels): one unit;
//! - each left-associative operator, member access, call or index since
//!   the last `;` (the syntax tree grows as deep): [`LINK`];
//! - each comma of a sequence expression (not of an array or object
//!   literal): [`COMMA`].
//!
//! The sum may not pass [`BUDGET`] (about 7.7 MiB of stack, half a
//! thread's): 46 brackets, or 375 prefix operators, or some 7,000 chained
//! operators. Real code is far inside (the `marked` bundle nests 10
//! brackets deep); a source beyond it is refused, naming the line.

/// Cost of one open bracket, in units.
pub const BRACKET: u32 = 8;

/// Most cost on any path, in thousandths of a unit (384 units).
pub const BUDGET: u32 = 384_000;

/// Cost of one left-associative link, in thousandths of a unit.
pub const LINK: u32 = 50;

/// Cost of one sequence comma, in thousandths of a unit.
pub const COMMA: u32 = 100;

/// Thousandths per unit.
const UNIT: u32 = 1000;

/// Why a source is refused: what is too deep, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line of the token that crossed the limit.
    pub line: usize,
    /// What crossed it.
    pub what: &'static str,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} (the engine's parser recurses on the native stack)",
            self.line, self.what
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Paren,
    Bracket,
    Object,
    Block,
    /// `${ ... }` inside a template literal.
    Template,
}

struct Frame {
    kind: Kind,
    chain: u32,
    links: u32,
    commas: u32,
    /// `?` not yet matched by `:`.
    ternaries: u32,
}

impl Frame {
    fn new(kind: Kind) -> Frame {
        Frame {
            kind,
            chain: 0,
            links: 0,
            commas: 0,
            ternaries: 0,
        }
    }
}

/// What the previous significant token was, for `/` (regex or division),
/// `{` (object or block) and prefix/infix `+`/`-`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Start, an operator, an opening bracket, `,`, `;`, a keyword that
    /// expects an expression: an operand comes next.
    ExpectOperand,
    /// An identifier, number, string, `)`, `]`, `}`, postfix: an operator
    /// comes next.
    Operand,
}

/// Keywords after which an expression starts (so `/` is a regex).
const EXPRESSION_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

/// Keywords that nest what follows as a unary prefix.
const PREFIX_KEYWORDS: &[&str] = &["typeof", "void", "delete", "await", "new", "yield"];

/// Keywords that nest a statement.
const STATEMENT_KEYWORDS: &[&str] = &["if", "else", "while", "for", "do", "with"];

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
    frames: Vec<Frame>,
    /// Sum over the frames of their cost, in thousandths of a unit.
    nesting: u32,
    prev: Prev,
    /// The word just read, if the last token was one.
    last_word: Option<std::ops::Range<usize>>,
    /// A statement ended (`;` or a block's `}`): its pending constructs
    /// are complete unless an `else` follows (which nests in the `if`).
    statement_ended: bool,
    /// The last token was `=>` (a `{` after it is a block).
    after_arrow: bool,
}

impl<'a> Scanner<'a> {
    fn fail(&self, what: &'static str) -> TooDeep {
        TooDeep {
            line: self.line,
            what,
        }
    }

    fn top(&mut self) -> &mut Frame {
        // The bottom frame (the script's top level) is never popped.
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn add(&mut self, cost: u32, what: &'static str) -> Result<(), TooDeep> {
        self.nesting += cost;
        if self.nesting > BUDGET {
            return Err(self.fail(what));
        }
        Ok(())
    }

    fn chain(&mut self, units: u32) -> Result<(), TooDeep> {
        self.top().chain += units;
        self.add(units * UNIT, "nested too deeply")
    }

    fn link(&mut self) -> Result<(), TooDeep> {
        self.top().links += 1;
        self.add(LINK, "an expression chained too long")
    }

    fn comma(&mut self) -> Result<(), TooDeep> {
        self.top().commas += 1;
        self.add(COMMA, "a sequence of too many comma expressions")
    }

    /// `,`: the pending right-recursive constructs are complete.
    fn end_chain(&mut self) {
        let top = self.top();
        let chain = std::mem::take(&mut top.chain);
        top.ternaries = 0;
        self.nesting -= chain * UNIT;
    }

    /// The end of a statement: its links and commas are complete too.
    fn end_statement(&mut self) {
        self.end_chain();
        let top = self.top();
        let cost = std::mem::take(&mut top.links) * LINK + std::mem::take(&mut top.commas) * COMMA;
        self.nesting -= cost;
    }

    fn open(&mut self, kind: Kind) -> Result<(), TooDeep> {
        self.frames.push(Frame::new(kind));
        self.prev = Prev::ExpectOperand;
        self.add(BRACKET * UNIT, "brackets nested too deeply")
    }

    /// A closing bracket; `Some(Template)` when it ends a `${ }`.
    fn close(&mut self) -> Option<Kind> {
        if self.frames.len() <= 1 {
            // Unbalanced: Boa reports the syntax error.
            self.prev = Prev::Operand;
            return None;
        }
        let frame = self.frames.pop()?;
        self.nesting -=
            BRACKET * UNIT + frame.chain * UNIT + frame.links * LINK + frame.commas * COMMA;
        self.prev = Prev::Operand;
        Some(frame.kind)
    }

    fn peek(&self, n: usize) -> u8 {
        self.bytes.get(self.at + n).copied().unwrap_or(0)
    }

    fn skip_string(&mut self, quote: u8) {
        self.at += 1;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'\\' => self.at += 2,
                b'\n' => {
                    // Unterminated: Boa reports it.
                    self.line += 1;
                    self.at += 1;
                    return;
                }
                c if c == quote => {
                    self.at += 1;
                    return;
                }
                _ => self.at += 1,
            }
        }
    }

    /// Template text up to the closing backtick (then `false`) or a `${`
    /// (then `true`, with the `${` consumed).
    fn skip_template(&mut self) -> bool {
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'\\' => self.at += 2,
                b'`' => {
                    self.at += 1;
                    return false;
                }
                b'$' if self.peek(1) == b'{' => {
                    self.at += 2;
                    return true;
                }
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                }
                _ => self.at += 1,
            }
        }
        false
    }

    fn skip_regex(&mut self) {
        self.at += 1;
        let mut class = false;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'\\' => self.at += 2,
                b'[' => {
                    class = true;
                    self.at += 1;
                }
                b']' => {
                    class = false;
                    self.at += 1;
                }
                b'/' if !class => {
                    self.at += 1;
                    break;
                }
                b'\n' => return,
                _ => self.at += 1,
            }
        }
        while self.at < self.bytes.len() && is_ident(self.bytes[self.at]) {
            self.at += 1;
        }
    }

    fn template(&mut self) -> Result<(), TooDeep> {
        if self.skip_template() {
            self.open(Kind::Template)
        } else {
            self.prev = Prev::Operand;
            Ok(())
        }
    }

    /// Applies a pending end of statement before the token at `self.at`
    /// (unless it is `else`).
    fn settle_statement(&mut self) {
        if !std::mem::take(&mut self.statement_ended) {
            return;
        }
        let rest = &self.bytes[self.at..];
        let is_else = rest.starts_with(b"else") && !rest.get(4).copied().is_some_and(is_ident);
        if !is_else {
            self.end_statement();
        }
    }

    fn run(&mut self) -> Result<(), TooDeep> {
        while self.at < self.bytes.len() {
            let c = self.bytes[self.at];
            let blank = matches!(c, b'\n' | b' ' | b'\t' | b'\r')
                || (c == b'/' && matches!(self.peek(1), b'/' | b'*'));
            if !blank {
                self.settle_statement();
            }
            let after_arrow = std::mem::take(&mut self.after_arrow);
            match c {
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                }
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'/' if self.peek(1) == b'/' => {
                    while self.at < self.bytes.len() && self.bytes[self.at] != b'\n' {
                        self.at += 1;
                    }
                }
                b'/' if self.peek(1) == b'*' => {
                    self.at += 2;
                    while self.at < self.bytes.len()
                        && !(self.bytes[self.at] == b'*' && self.peek(1) == b'/')
                    {
                        if self.bytes[self.at] == b'\n' {
                            self.line += 1;
                        }
                        self.at += 1;
                    }
                    self.at += 2;
                }
                b'\'' | b'"' => {
                    self.skip_string(c);
                    self.prev = Prev::Operand;
                }
                b'`' => {
                    self.at += 1;
                    self.template()?;
                }
                b'/' if self.prev == Prev::ExpectOperand => {
                    self.skip_regex();
                    self.prev = Prev::Operand;
                }
                b'(' | b'[' => {
                    if self.prev == Prev::Operand {
                        // A call or an index: one more link of the chain.
                        self.link()?;
                    }
                    self.at += 1;
                    self.open(if c == b'(' {
                        Kind::Paren
                    } else {
                        Kind::Bracket
                    })?;
                }
                b'{' => {
                    let kind = if self.prev == Prev::ExpectOperand
                        && !after_arrow
                        && !self.after_statement_start()
                    {
                        Kind::Object
                    } else {
                        Kind::Block
                    };
                    self.at += 1;
                    self.open(kind)?;
                }
                b')' | b']' | b'}' => {
                    self.at += 1;
                    match self.close() {
                        Some(Kind::Template) => self.template()?,
                        Some(Kind::Block) => self.statement_ended = true,
                        _ => {}
                    }
                }
                b';' => {
                    self.at += 1;
                    self.statement_ended = true;
                    self.prev = Prev::ExpectOperand;
                }
                b',' => {
                    self.at += 1;
                    self.end_chain();
                    if !matches!(self.top().kind, Kind::Bracket | Kind::Object) {
                        self.comma()?;
                    }
                    self.prev = Prev::ExpectOperand;
                }
                c if is_ident_start(c) => {
                    let start = self.at;
                    while self.at < self.bytes.len() && is_ident(self.bytes[self.at]) {
                        self.at += 1;
                    }
                    let word = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("");
                    let after_dot = start > 0 && self.bytes[start - 1] == b'.';
                    if !after_dot
                        && (PREFIX_KEYWORDS.contains(&word) || STATEMENT_KEYWORDS.contains(&word))
                    {
                        self.chain(1)?;
                    } else if !after_dot && matches!(word, "instanceof" | "in") {
                        self.link()?;
                    }
                    self.prev = if !after_dot && EXPRESSION_KEYWORDS.contains(&word) {
                        Prev::ExpectOperand
                    } else {
                        Prev::Operand
                    };
                    self.last_word = Some(start..self.at);
                    continue;
                }
                c if c.is_ascii_digit() => {
                    while self.at < self.bytes.len()
                        && (is_ident(self.bytes[self.at]) || self.bytes[self.at] == b'.')
                    {
                        self.at += 1;
                    }
                    self.prev = Prev::Operand;
                }
                _ => self.punctuator()?,
            }
            self.last_word = None;
        }
        Ok(())
    }

    /// Whether the last token was a word after which `{` opens a block
    /// even though an operand was expected (`else {`, `do {`, `=> {`
    /// is handled by the arrow).
    fn after_statement_start(&self) -> bool {
        let Some(range) = self.last_word.clone() else {
            return self.top_is_statement_level();
        };
        matches!(&self.bytes[range], b"else" | b"do" | b"try" | b"finally")
    }

    /// After `;`, `{`, `}` or at the start, a `{` is a block.
    fn top_is_statement_level(&self) -> bool {
        let mut i = self.at;
        while i > 0 {
            i -= 1;
            match self.bytes[i] {
                b' ' | b'\t' | b'\r' | b'\n' => continue,
                b';' | b'{' | b'}' | b')' => return true,
                _ => return false,
            }
        }
        true
    }

    fn punctuator(&mut self) -> Result<(), TooDeep> {
        let rest = &self.bytes[self.at..];
        // Longest first.
        const OPERATORS: &[&[u8]] = &[
            b">>>=", b"...", b"===", b"!==", b"**=", b"<<=", b">>=", b">>>", b"&&=", b"||=",
            b"??=", b"=>", b"==", b"!=", b"<=", b">=", b"&&", b"||", b"??", b"?.", b"++", b"--",
            b"+=", b"-=", b"*=", b"/=", b"%=", b"&=", b"|=", b"^=", b"**", b"<<", b">>",
        ];
        let op: &[u8] = OPERATORS
            .iter()
            .find(|op| rest.starts_with(op))
            .copied()
            .unwrap_or(&rest[..1]);
        self.at += op.len();
        let expecting = self.prev == Prev::ExpectOperand;
        match op {
            b"++" | b"--" => {
                if expecting {
                    self.chain(1)?;
                }
                // Postfix leaves an operand; prefix still expects one.
                return Ok(());
            }
            b"!" | b"~" | b"..." => {
                self.chain(1)?;
            }
            b"+" | b"-" if expecting => self.chain(1)?,
            b"?" => {
                self.top().ternaries += 1;
                self.chain(1)?;
            }
            b":" => {
                let top = self.top();
                if top.ternaries > 0 {
                    top.ternaries -= 1;
                } else {
                    // A label, a case or an object key.
                    self.chain(1)?;
                }
            }
            b"=>" => {
                self.chain(1)?;
                self.after_arrow = true;
            }
            b"**" => self.chain(1)?,
            b"=" | b"+=" | b"-=" | b"*=" | b"/=" | b"%=" | b"**=" | b"<<=" | b">>=" | b">>>="
            | b"&=" | b"|=" | b"^=" | b"&&=" | b"||=" | b"??=" => self.chain(1)?,
            b"." | b"?." => {
                self.link()?;
                // A member name follows: an operand position for words,
                // and `/` after it is a division.
                self.prev = Prev::ExpectOperand;
                return Ok(());
            }
            b"#" | b"@" | b"\\" => {
                // A private name or a unicode escape: part of a word.
                self.prev = Prev::Operand;
                return Ok(());
            }
            _ => self.link()?,
        }
        self.prev = Prev::ExpectOperand;
        Ok(())
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Refuses `source` if parsing it could make Boa recurse deeper than the
/// limits above. Runs in linear time; syntax errors are left to Boa.
pub fn check(source: &str) -> Result<(), TooDeep> {
    let mut scanner = Scanner {
        bytes: source.as_bytes(),
        at: 0,
        line: 1,
        frames: vec![Frame::new(Kind::Block)],
        nesting: 0,
        prev: Prev::ExpectOperand,
        last_word: None,
        statement_ended: false,
        after_arrow: false,
    };
    scanner.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(open: &str, close: &str, n: usize) -> String {
        format!("var x = {}1{};", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn ordinary_code_passes() {
        for source in [
            "function f(a, b) { return a / b + /x[/]y/g.test('a') ? `t${a}${`n${b}`}` : {a: [1, 2]}; }",
            "if (a) { b(); } else if (c) { d(); } else { e = f => g => h; }",
            "const x = a?.b ?? c ** 2; label: for (;;) { break label; }",
            "let s = 'it''s'; let t = \"a\\\"b\"; /* } ] ) */ // ( [ {",
        ] {
            assert_eq!(check(source), Ok(()), "{source}");
        }
        assert_eq!(check(&deep("[", "]", 40)), Ok(()));
        assert_eq!(check(&format!("x = {}1;", "!".repeat(300))), Ok(()));
        assert_eq!(check(&format!("x = [{}];", "1,".repeat(100_000))), Ok(()));
        assert_eq!(check(&format!("x = 1{};", " + 1".repeat(5_000))), Ok(()));
        // Many statements, blocks and functions one after another.
        assert_eq!(check(&"if (a) { b(); }\n".repeat(5_000)), Ok(()));
        assert_eq!(
            check(&"function f() { return !!x; }\n".repeat(5_000)),
            Ok(())
        );
        assert_eq!(check(&"x = a ? b : c;\n".repeat(5_000)), Ok(()));
        assert_eq!(
            check(&format!("if (a) {{}}{}", " else if (a) {{}}".repeat(150))),
            Ok(())
        );
    }

    #[test]
    fn deep_sources_are_refused() {
        for source in [
            deep("[", "]", 100),
            deep("(", ")", 100),
            deep("{a: ", "}", 100),
            deep("`${", "}`", 100),
            format!("{}{}", "{".repeat(100), "}".repeat(100)),
            format!("x = {}1;", "!".repeat(1000)),
            format!("x = {}1;", "- ".repeat(1000)),
            format!("x = {}1;", "typeof ".repeat(1000)),
            format!("x = {}1;", "a ? 1 : ".repeat(1000)),
            format!("x = {}1;", "a = ".repeat(1000)),
            format!("x = {}1;", "a => ".repeat(1000)),
            format!("x = 1{};", " ** 1".repeat(1000)),
            format!("{}1;", "if (a) ".repeat(1000)),
            format!("if (a) {{}}{}", " else if (a) {{}}".repeat(1000)),
            format!("if (a) x;{}", " else if (a) x;".repeat(1000)),
            format!("x = {}a;", "new ".repeat(1000)),
            format!("x = 1{};", " + 1".repeat(100_000)),
            format!("x = a{};", ".b".repeat(100_000)),
            format!("x = a{};", "()".repeat(100_000)),
            format!("x = (1{});", ", 1".repeat(10_000)),
            format!("{}{}", "function f(){".repeat(100), "}".repeat(100)),
        ] {
            let refused = check(&source);
            assert!(
                refused.is_err(),
                "accepted: {}",
                &source[..60.min(source.len())]
            );
        }
        let e = check(&format!("\n\n{}", deep("[", "]", 100))).unwrap_err();
        assert_eq!(e.line, 3);
    }
}
