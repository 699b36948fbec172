//! The SCIM filter grammar (RFC 7644 §3.4.2.2): a parser to a raw tree of
//! attribute paths, its evaluation on a JSON element (PATCH value paths
//! such as `members[value eq "…"]`), and its translation into the store's
//! filters over the attributes it can query.

use jalon_core::scim::{CompareOp, Filter, GroupAttr, UserAttr};
use serde_json::Value;

use super::{ENTERPRISE_USER, GROUP_SCHEMA, ScimError, USER_SCHEMA};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed filter: attribute paths as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Compare(String, Op, Value),
    Present(String),
    And(Box<Raw>, Box<Raw>),
    Or(Box<Raw>, Box<Raw>),
    Not(Box<Raw>),
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidFilter", detail)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        while self.rest().starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// A keyword (`and`, `or`, `not`, an operator), case-insensitive, ending
    /// at a space, a parenthesis or the end.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.len() >= word.len()
            && rest.is_char_boundary(word.len())
            && rest[..word.len()].eq_ignore_ascii_case(word)
        {
            let after = rest[word.len()..].chars().next();
            if after.is_none_or(|c| c == ' ' || c == '(' || c == ')' || c == ']') {
                self.pos += word.len();
                return true;
            }
        }
        false
    }

    fn path(&mut self) -> Result<String, ScimError> {
        self.skip_ws();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_:.$-".contains(c)))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(invalid(format!(
                "expected an attribute at position {} of the filter",
                self.pos + 1
            )));
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }

    fn value(&mut self) -> Result<Value, ScimError> {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with('"') {
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        let literal = &rest[..=i];
                        self.pos += i + 1;
                        return serde_json::from_str(literal)
                            .map_err(|_| invalid(format!("{literal} is not a valid string")));
                    }
                    _ => escaped = false,
                }
            }
            return Err(invalid("a string of the filter is not closed"));
        }
        let len = rest.find([' ', ')', ']']).unwrap_or(rest.len());
        let word = &rest[..len];
        self.pos += len;
        match word.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            _ => serde_json::from_str::<serde_json::Number>(word)
                .map(Value::Number)
                .map_err(|_| {
                    invalid(format!(
                        "{word:?} is not a value: quote strings, as in userName eq \"bjensen\""
                    ))
                }),
        }
    }

    fn or(&mut self) -> Result<Raw, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = Raw::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Raw, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            let right = self.unary()?;
            left = Raw::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Raw, ScimError> {
        if self.keyword("not") {
            if !self.eat('(') {
                return Err(invalid("not is followed by a parenthesised filter"));
            }
            let inner = self.or()?;
            if !self.eat(')') {
                return Err(invalid("a parenthesis is not closed"));
            }
            return Ok(Raw::Not(Box::new(inner)));
        }
        if self.eat('(') {
            let inner = self.or()?;
            if !self.eat(')') {
                return Err(invalid("a parenthesis is not closed"));
            }
            return Ok(inner);
        }
        let path = self.path()?;
        if self.eat('[') {
            let inner = self.or()?;
            if !self.eat(']') {
                return Err(invalid("a bracket is not closed"));
            }
            return Ok(prefix(&path, inner));
        }
        if self.keyword("pr") {
            return Ok(Raw::Present(path));
        }
        let ops = [
            ("eq", Op::Eq),
            ("ne", Op::Ne),
            ("co", Op::Co),
            ("sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("ge", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ];
        for (word, op) in ops {
            if self.keyword(word) {
                let value = self.value()?;
                return Ok(Raw::Compare(path, op, value));
            }
        }
        Err(invalid(format!(
            "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after {path}"
        )))
    }
}

/// `emails[type eq "work"]` as `emails.type eq "work"`.
fn prefix(parent: &str, filter: Raw) -> Raw {
    let join = |p: String| format!("{parent}.{p}");
    match filter {
        Raw::Compare(p, op, v) => Raw::Compare(join(p), op, v),
        Raw::Present(p) => Raw::Present(join(p)),
        Raw::And(a, b) => Raw::And(Box::new(prefix(parent, *a)), Box::new(prefix(parent, *b))),
        Raw::Or(a, b) => Raw::Or(Box::new(prefix(parent, *a)), Box::new(prefix(parent, *b))),
        Raw::Not(a) => Raw::Not(Box::new(prefix(parent, *a))),
    }
}

/// Parses a whole filter.
pub fn parse(text: &str) -> Result<Raw, ScimError> {
    let mut parser = Parser { text, pos: 0 };
    let filter = parser.or()?;
    parser.skip_ws();
    if !parser.rest().is_empty() {
        return Err(invalid(format!(
            "unexpected {:?} at position {} of the filter",
            parser.rest(),
            parser.pos + 1
        )));
    }
    Ok(filter)
}

/// A path without its schema URN (when it is `schema`'s), lowercased.
pub fn bare_path(path: &str, schema: &str) -> String {
    let lower = path.to_ascii_lowercase();
    let prefix = format!("{}:", schema.to_ascii_lowercase());
    lower
        .strip_prefix(&prefix)
        .map(str::to_owned)
        .unwrap_or(lower)
}

fn compare_op(op: Op, path: &str) -> Result<CompareOp, ScimError> {
    match op {
        Op::Eq => Ok(CompareOp::Eq),
        Op::Ne => Ok(CompareOp::Ne),
        Op::Co => Ok(CompareOp::Co),
        Op::Sw => Ok(CompareOp::Sw),
        Op::Ew => Ok(CompareOp::Ew),
        _ => Err(invalid(format!(
            "{path}: gt, ge, lt and le are not supported on this attribute"
        ))),
    }
}

fn text_value(value: &Value, path: &str) -> Result<String, ScimError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(format!(
            "{path} compares with a string, not {other}"
        ))),
    }
}

