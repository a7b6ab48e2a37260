//! A small subset of BPF filter syntax (pcap-filter(7)), evaluated on the
//! UDP datagrams of a capture, in its reader:
//!
//! ```text
//! expr    := term (("or" | "||") term)*
//! term    := factor (("and" | "&&") factor)*
//! factor  := ("not" | "!") factor | "(" expr ")" | primitive
//! primitive := [proto] [dir] ("host" ADDRESS | "port" PORT | "portrange" PORT-PORT)
//!            | proto
//! proto   := "udp" | "ip" | "ip6"
//! dir     := "src" | "dst" | "src or dst" | "src and dst"
//! ```
//!
//! As in BPF, qualifiers stand before their primitive (`udp dst port 26000`
//! is `udp and dst port 26000`), a primitive without a direction matches
//! either address (`port 53`: source or destination), and `and` binds more
//! tightly than `or`. Only UDP is replayed, so `udp` is always true; any
//! other protocol name (`tcp`, `icmp`, ...) is an error rather than a filter
//! that matches nothing. Errors name the token and its position.

use std::net::{IpAddr, SocketAddr};

use crate::{Error, Result};

/// A compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    True,
    Ipv4,
    Ipv6,
    Host(Dir, IpAddr),
    Ports(Dir, u16, u16),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// Which address of a datagram a primitive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    /// Either (BPF's default, and `src or dst`).
    Either,
    /// Both (`src and dst`).
    Both,
}

impl Filter {
    /// Whether the datagram from `src` to `dst` passes.
    pub fn matches(&self, src: &SocketAddr, dst: &SocketAddr) -> bool {
        let by = |dir: Dir, f: &dyn Fn(&SocketAddr) -> bool| match dir {
            Dir::Src => f(src),
            Dir::Dst => f(dst),
            Dir::Either => f(src) || f(dst),
            Dir::Both => f(src) && f(dst),
        };
        match self {
            Filter::True => true,
            Filter::Ipv4 => dst.is_ipv4(),
            Filter::Ipv6 => dst.is_ipv6(),
            Filter::Host(dir, ip) => by(*dir, &|a| a.ip() == *ip),
            Filter::Ports(dir, lo, hi) => by(*dir, &|a| (*lo..=*hi).contains(&a.port())),
            Filter::Not(f) => !f.matches(src, dst),
            Filter::And(a, b) => a.matches(src, dst) && b.matches(src, dst),
            Filter::Or(a, b) => a.matches(src, dst) || b.matches(src, dst),
        }
    }

    /// Both filters.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::True, f) | (f, Filter::True) => f,
            (a, b) => Filter::And(Box::new(a), Box::new(b)),
        }
    }

    /// Either filter; `None` for no filters at all.
    pub fn any_of(filters: impl IntoIterator<Item = Filter>) -> Option<Filter> {
        filters
            .into_iter()
            .reduce(|a, b| Filter::Or(Box::new(a), Box::new(b)))
    }

    /// Parse `text`; errors say which token, at which position (from 0),
    /// and what was expected, under the option name `option`.
    pub fn parse(option: &'static str, text: &str) -> Result<Filter> {
        let tokens = tokenize(option, text)?;
        // The filter is a tree walked by recursion (parse, match, drop):
        // its size and depth are bounded so no input can overflow a stack.
        if tokens.len() > MAX_FILTER_TOKENS {
            return Err(Error::invalid(
                option,
                format!(
                    "has {} words and symbols, more than the {MAX_FILTER_TOKENS} a filter may have",
                    tokens.len()
                ),
            ));
        }
        let mut parser = Parser {
            option,
            text,
            tokens,
            at: 0,
            depth: 0,
        };
        if parser.tokens.is_empty() {
            return Ok(Filter::True);
        }
        let filter = parser.expr()?;
        if let Some(t) = parser.peek() {
            return Err(parser.error(t, "expected 'and', 'or' or the end"));
        }
        Ok(filter)
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    at: usize,
}

fn tokenize<'a>(option: &'static str, text: &'a str) -> Result<Vec<Token<'a>>> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if matches!(c, b'(' | b')' | b'!') {
            i += 1;
        } else if text[i..].starts_with("&&") || text[i..].starts_with("||") {
            i += 2;
        } else if c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'-' | b'%' | b'[' | b']')
        {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || matches!(bytes[i], b':' | b'.' | b'-' | b'%' | b'[' | b']'))
            {
                i += 1;
            }
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return Err(Error::invalid(
                option,
                format!("unexpected character '{ch}' at position {i} in '{text}'"),
            ));
        }
        tokens.push(Token {
            text: &text[start..i],
            at: start,
        });
    }
    Ok(tokens)
}

/// Most words and symbols in a filter.
const MAX_FILTER_TOKENS: usize = 4096;
/// Most `(` and `not` nested in one another.
const MAX_FILTER_DEPTH: usize = 64;

