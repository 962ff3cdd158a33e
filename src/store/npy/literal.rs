//! The Python-literal parser for the `.npy` header dictionary: strings,
//! integers, bools, `None`, tuples, lists and dicts, as NumPy writes them.

use super::header::{HeaderError, bad};

/// Deepest nesting the header parser follows (a valid header needs 3).
const MAX_NESTING: usize = 16;

/// A Python literal as it can appear in a header.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl Lit {
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Lit::Str(_) => "a string",
            Lit::Int(_) => "an integer",
            Lit::Bool(_) => "a bool",
            Lit::None => "None",
            Lit::Tuple(_) => "a tuple",
            Lit::List(_) => "a list",
            Lit::Dict(_) => "a dict",
        }
    }

    /// Python-like text for messages.
    pub(super) fn repr(&self) -> String {
        fn join(items: &[Lit]) -> String {
            items.iter().map(Lit::repr).collect::<Vec<_>>().join(", ")
        }
        match self {
            Lit::Str(s) => format!("{s:?}"),
            Lit::Int(i) => i.to_string(),
            Lit::Bool(b) => if *b { "True" } else { "False" }.into(),
            Lit::None => "None".into(),
            Lit::Tuple(v) if v.len() == 1 => format!("({},)", v[0].repr()),
            Lit::Tuple(v) => format!("({})", join(v)),
            Lit::List(v) => format!("[{}]", join(v)),
            Lit::Dict(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|(k, x)| format!("{}: {}", k.repr(), x.repr()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
}

/// A recursive-descent parser for the Python literals NumPy writes in
/// headers. It works on bytes; `latin1` says how string contents decode
/// (versions 1.0 and 2.0 are Latin-1, 3.0 is UTF-8, checked beforehand).
pub(super) struct LitParser<'a> {
    pub(super) s: &'a [u8],
    pub(super) pos: usize,
    pub(super) latin1: bool,
}

impl LitParser<'_> {
    pub(super) fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn unexpected(&self) -> HeaderError {
        match self.peek() {
            None => bad("header dictionary ends too early"),
            Some(c) if c.is_ascii_graphic() => bad(format!(
                "unexpected character {:?} at byte {} of the header dictionary",
                c as char, self.pos
            )),
            Some(c) => bad(format!(
                "unexpected byte 0x{c:02x} at byte {} of the header dictionary",
                self.pos
            )),
        }
    }

    pub(super) fn value(&mut self, depth: usize) -> std::result::Result<Lit, HeaderError> {
        if depth > MAX_NESTING {
            return Err(bad("header dictionary is nested too deeply"));
        }
        self.skip_ws();
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'0'..=b'9' | b'-' | b'+') => self.int(),
            Some(b'(') => {
                self.pos += 1;
                let (items, comma) = self.sequence(b')', depth)?;
                // `(x)` is x in parentheses; only `(x,)` is a tuple.
                if items.len() == 1 && !comma {
                    Ok(items.into_iter().next().expect("one item"))
                } else {
                    Ok(Lit::Tuple(items))
                }
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Lit::List(self.sequence(b']', depth)?.0))
            }
            Some(b'{') => {
                self.pos += 1;
                self.dict(depth)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    w => Err(bad(format!(
                        "unexpected name {:?} at byte {start} of the header dictionary",
                        String::from_utf8_lossy(w)
                    ))),
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    /// Items up to `close`; also says whether a comma was seen.
    fn sequence(
        &mut self,
        close: u8,
        depth: usize,
    ) -> std::result::Result<(Vec<Lit>, bool), HeaderError> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    comma = true;
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok((items, comma));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> std::result::Result<Lit, HeaderError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Lit::Dict(items));
            }
            let key = self.value(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            items.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Lit::Dict(items));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn string(&mut self, quote: u8) -> std::result::Result<Lit, HeaderError> {
        let start = self.pos;
        self.pos += 1;
        let mut raw = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    return Err(bad(format!(
                        "unterminated string starting at byte {start} of the header dictionary"
                    )));
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let Some(&next) = self.s.get(self.pos + 1) else {
                        return Err(self.unexpected());
                    };
                    match next {
                        b'\\' | b'\'' | b'"' => raw.push(next),
                        b'n' => raw.push(b'\n'),
                        b't' => raw.push(b'\t'),
                        other => raw.extend_from_slice(&[b'\\', other]),
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
        let text = if self.latin1 {
            raw.iter().map(|&b| b as char).collect()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        Ok(Lit::Str(text))
    }

    fn int(&mut self) -> std::result::Result<Lit, HeaderError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        self.skip_ws();
        let digits_start = self.pos;
        let mut value: i128 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(c - b'0')))
                .ok_or_else(|| {
                    bad(format!(
                        "integer at byte {start} of the header dictionary is too large"
                    ))
                })?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.unexpected());
        }
        // Python 2 wrote long integers with an `L` suffix.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.')
        {
            return Err(self.unexpected());
        }
        Ok(Lit::Int(if negative { -value } else { value }))
    }
}