fn translate<A: Copy>(
    raw: &Raw,
    attr: &impl Fn(&str) -> Option<A>,
) -> Result<Filter<A>, ScimError> {
    let known = |path: &str| {
        attr(path).ok_or_else(|| {
            invalid(format!(
                "filtering on {path} is not supported (see the README's SCIM section)"
            ))
        })
    };
    Ok(match raw {
        Raw::Compare(path, op, value) => Filter::Compare(
            known(path)?,
            compare_op(*op, path)?,
            text_value(value, path)?,
        ),
        Raw::Present(path) => Filter::Present(known(path)?),
        Raw::And(a, b) => Filter::And(Box::new(translate(a, attr)?), Box::new(translate(b, attr)?)),
        Raw::Or(a, b) => Filter::Or(Box::new(translate(a, attr)?), Box::new(translate(b, attr)?)),
        Raw::Not(a) => Filter::Not(Box::new(translate(a, attr)?)),
    })
}

/// The store's filter over Users.
pub fn users(raw: &Raw) -> Result<Filter<UserAttr>, ScimError> {
    translate(raw, &|path: &str| {
        let bare = bare_path(path, USER_SCHEMA);
        let enterprise = bare_path(path, ENTERPRISE_USER);
        Some(match bare.as_str() {
            "id" => UserAttr::Id,
            "username" => UserAttr::UserName,
            "externalid" => UserAttr::ExternalId,
            "emails" | "emails.value" => UserAttr::Email,
            "displayname" => UserAttr::DisplayName,
            "active" => UserAttr::Active,
            "title" => UserAttr::Title,
            _ if enterprise == "department" => UserAttr::Department,
            _ => return None,
        })
    })
}

/// The store's filter over Groups.
pub fn groups(raw: &Raw) -> Result<Filter<GroupAttr>, ScimError> {
    translate(raw, &|path: &str| {
        Some(match bare_path(path, GROUP_SCHEMA).as_str() {
            "id" => GroupAttr::Id,
            "displayname" => GroupAttr::DisplayName,
            "externalid" => GroupAttr::ExternalId,
            "members" | "members.value" => GroupAttr::Member,
            _ => return None,
        })
    })
}

