//! The row filter language, compiled to a polars expression.
//!
//! ```text
//! len(output) < 20 and category == "open_qa"
//! not contains(output, "as an AI") or n_turns >= 3
//! output ~ "(?i)^sorry" and `ds2.rate.score` >= 4
//! ```
//! Operators: `and or not`, `== != < <= > >=`, `~` (regex match), `+ - * /`.
//! Functions: `len(x)` (characters), `lower(x)`, `contains(x, "s")`,
//! `startswith(x, "s")`, `endswith(x, "s")`, `is_null(x)`. Names with dots or other
//! characters are written in backticks.

use polars::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    pub message: String,
    /// Character offset into the expression.
    pub at: usize,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

impl std::error::Error for FilterError {}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        message: message.into(),
        at,
    })
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '"' | '\'' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return err(start, "unterminated string"),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(other) => s.push(*other),
                                None => return err(i, "unterminated string"),
                            }
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            '`' => {
                i += 1;
                let mut s = String::new();
                while let Some(ch) = chars.get(i) {
                    if *ch == '`' {
                        break;
                    }
                    s.push(*ch);
                    i += 1;
                }
                if chars.get(i) != Some(&'`') {
                    return err(start, "unterminated `name`");
                }
                i += 1;
                Tok::Ident(s)
            }
            _ if ["==", "!=", "<=", ">="].contains(&two.as_str()) => {
                i += 2;
                Tok::Op(match two.as_str() {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    _ => ">=",
                })
            }
            '<' | '>' | '~' | '+' | '-' | '*' | '/' | '=' => {
                i += 1;
                Tok::Op(match c {
                    '<' => "<",
                    '>' => ">",
                    '~' => "~",
                    '+' => "+",
                    '-' => "-",
                    '*' => "*",
                    '/' => "/",
                    _ => "==",
                })
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < chars.len()
                    && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == 'e')
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) => Tok::Num(n),
                    Err(_) => return err(start, format!("bad number `{text}`")),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "and" | "AND" | "&&" => Tok::Op("and"),
                    "or" | "OR" => Tok::Op("or"),
                    "not" | "NOT" => Tok::Op("not"),
                    _ => Tok::Ident(word),
                }
            }
            '&' if two == "&&" => {
                i += 2;
                Tok::Op("and")
            }
            '|' if two == "||" => {
                i += 2;
                Tok::Op("or")
            }
            '!' => {
                i += 1;
                Tok::Op("not")
            }
            other => return err(start, format!("unexpected character `{other}`")),
        };
        out.push((tok, start));
    }
    Ok(out)
}

/// A parsed filter, ready to run on any frame that has the columns it names.
#[derive(Debug, Clone)]
pub struct Filter {
    pub source: String,
    pub expr: Expr,
    pub columns: Vec<String>,
}

/// Compile `src` against the columns in `schema`.
pub fn compile(src: &str, schema: &Schema) -> Result<Filter, FilterError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return err(0, "empty filter");
    }
    let mut p = Parser {
        toks,
        pos: 0,
        schema,
        columns: Vec::new(),
        end: src.chars().count(),
    };
    let expr = p.or()?;
    if let Some((t, at)) = p.toks.get(p.pos) {
        return err(*at, format!("unexpected {}", describe(t)));
    }
    Ok(Filter {
        source: src.to_string(),
        expr,
        columns: p.columns,
    })
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("number {n}"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Ident(s) => format!("name `{s}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
    }
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    schema: &'a Schema,
    columns: Vec<String>,
    end: usize,
}

#[derive(Clone)]
enum Val {
    Expr(Expr),
    /// A literal string, kept so functions can take it as a pattern.
    Str(String),
}

