//! The OCA JSON-schema subset compiled to a flat node arena, checked straight over the bytes.
//!
//! The OCA schemas use a small, regular part of JSON Schema: one `type` per node, string
//! `enum`s, `properties`/`required`/`additionalProperties: false`, `items` with
//! `minItems`/`maxItems`, `maxLength`, `minimum`/`maximum`, `$ref` into `definitions`, plus
//! annotations. A schema using anything else does not compile ([`Compiled::new`] returns
//! `None`) and its action simply always takes the slow path.
//!
//! [`Compiled::accepts`] answers only "certainly valid" (`true`) or "ask the reference
//! validator" (`false`); `multipleOf`, asserted formats, escapes that need decoding and
//! numbers at the edge of f64/i64 are all "ask". Agreement with the jsonschema crate on every
//! input the fast path accepts is pinned by `tests/differential.rs`.

use crate::scan::{is_plain_text, Cursor, KnownStrings};
use serde_json::{Map, Value};
use std::collections::HashMap;

#[derive(Debug)]
enum Node {
    Any,
    /// Valid only through the reference validator.
    Defer,
    Boolean,
    Integer {
        min: Option<f64>,
        max: Option<f64>,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    String {
        min: usize,
        max: usize,
    },
    /// A string `enum`, its values already filtered by the node's length bounds.
    Enum(KnownStrings),
    Array {
        items: usize,
        min: usize,
        max: usize,
    },
    /// Property `i` has the name `names[i]`, the node `nodes[i]` and bit `i` in the
    /// `required` mask.
    Object {
        names: KnownStrings,
        nodes: Box<[usize]>,
        required: u64,
        closed: bool,
    },
}

/// A compiled schema.
#[derive(Debug)]
pub(crate) struct Compiled {
    nodes: Vec<Node>,
    root: usize,
}

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "title",
    "description",
    "comment",
    "$comment",
    "javaType",
    "default",
    "definitions",
];

/// The largest integer an f64 holds exactly.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

struct Compiler<'s> {
    definitions: Option<&'s Map<String, Value>>,
    nodes: Vec<Node>,
    refs: HashMap<&'s str, usize>,
    validate_formats: bool,
}

impl Compiled {
    /// Compile `schema`, or `None` when it uses anything outside the supported subset.
    pub(crate) fn new(schema: &Value, validate_formats: bool) -> Option<Self> {
        let mut compiler = Compiler {
            definitions: schema.get("definitions").and_then(Value::as_object),
            nodes: Vec::new(),
            refs: HashMap::new(),
            validate_formats,
        };
        let root = compiler.node(schema)?;
        Some(Compiled {
            nodes: compiler.nodes,
            root,
        })
    }

    /// Whether the JSON value at the start of `bytes` certainly conforms, with nothing but
    /// white space after it.
    pub(crate) fn accepts(&self, bytes: &[u8], max_depth: usize) -> bool {
        let mut cursor = Cursor::new(bytes, max_depth);
        self.check(&mut cursor, self.root).is_some() && cursor.at_end()
    }

    /// Check the value at the cursor, leaving the cursor after it.
    pub(crate) fn accepts_at(&self, cursor: &mut Cursor<'_>) -> bool {
        self.check(cursor, self.root).is_some()
    }