/// A JSON object's attribute, its name compared without case.
pub fn get_ci<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compare_values(actual: &Value, op: Op, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(w)) => {
            let (a, w) = (a.to_lowercase(), w.to_lowercase());
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Co => a.contains(&w),
                Op::Sw => a.starts_with(&w),
                Op::Ew => a.ends_with(&w),
                Op::Gt => a > w,
                Op::Ge => a >= w,
                Op::Lt => a < w,
                Op::Le => a <= w,
            }
        }
        (Value::Number(a), Value::Number(w)) => {
            let (a, w) = (a.as_f64().unwrap_or(0.0), w.as_f64().unwrap_or(0.0));
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Gt => a > w,
                Op::Ge => a >= w,
                Op::Lt => a < w,
                Op::Le => a <= w,
                _ => false,
            }
        }
        (a, w) => match op {
            Op::Eq => a == w,
            Op::Ne => a != w,
            _ => false,
        },
    }
}

/// Whether an element of a multi-valued attribute (a JSON object) matches
/// a value filter whose paths are its sub-attributes (`value`, `type`).
pub fn matches(element: &Value, filter: &Raw) -> bool {
    let sub = |path: &str| -> Option<&Value> {
        match element {
            Value::Object(_) => get_ci(element, path),
            // A multi-valued attribute of simple values: `value` is itself.
            other if path.eq_ignore_ascii_case("value") => Some(other),
            _ => None,
        }
    };
    match filter {
        Raw::Compare(path, op, wanted) => {
            sub(path).is_some_and(|actual| compare_values(actual, *op, wanted))
        }
        Raw::Present(path) => sub(path).is_some_and(|v| !v.is_null()),
        Raw::And(a, b) => matches(element, a) && matches(element, b),
        Raw::Or(a, b) => matches(element, a) || matches(element, b),
        Raw::Not(a) => !matches(element, a),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn comparisons_and_logic_parse_with_precedence() {
        let f = parse(r#"userName eq "bjensen" or externalId eq "x" and active eq true"#).unwrap();
        assert_eq!(
            f,
            Raw::Or(
                Box::new(Raw::Compare("userName".into(), Op::Eq, json!("bjensen"))),
                Box::new(Raw::And(
                    Box::new(Raw::Compare("externalId".into(), Op::Eq, json!("x"))),
                    Box::new(Raw::Compare("active".into(), Op::Eq, json!(true))),
                )),
            )
        );
        let f = parse(r#"(userName Eq "a") AND not (title pr)"#).unwrap();
        assert!(matches!(f, Raw::And(_, _)));
    }

    #[test]
    fn value_paths_prefix_their_attribute() {
        let f = parse(r#"emails[type eq "work" and value co "@example.com"]"#).unwrap();
        assert_eq!(
            f,
            Raw::And(
                Box::new(Raw::Compare("emails.type".into(), Op::Eq, json!("work"))),
                Box::new(Raw::Compare(
                    "emails.value".into(),
                    Op::Co,
                    json!("@example.com")
                )),
            )
        );
    }

    #[test]
    fn bad_filters_say_why() {
        for bad in [
            "userName",
            r#"userName eq "open"#,
            "userName eq bjensen",
            r#"userName eq "a" extra"#,
            r#"(userName eq "a""#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidFilter"), "{bad}");
        }
    }

    #[test]
    fn store_filters_name_known_attributes_only() {
        let f =
            users(&parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "A""#).unwrap())
                .unwrap();
        assert_eq!(
            f,
            Filter::Compare(UserAttr::UserName, CompareOp::Eq, "A".into())
        );
        let f = users(&parse(r#"emails.value eq "a@b.c""#).unwrap()).unwrap();
        assert_eq!(
            f,
            Filter::Compare(UserAttr::Email, CompareOp::Eq, "a@b.c".into())
        );
        assert!(users(&parse(r#"nickName eq "x""#).unwrap()).is_err());
        assert!(users(&parse(r#"userName gt "x""#).unwrap()).is_err());
        let f = groups(&parse(r#"displayName eq "Admins" and members eq "x""#).unwrap()).unwrap();
        assert!(matches!(f, Filter::And(_, _)));
    }

    #[test]
    fn elements_match_value_filters_without_case() {
        let member = json!({"value": "ABC", "display": "x"});
        assert!(matches(&member, &parse(r#"value eq "abc""#).unwrap()));
        assert!(!matches(&member, &parse(r#"value eq "abd""#).unwrap()));
        assert!(matches(&json!("abc"), &parse(r#"value eq "ABC""#).unwrap()));
    }
}