impl Val {
    fn expr(self) -> Expr {
        match self {
            Val::Expr(e) => e,
            Val::Str(s) => lit(s),
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|(_, a)| *a).unwrap_or(self.end)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Tok::Op(match op {
                "and" => "and",
                "or" => "or",
                "not" => "not",
                _ => return false,
            }))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.eat_op("or") {
            left = left.or(self.and()?);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.not()?;
        while self.eat_op("and") {
            left = left.and(self.not()?);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.eat_op("not") {
            return Ok(self.not()?.not());
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, FilterError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Some(Tok::Op(o)) if ["==", "!=", "<", "<=", ">", ">=", "~"].contains(o) => *o,
            _ => return Ok(left.expr()),
        };
        self.pos += 1;
        let at = self.at();
        let right = self.sum()?;
        if op == "~" {
            let Val::Str(pattern) = right else {
                return err(at, "`~` needs a quoted regular expression on its right");
            };
            if let Err(e) = regex::Regex::new(&pattern) {
                return err(at, format!("bad regular expression: {e}"));
            }
            return Ok(left.expr().str().contains(lit(pattern), true));
        }
        let (l, r) = (left.expr(), right.expr());
        Ok(match op {
            "==" => l.eq(r),
            "!=" => l.neq(r),
            "<" => l.lt(r),
            "<=" => l.lt_eq(r),
            ">" => l.gt(r),
            _ => l.gt_eq(r),
        })
    }

    fn sum(&mut self) -> Result<Val, FilterError> {
        let mut left = self.term()?;
        while let Some(Tok::Op(o @ ("+" | "-"))) = self.peek() {
            let o = *o;
            self.pos += 1;
            let right = self.term()?.expr();
            left = Val::Expr(if o == "+" {
                left.expr() + right
            } else {
                left.expr() - right
            });
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Val, FilterError> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(o @ ("*" | "/"))) = self.peek() {
            let o = *o;
            self.pos += 1;
            let right = self.unary()?.expr().cast(DataType::Float64);
            let l = left.expr().cast(DataType::Float64);
            left = Val::Expr(if o == "*" { l * right } else { l / right });
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Val, FilterError> {
        if self.peek() == Some(&Tok::Op("-")) {
            self.pos += 1;
            return Ok(Val::Expr(lit(0.0) - self.unary()?.expr()));
        }
        self.atom()
    }

    fn column(&mut self, name: &str, at: usize) -> Result<Expr, FilterError> {
        if self.schema.get(name).is_none() {
            let mut names: Vec<&str> = self
                .schema
                .iter_names()
                .map(|n| n.as_str())
                .filter(|n| !matches!(*n, "raw_offset" | "raw_len" | "messages"))
                .collect();
            names.truncate(30);
            return err(
                at,
                format!("unknown column `{name}`; columns: {}", names.join(", ")),
            );
        }
        if !self.columns.iter().any(|c| c == name) {
            self.columns.push(name.to_string());
        }
        Ok(col(name))
    }

    fn atom(&mut self) -> Result<Val, FilterError> {
        let at = self.at();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return err(at, "expression ends too early");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Val::Expr(lit(n))),
            Tok::Str(s) => Ok(Val::Str(s)),
            Tok::LParen => {
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return err(self.at(), "missing `)`");
                }
                self.pos += 1;
                Ok(Val::Expr(e))
            }
            Tok::Ident(name) if self.peek() == Some(&Tok::LParen) => self.call(&name, at),
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok(Val::Expr(lit(true))),
                "false" => Ok(Val::Expr(lit(false))),
                "null" => Ok(Val::Expr(lit(NULL))),
                _ => Ok(Val::Expr(self.column(&name, at)?)),
            },
            other => err(at, format!("unexpected {}", describe(&other))),
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Val, FilterError> {
        self.pos += 1; // (
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::RParen) {
            loop {
                args.push((self.at(), self.sum_or_cmp()?));
                match self.peek() {
                    Some(Tok::Comma) => self.pos += 1,
                    Some(Tok::RParen) => break,
                    _ => return err(self.at(), "expected `,` or `)`"),
                }
            }
        }
        self.pos += 1; // )
        let arity = |n: usize| -> Result<(), FilterError> {
            if args.len() == n {
                Ok(())
            } else {
                err(
                    at,
                    format!("{name}() takes {n} argument(s), got {}", args.len()),
                )
            }
        };
        let pattern = |v: &(usize, Val)| -> Result<String, FilterError> {
            match &v.1 {
                Val::Str(s) => Ok(s.clone()),
                Val::Expr(_) => err(v.0, format!("{name}() needs a quoted string here")),
            }
        };
        Ok(Val::Expr(match name {
            "len" => {
                arity(1)?;
                args[0].1.clone().expr().str().len_chars()
            }
            "lower" => {
                arity(1)?;
                args[0].1.clone().expr().str().to_lowercase()
            }
            "contains" => {
                arity(2)?;
                let p = pattern(&args[1])?;
                args[0].1.clone().expr().str().contains_literal(lit(p))
            }
            "startswith" => {
                arity(2)?;
                let p = pattern(&args[1])?;
                args[0].1.clone().expr().str().starts_with(lit(p))
            }
            "endswith" => {
                arity(2)?;
                let p = pattern(&args[1])?;
                args[0].1.clone().expr().str().ends_with(lit(p))
            }
            "is_null" => {
                arity(1)?;
                args[0].1.clone().expr().is_null()
            }
            _ => {
                return err(
                    at,
                    format!(
                        "unknown function `{name}`; functions: len, lower, contains, startswith, endswith, is_null"
                    ),
                );
            }
        }))
    }

    /// Function arguments are full expressions, e.g. `contains(lower(output), "x")`.
    fn sum_or_cmp(&mut self) -> Result<Val, FilterError> {
        let start = self.pos;
        let v = self.sum()?;
        match self.peek() {
            Some(Tok::Op(o)) if ["==", "!=", "<", "<=", ">", ">=", "~"].contains(o) => {
                self.pos = start;
                Ok(Val::Expr(self.cmp()?))
            }
            _ => Ok(v),
        }
    }
}

/// Row indices (into `df`) that pass `filter`. Null results count as "no".
pub fn matching_rows(df: &DataFrame, filter: &Filter) -> PolarsResult<Vec<u32>> {
    let mask = df
        .clone()
        .lazy()
        .select([filter.expr.clone().fill_null(lit(false)).alias("keep")])
        .collect()?;
    let keep = mask.column("keep")?.bool()?.clone();
    Ok(keep
        .iter()
        .enumerate()
        .filter(|(_, k)| k.unwrap_or(false))
        .map(|(i, _)| i as u32)
        .collect())
}

/// Quote a column name for use in a filter when it is not a plain identifier.
pub fn quote_name(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    let keyword = ["and", "or", "not", "true", "false", "null"].contains(&name);
    if plain && !keyword {
        name.to_string()
    } else {
        format!("`{name}`")
    }
}