    fn check(&self, c: &mut Cursor<'_>, index: usize) -> Option<()> {
        match self.nodes.get(index)? {
            Node::Any => c.skip_value(),
            Node::Defer => None,
            Node::Boolean => (c.literal(b"true") || c.literal(b"false")).then_some(()),
            Node::Integer { min, max } => {
                let n = c.number()?;
                // Fractions, huge integers and `-0` (serde_json reads it as the float -0.0, which
                // draft-04 does not call an integer; found by the fuzz run): the reference decides.
                if !n.integral || n.raw.len() > 15 || n.raw.starts_with(b"-0") {
                    return None;
                }
                if min.is_none() && max.is_none() {
                    return Some(());
                }
                in_bounds(small_integer(n.raw)?, *min, *max)
            }
            Node::Number { min, max } => {
                let n = c.number()?;
                if n.integral && n.raw.len() <= 15 && min.is_none() && max.is_none() {
                    return Some(());
                }
                let v: f64 = std::str::from_utf8(n.raw).ok()?.parse().ok()?;
                if !v.is_finite() || v.abs() >= EXACT_F64 {
                    return None;
                }
                in_bounds(v, *min, *max)
            }
            Node::String { min, max } => {
                let s = c.string()?;
                (s.chars >= *min && s.chars <= *max).then_some(())
            }
            // Anything but one of the values, byte for byte (an escaped spelling of one
            // included), goes to the reference.
            Node::Enum(values) => c.known(values).map(drop),
            Node::Array { items, min, max } => {
                c.enter(b'[')?;
                let mut count = 0usize;
                if !c.eat(b']') {
                    loop {
                        self.check(c, *items)?;
                        count += 1;
                        if c.eat(b',') {
                            continue;
                        }
                        if c.eat(b']') {
                            break;
                        }
                        return None;
                    }
                }
                c.leave();
                (count >= *min && count <= *max).then_some(())
            }
            Node::Object {
                names,
                nodes,
                required,
                closed,
            } => self.object(c, names, nodes, *required, *closed),
        }
    }

    fn object(
        &self,
        c: &mut Cursor<'_>,
        names: &KnownStrings,
        nodes: &[usize],
        required: u64,
        closed: bool,
    ) -> Option<()> {
        c.enter(b'{')?;
        let mut seen = 0u64;
        let mut next = 0usize;
        if !c.eat(b'}') {
            loop {
                // A key that is not, byte for byte, a property name is either unknown or
                // escaped (which could spell a property name: the reference decides).
                if let Some(i) = c.known_from(names, next) {
                    if !c.eat(b':') {
                        return None;
                    }
                    seen |= 1u64 << i;
                    self.check(c, *nodes.get(i)?)?;
                    next = i + 1;
                } else {
                    if closed {
                        return None;
                    }
                    let key = c.string()?;
                    if key.escaped || !c.eat(b':') {
                        return None;
                    }
                    c.skip_value()?;
                }
                if c.eat(b',') {
                    continue;
                }
                if c.eat(b'}') {
                    break;
                }
                return None;
            }
        }
        c.leave();
        (required & !seen == 0).then_some(())
    }
}

/// An integer of at most 15 characters (so exact in an f64), as the scanner checked it.
fn small_integer(raw: &[u8]) -> Option<f64> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let mut v = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v } as f64)
}

fn in_bounds(v: f64, min: Option<f64>, max: Option<f64>) -> Option<()> {
    (min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)).then_some(())
}