struct Parser<'a> {
    option: &'static str,
    text: &'a str,
    tokens: Vec<Token<'a>>,
    at: usize,
    /// `(` and `not` open around the token at `at`.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.at).copied()
    }

    fn eat(&mut self, words: &[&str]) -> bool {
        if self.peek().is_some_and(|t| words.contains(&t.text)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn error(&self, t: Token<'_>, what: &str) -> Error {
        Error::invalid(
            self.option,
            format!(
                "'{}' at position {} in '{}': {what}",
                t.text, t.at, self.text
            ),
        )
    }

    fn end_error(&self, what: &str) -> Error {
        Error::invalid(
            self.option,
            format!("'{}' ends too early: {what}", self.text),
        )
    }

    fn next(&mut self, what: &str) -> Result<Token<'a>> {
        let t = self.peek().ok_or_else(|| self.end_error(what))?;
        self.at += 1;
        Ok(t)
    }

    fn expr(&mut self) -> Result<Filter> {
        let mut left = self.term()?;
        while self.eat(&["or", "||"]) {
            left = Filter::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter> {
        let mut left = self.factor()?;
        while self.eat(&["and", "&&"]) {
            left = Filter::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Filter> {
        let Some(open) = self.peek() else {
            return self.primitive();
        };
        if !matches!(open.text, "not" | "!" | "(") {
            return self.primitive();
        }
        if self.depth == MAX_FILTER_DEPTH {
            return Err(self.error(
                open,
                &format!("nested more than {MAX_FILTER_DEPTH} deep ('(' and 'not')"),
            ));
        }
        self.depth += 1;
        let inner = self.nested();
        self.depth -= 1;
        inner
    }

    /// A `not` or a parenthesised expression, at the cursor.
    fn nested(&mut self) -> Result<Filter> {
        if self.eat(&["not", "!"]) {
            return Ok(Filter::Not(Box::new(self.factor()?)));
        }
        self.eat(&["("]);
        let inner = self.expr()?;
        let close = self.next("expected ')'")?;
        if close.text != ")" {
            return Err(self.error(close, "expected ')'"));
        }
        Ok(inner)
    }

    fn primitive(&mut self) -> Result<Filter> {
        let expected =
            "expected 'udp', 'ip', 'ip6', 'src', 'dst', 'host', 'port', 'portrange', 'not' or '('";
        let first = self.peek().ok_or_else(|| self.end_error(expected))?;
        let proto = match first.text {
            "udp" => Some(Filter::True),
            "ip" => Some(Filter::Ipv4),
            "ip6" => Some(Filter::Ipv6),
            "tcp" | "icmp" | "icmp6" | "arp" | "sctp" | "ether" | "vlan" => {
                return Err(self.error(first, "only UDP datagrams are replayed; 'udp', 'ip' and 'ip6' are the protocols understood"))
            }
            _ => None,
        };
        if proto.is_some() {
            self.at += 1;
        }
        let dir = if self.eat(&["src"]) {
            Some(self.compound_dir(Dir::Src))
        } else if self.eat(&["dst"]) {
            Some(self.compound_dir(Dir::Dst))
        } else {
            None
        };
        let qualified = match self.peek() {
            Some(t) if matches!(t.text, "host" | "port" | "portrange") => {
                self.at += 1;
                Some(self.value(t.text, dir.unwrap_or(Dir::Either))?)
            }
            Some(t) if dir.is_some() => {
                return Err(self.error(
                    t,
                    "expected 'host', 'port' or 'portrange' after a direction",
                ))
            }
            None if dir.is_some() => {
                return Err(
                    self.end_error("expected 'host', 'port' or 'portrange' after a direction")
                )
            }
            _ => None,
        };
        match (proto, qualified) {
            (Some(p), Some(q)) => Ok(p.and(q)),
            (Some(p), None) => Ok(p),
            (None, Some(q)) => Ok(q),
            (None, None) => Err(self.error(first, expected)),
        }
    }

    /// `src or dst` / `src and dst` after `src` (or `dst`).
    fn compound_dir(&mut self, dir: Dir) -> Dir {
        let other = if dir == Dir::Src { "dst" } else { "src" };
        let two = |p: &Self, conj: &str| {
            p.tokens.get(p.at).is_some_and(|t| t.text == conj)
                && p.tokens.get(p.at + 1).is_some_and(|t| t.text == other)
        };
        if two(self, "or") {
            self.at += 2;
            Dir::Either
        } else if two(self, "and") {
            self.at += 2;
            Dir::Both
        } else {
            dir
        }
    }

    fn value(&mut self, kind: &str, dir: Dir) -> Result<Filter> {
        let v = self.next(&format!("expected a value after '{kind}'"))?;
        match kind {
            "host" => {
                let text = v.text.trim_start_matches('[').trim_end_matches(']');
                let ip: IpAddr = text.parse().map_err(|_| {
                    self.error(
                        v,
                        "expected an IPv4 or IPv6 address (host names are not resolved)",
                    )
                })?;
                Ok(Filter::Host(dir, ip))
            }
            "port" => {
                let port = self.port(v, v.text)?;
                Ok(Filter::Ports(dir, port, port))
            }
            _ => {
                let (lo, hi) = v
                    .text
                    .split_once('-')
                    .ok_or_else(|| self.error(v, "expected a port range LOW-HIGH"))?;
                let (lo, hi) = (self.port(v, lo)?, self.port(v, hi)?);
                if lo > hi {
                    return Err(self.error(v, "the range's low end is above its high end"));
                }
                Ok(Filter::Ports(dir, lo, hi))
            }
        }
    }

    fn port(&self, t: Token<'_>, text: &str) -> Result<u16> {
        text.parse::<u16>()
            .map_err(|_| self.error(t, "expected a port number 0..=65535"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(text: &str) -> Filter {
        Filter::parse("filter", text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }
    fn err(text: &str) -> String {
        Filter::parse("filter", text).unwrap_err().to_string()
    }
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn pass(filter: &str, src: &str, dst: &str) -> bool {
        f(filter).matches(&addr(src), &addr(dst))
    }

    #[test]
    fn primitives_and_qualifiers() {
        let (a, b) = ("10.0.0.1:5000", "10.0.0.2:26000");
        assert!(pass("udp dst port 26000", a, b));
        assert!(!pass("udp src port 26000", a, b));
        assert!(pass("port 26000", a, b), "no direction: either");
        assert!(pass("port 5000", a, b));
        assert!(pass("src host 10.0.0.1 and dst port 26000", a, b));
        assert!(!pass("dst host 10.0.0.1", a, b));
        assert!(pass("host 10.0.0.1", a, b));
        assert!(!pass("src and dst host 10.0.0.1", a, b));
        assert!(pass("src or dst host 10.0.0.2", a, b));
        assert!(pass("dst portrange 25000-26000", a, b));
        assert!(!pass("dst portrange 26001-27000", a, b));
        assert!(pass("ip", a, b) && !pass("ip6", a, b));
        assert!(pass("ip6 and dst host ::1", "[::1]:1", "[::1]:2"));
        assert!(pass("dst host [::1]", "[::1]:1", "[::1]:2"));
        assert!(pass("", a, b));
    }

    #[test]
    fn operators_and_precedence() {
        let (a, b) = ("10.0.0.1:5000", "10.0.0.2:26000");
        assert!(pass("not dst port 1 and dst port 26000", a, b));
        assert!(pass("! dst port 1 && dst port 26000", a, b));
        // and binds tighter: (port 1 and port 2) or port 26000.
        assert!(pass("port 1 and port 2 or port 26000", a, b));
        assert!(!pass("port 1 and (port 2 or port 26000)", a, b));
        assert!(pass("dst port 1 || dst port 26000", a, b));
        assert!(!pass("not (udp and dst port 26000)", a, b));
        assert_eq!(f("udp"), Filter::True);
    }

    #[test]
    fn nesting_and_length_are_bounded_never_a_stack_overflow() {
        // [was: 6,401 '(' overflowed the stack in the parser (fuzz pcap_reader)]
        let e = err(&"(".repeat(6401));
        assert!(e.contains("more than the 4096"), "{e}");
        let e = err(&"(".repeat(4000));
        assert!(e.contains("nested more than 64 deep"), "{e}");
        assert!(e.contains("at position 64"), "{e}");
        let e = err(&format!("{}udp", "not ".repeat(65)));
        assert!(e.contains("nested more than 64"), "{e}");
        let deep = format!("{}udp{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(f(&deep), Filter::True);
        let long = vec!["udp"; 2049].join(" or ");
        let e = err(&long);
        assert!(e.contains("more than the 4096"), "{e}");
        let ok = vec!["port 1"; 1000].join(" or ");
        assert!(pass(&ok, "10.0.0.1:5000", "10.0.0.2:1"));
    }

    #[test]
    fn errors_name_the_token_and_position() {
        let e = err("udp dst prot 26000");
        assert!(e.contains("'prot' at position 8"), "{e}");
        assert!(e.contains("invalid 'filter'"), "{e}");
        let e = err("tcp port 80");
        assert!(
            e.contains("'tcp' at position 0") && e.contains("only UDP"),
            "{e}"
        );
        assert!(err("dst port 70000").contains("'70000' at position 9"));
        assert!(err("dst port").contains("ends too early"));
        assert!(err("(port 1").contains("expected ')'"));
        assert!(err("port 1 port 2").contains("'port' at position 7"));
        assert!(err("host example.com").contains("not resolved"));
        assert!(err("port 1 $ 2").contains("'$' at position 7"));
        assert!(err("portrange 9-3").contains("low end"));
        assert!(err("dst 5").contains("after a direction"));
    }
}
