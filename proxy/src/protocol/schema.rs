//! JSON Schema for Gemini: `functionDeclarations[].parameters` and
//! `responseSchema` take an OpenAPI subset and reject unknown keywords with
//! a 400. Schemas are rewritten to that subset: local `$ref`s are inlined
//! (to a depth limit), `const` becomes a one-value `enum`, `type: [T,
//! "null"]` becomes `nullable`, `oneOf` becomes `anyOf`, `allOf` of objects
//! is merged, formats Gemini does not know are dropped, and every other
//! keyword Gemini does not list is removed.

use serde_json::{Map, Value};

use super::TranslateError;

/// Deepest schema (after `$ref` inlining) translated for Gemini.
pub const MAX_DEPTH: usize = 32;

/// Keywords Gemini's Schema object has.
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// String formats Gemini accepts.
const FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// Reads a Gemini schema as JSON Schema: Gemini's upper-case type names
/// (`OBJECT`, `STRING`) become JSON Schema's lower-case ones.
pub fn from_gemini(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        ("properties", Value::Object(props)) => Value::Object(
                            props
                                .iter()
                                .map(|(n, s)| (n.clone(), from_gemini(s)))
                                .collect(),
                        ),
                        ("items", s) => from_gemini(s),
                        ("anyOf", Value::Array(alts)) => {
                            Value::Array(alts.iter().map(from_gemini).collect())
                        }
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Rewrites `schema` into Gemini's subset.
pub fn for_gemini(schema: &Value) -> Result<Value, TranslateError> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    rewrite(schema, &defs, 0)
}

fn rewrite(schema: &Value, defs: &Value, depth: usize) -> Result<Value, TranslateError> {
    if depth > MAX_DEPTH {
        return Err(TranslateError::Bad(format!(
            "a tool or response schema is nested deeper than {MAX_DEPTH} levels (after inlining $ref)"
        )));
    }
    let Value::Object(obj) = schema else {
        // `true`/`false` schemas and stray values: an unconstrained schema
        return Ok(Value::Object(Map::new()));
    };
    if let Some(Value::String(reference)) = obj.get("$ref") {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"))
            .ok_or_else(|| {
                TranslateError::Bad(format!(
                    "schema reference {reference} is not a local #/$defs reference"
                ))
            })?;
        let target = defs.get(name).ok_or_else(|| {
            TranslateError::Bad(format!("schema reference {reference} names no definition"))
        })?;
        let mut inlined = rewrite(target, defs, depth + 1)?;
        if let (Value::Object(out), Some(Value::String(d))) = (&mut inlined, obj.get("description"))
        {
            out.insert("description".into(), Value::String(d.clone()));
        }
        return Ok(inlined);
    }
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                let mut props = Map::new();
                if let Value::Object(p) = value {
                    for (name, sub) in p {
                        props.insert(name.clone(), rewrite(sub, defs, depth + 1)?);
                    }
                }
                out.insert(key.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(key.clone(), rewrite(value, defs, depth + 1)?);
            }
            "anyOf" | "oneOf" => {
                let mut alts = Vec::new();
                for sub in value.as_array().into_iter().flatten() {
                    alts.push(rewrite(sub, defs, depth + 1)?);
                }
                out.insert("anyOf".into(), Value::Array(alts));
            }
            "allOf" => merge_all_of(&mut out, value, defs, depth)?,
            "const" => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "type" => match value {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    if let Some(first) = non_null.first() {
                        out.insert("type".into(), (*first).clone());
                    }
                }
                other => {
                    out.insert(key.clone(), other.clone());
                }
            },
            "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                out.insert(key.clone(), value.clone());
            }
            "format" => {}
            "enum" => {
                // Gemini enums are strings; a null member means nullable
                let members = value.as_array().map(Vec::as_slice).unwrap_or_default();
                if members.iter().any(Value::is_null) {
                    out.insert("nullable".into(), Value::Bool(true));
                }
                let values = members
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| match v {
                        Value::String(_) => v.clone(),
                        other => Value::String(other.to_string()),
                    })
                    .collect();
                out.insert(key.clone(), Value::Array(values));
            }
            k if KEPT.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    if out.contains_key("enum") && !out.contains_key("type") {
        out.insert("type".into(), Value::String("string".into()));
    }
    Ok(Value::Object(out))
}

fn merge_all_of(
    out: &mut Map<String, Value>,
    parts: &Value,
    defs: &Value,
    depth: usize,
) -> Result<(), TranslateError> {
    for part in parts.as_array().into_iter().flatten() {
        let Value::Object(sub) = rewrite(part, defs, depth + 1)? else {
            continue;
        };
        for (k, v) in sub {
            match (k.as_str(), out.get_mut(&k)) {
                ("properties", Some(Value::Object(existing))) => {
                    if let Value::Object(more) = v {
                        existing.extend(more);
                    }
                }
                ("required", Some(Value::Array(existing))) => {
                    if let Value::Array(more) = v {
                        existing.extend(more);
                    }
                }
                (_, Some(_)) => {}
                (_, None) => {
                    out.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsupported_keywords_are_removed_recursively() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "minLength": 1, "format": "hostname"},
                "when": {"type": "string", "format": "date-time"},
                "n": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 2},
                "tags": {"type": "array", "items": {"type": "string", "const": "x", "propertyNames": {}}},
                "opt": {"type": ["string", "null"]},
                "unit": {"type": ["string", "null"], "enum": ["c", "f", null]},
                "level": {"enum": [1, 2]},
                "pick": {"oneOf": [{"type": "string"}, {"type": "integer", "additionalProperties": true}]}
            },
            "required": ["city"]
        });
        let out = for_gemini(&schema).unwrap();
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1},
                    "when": {"type": "string", "format": "date-time"},
                    "n": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["x"]}},
                    "opt": {"type": "string", "nullable": true},
                    "unit": {"type": "string", "nullable": true, "enum": ["c", "f"]},
                    "level": {"type": "string", "enum": ["1", "2"]},
                    "pick": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn refs_are_inlined_and_all_of_merged() {
        let schema = json!({
            "type": "object",
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
            "properties": {
                "at": {"$ref": "#/$defs/Point", "description": "where"},
                "both": {"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "string"}}, "required": ["b"]}
                ]}
            }
        });
        let out = for_gemini(&schema).unwrap();
        assert_eq!(
            out["properties"]["at"],
            json!({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"], "description": "where"})
        );
        assert_eq!(
            out["properties"]["both"],
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]})
        );
        assert!(out.get("$defs").is_none());
    }

    #[test]
    fn recursive_refs_and_bad_refs_are_clear_errors() {
        let recursive = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node"
        });
        let err = for_gemini(&recursive).unwrap_err().to_string();
        assert!(err.contains("deeper than"), "{err}");
        let remote = json!({"$ref": "https://example.com/schema.json"});
        assert!(
            for_gemini(&remote)
                .unwrap_err()
                .to_string()
                .contains("not a local")
        );
        let missing = json!({"$ref": "#/$defs/Nope"});
        assert!(
            for_gemini(&missing)
                .unwrap_err()
                .to_string()
                .contains("names no definition")
        );
    }
}