impl<'s> Compiler<'s> {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn node(&mut self, schema: &'s Value) -> Option<usize> {
        let obj = schema.as_object()?;
        if let Some(reference) = obj.get("$ref") {
            return self.reference(reference.as_str()?, obj);
        }
        let ty = obj.get("type").and_then(Value::as_str);
        let allowed: &[&str] = match ty {
            None if obj.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) => {
                return Some(self.push(Node::Any))
            }
            None => return None,
            Some("string") => &[
                "maxLength",
                "minLength",
                "enum",
                "format",
                "additionalProperties",
            ],
            Some("integer" | "number") => &["minimum", "maximum", "multipleOf"],
            Some("boolean") => &[],
            Some("array") => &["items", "minItems", "maxItems", "additionalItems"],
            Some("object") => &["properties", "required", "additionalProperties"],
            Some(_) => return None,
        };
        let understood = |k: &String| {
            k == "type" || allowed.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str())
        };
        if !obj.keys().all(understood) {
            return None;
        }
        let uint = |k: &str| {
            obj.get(k)
                .and_then(Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
        };
        let float = |k: &str| obj.get(k).and_then(Value::as_f64);
        let node = match ty? {
            "string" => {
                let min = uint("minLength").unwrap_or(0);
                let max = uint("maxLength").unwrap_or(usize::MAX);
                if obj.contains_key("format") && self.validate_formats {
                    Node::Defer
                } else if let Some(values) = obj.get("enum") {
                    Node::Enum(string_enum(values, min, max)?)
                } else {
                    Node::String { min, max }
                }
            }
            "integer" | "number" if obj.contains_key("multipleOf") => Node::Defer,
            "integer" => Node::Integer {
                min: float("minimum"),
                max: float("maximum"),
            },
            "number" => Node::Number {
                min: float("minimum"),
                max: float("maximum"),
            },
            "boolean" => Node::Boolean,
            "array" => {
                let items = match obj.get("items") {
                    Some(s @ Value::Object(_)) => self.node(s)?,
                    None => self.push(Node::Any),
                    Some(_) => return None,
                };
                Node::Array {
                    items,
                    min: uint("minItems").unwrap_or(0),
                    max: uint("maxItems").unwrap_or(usize::MAX),
                }
            }
            _ => self.object(obj)?,
        };
        Some(self.push(node))
    }

    fn object(&mut self, obj: &'s Map<String, Value>) -> Option<Node> {
        let closed = match obj.get("additionalProperties") {
            None | Some(Value::Bool(true)) => false,
            Some(Value::Bool(false)) => true,
            Some(_) => return None,
        };
        let mut names = Vec::new();
        let mut nodes = Vec::new();
        if let Some(properties) = obj.get("properties") {
            let properties = properties.as_object()?;
            if properties.len() > 64 {
                return None;
            }
            for (name, schema) in properties {
                nodes.push(self.node(schema)?);
                names.push(name.as_str());
            }
        }
        let mut required = 0u64;
        for name in obj
            .get("required")
            .map_or(Some(&[][..]), |r| r.as_array().map(Vec::as_slice))?
        {
            let name = name.as_str()?;
            let bit = names.iter().position(|n| *n == name)?;
            required |= 1u64 << bit;
        }
        Some(Node::Object {
            // A name that needs escaping cannot be matched raw (none in the OCA schemas).
            names: KnownStrings::new(names.iter().map(|n| n.as_bytes()))?,
            nodes: nodes.into(),
            required,
            closed,
        })
    }

    fn reference(&mut self, reference: &'s str, obj: &Map<String, Value>) -> Option<usize> {
        if obj
            .keys()
            .any(|k| k != "$ref" && !ANNOTATIONS.contains(&k.as_str()))
        {
            return None;
        }
        if let Some(&i) = self.refs.get(reference) {
            return Some(i);
        }
        let name = reference.strip_prefix("#/definitions/")?;
        let target = self.definitions?.get(name)?;
        let i = self.node(target)?;
        self.refs.insert(reference, i);
        Some(i)
    }
}

/// A string enum, without the values that the length bounds refuse anyway and those that
/// could only be written escaped (an escaped string always goes to the reference).
fn string_enum(values: &Value, min: usize, max: usize) -> Option<KnownStrings> {
    let mut kept = Vec::new();
    for v in values.as_array()? {
        let v = v.as_str()?;
        let chars = v.chars().count();
        if chars >= min && chars <= max && is_plain_text(v.as_bytes()) {
            kept.push(v.as_bytes());
        }
    }
    KnownStrings::new(kept)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$schema": "http://json-schema.org/draft-06/schema#",
            "definitions": {
                "Unit": {"type": "string", "enum": ["Wh", "kWh"]},
                "Sample": {"type": "object", "additionalProperties": false,
                    "properties": {"value": {"type": "number"}, "unit": {"$ref": "#/definitions/Unit"}},
                    "required": ["value"]}
            },
            "type": "object", "additionalProperties": false,
            "properties": {
                "id": {"type": "integer", "minimum": 0},
                "tag": {"type": "string", "maxLength": 3},
                "samples": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/Sample"}},
                "open": {"type": "object", "properties": {}}
            },
            "required": ["id"]
        })
    }

    #[test]
    fn accepts_valid_and_defers_everything_else() {
        let c = Compiled::new(&schema(), false).unwrap();
        for ok in [
            r#"{"id":0}"#,
            r#"{"id":1,"tag":"abc","samples":[{"value":1.5,"unit":"kWh"},{"value":-2}]}"#,
            r#" {"id":1,"open":{"x":[1,{"y":null}]}} "#,
        ] {
            assert!(c.accepts(ok.as_bytes(), 32), "{ok}");
        }
        for not_ok in [
            r#"{}"#,
            r#"{"id":-1}"#,
            r#"{"id":1.0}"#,
            r#"{"id":"1"}"#,
            r#"{"id":1,"tag":"abcd"}"#,
            r#"{"id":1,"samples":[]}"#,
            r#"{"id":1,"samples":[{"value":1,"unit":"MWh"}]}"#,
            r#"{"id":1,"extra":true}"#,
            r#"{"id":1} x"#,
            r#"{"id":1,"samples":[{"value":1e400}]}"#,
        ] {
            assert!(!c.accepts(not_ok.as_bytes(), 32), "{not_ok}");
        }
    }

    #[test]
    fn enum_tables_find_every_value_and_nothing_else() {
        let values: Vec<String> = (0..300)
            .map(|i| format!("Value.{i}.{}", "x".repeat(i % 37)))
            .collect();
        let c = Compiled::new(&json!({"type": "string", "enum": values}), false).unwrap();
        for v in &values {
            assert!(c.accepts(format!("{v:?}").as_bytes(), 32), "{v}");
            for near in [
                format!("{v}x"),
                v[..v.len() - 1].to_owned(),
                v.replace('V', "v"),
            ] {
                assert!(!c.accepts(format!("{near:?}").as_bytes(), 32), "{near}");
            }
        }
        assert!(!c.accepts(b"\"\"", 32));
    }

    #[test]
    fn enum_values_outside_the_length_bounds_are_refused() {
        let schema = json!({"type": "string", "maxLength": 3, "minLength": 2, "enum": ["a", "ab", "abcd", "é€"]});
        let c = Compiled::new(&schema, false).unwrap();
        assert!(c.accepts(br#""ab""#, 32));
        assert!(c.accepts("\"é€\"".as_bytes(), 32));
        assert!(!c.accepts(br#""a""#, 32));
        assert!(!c.accepts(br#""abcd""#, 32));
        assert!(!c.accepts(br#""\u0061b""#, 32));
    }

    #[test]
    fn keys_in_any_order_and_escaped_keys() {
        let c = Compiled::new(&schema(), false).unwrap();
        assert!(c.accepts(
            br#"{"samples":[{"unit":"Wh","value":1}],"tag":"a","id":2}"#,
            32
        ));
        assert!(c.accepts(br#"{"id":2,"tag":"a","id":3}"#, 32));
        // An escaped key could spell a property name: never accepted by the fast path.
        assert!(!c.accepts(br#"{"\u0069d":2}"#, 32));
        let open = Compiled::new(
            &json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
            false,
        )
        .unwrap();
        assert!(open.accepts(br#"{"other":{"id":"x"},"id":1}"#, 32));
        assert!(!open.accepts(br#"{"i\/d":1}"#, 32));
        assert!(!open.accepts(br#"{"id":"1"}"#, 32));
    }

    #[test]
    fn unsupported_keywords_do_not_compile() {
        assert!(Compiled::new(&json!({"type": "string", "pattern": "^a"}), false).is_none());
        assert!(Compiled::new(&json!({"anyOf": []}), false).is_none());
        assert!(Compiled::new(&json!({"type": "object", "required": ["x"]}), false).is_none());
    }
}
