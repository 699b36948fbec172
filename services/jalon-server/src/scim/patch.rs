//! PATCH (RFC 7644 §3.5.2) on a resource's JSON representation: the
//! operations are applied in order to the document the server renders, and
//! the result is read back as a PUT body would be, so that a PATCH is all
//! or nothing. Written for what identity providers send: operation names
//! in any case (Entra's "Replace"), `replace` without a path whose keys are
//! paths (`name.givenName`), value filters (`members[value eq "…"]`,
//! `emails[type eq "work"].value`), and `remove` of members listed in the
//! value.

use serde_json::{Map, Value};

use super::{ScimError, filter};

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Kind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Add,
    Replace,
    Remove,
}

/// What the resource's schema says, for paths.
pub struct Schema<'a> {
    /// The core schema URN (stripped from paths).
    pub core: &'a str,
    /// Extension URNs (their attributes live in an object under the URN).
    pub extensions: &'a [&'a str],
    /// Attributes no operation may touch (lowercased): `id`, `meta`, ...
    pub read_only: &'a [&'a str],
    /// Multi-valued attributes (lowercased): `add` appends to them.
    pub multi_valued: &'a [&'a str],
    /// The canonical spelling of each attribute (any case in, this out).
    pub canonical: &'a [&'a str],
}

impl Schema<'_> {
    fn canonical(&self, name: &str) -> String {
        self.canonical
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name))
            .map_or_else(|| name.to_owned(), |c| (*c).to_owned())
    }
}

/// Reads the body of a PATCH request.
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let ops = filter::get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", "a PatchOp body has an Operations array")
        })?;
    if ops.is_empty() {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "Operations must not be empty",
        ));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let name = filter::get_ci(op, "op")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = match name.to_ascii_lowercase().as_str() {
                "add" => Kind::Add,
                "replace" => Kind::Replace,
                "remove" => Kind::Remove,
                _ => {
                    return Err(ScimError::bad_request(
                        "invalidSyntax",
                        format!("Operations[{i}].op must be add, replace or remove, not {name:?}"),
                    ));
                }
            };
            let path = match filter::get_ci(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(p.trim().to_owned()),
                Some(_) => {
                    return Err(ScimError::bad_request(
                        "invalidPath",
                        format!("Operations[{i}].path must be a string"),
                    ));
                }
            };
            let value = filter::get_ci(op, "value").cloned();
            if kind != Kind::Remove && value.is_none() {
                return Err(ScimError::bad_request(
                    "invalidValue",
                    format!("Operations[{i}].value is required by {name}"),
                ));
            }
            if kind == Kind::Remove && path.is_none() {
                return Err(ScimError::bad_request(
                    "noTarget",
                    format!("Operations[{i}].path is required by remove"),
                ));
            }
            Ok(Operation {
                op: kind,
                path,
                value,
            })
        })
        .collect()
}

/// Where a path points.
#[derive(Debug)]
struct Target {
    /// The extension object holding the attribute, if any.
    extension: Option<String>,
    /// The attribute; `None` for the extension object itself.
    attr: Option<String>,
    filter: Option<filter::Raw>,
    sub: Option<String>,
}

fn invalid_path(path: &str, why: &str) -> ScimError {
    ScimError::bad_request("invalidPath", format!("{path:?}: {why}"))
}

fn parse_path(path: &str, schema: &Schema<'_>) -> Result<Target, ScimError> {
    let mut rest = path;
    let mut extension = None;
    if rest.to_ascii_lowercase().starts_with("urn:") {
        let lower = rest.to_ascii_lowercase();
        let core = schema.core.to_ascii_lowercase();
        if let Some(after) = lower.strip_prefix(&format!("{core}:")) {
            rest = &rest[rest.len() - after.len()..];
        } else if let Some(ext) = schema
            .extensions
            .iter()
            .find(|e| lower.starts_with(&e.to_ascii_lowercase()))
        {
            extension = Some((*ext).to_owned());
            let after = &rest[ext.len()..];
            if after.is_empty() {
                return Ok(Target {
                    extension,
                    attr: None,
                    filter: None,
                    sub: None,
                });
            }
            rest = after
                .strip_prefix(':')
                .ok_or_else(|| invalid_path(path, "unknown schema"))?;
        } else {
            return Err(invalid_path(path, "unknown schema"));
        }
    }
    let end = rest.find(['[', '.']).unwrap_or(rest.len());
    let attr = &rest[..end];
    if attr.is_empty() {
        return Err(invalid_path(path, "no attribute"));
    }
    let mut tail = &rest[end..];
    let mut value_filter = None;
    if let Some(inner) = tail.strip_prefix('[') {
        let close = inner
            .rfind(']')
            .ok_or_else(|| invalid_path(path, "a bracket is not closed"))?;
        value_filter = Some(filter::parse(&inner[..close])?);
        tail = &inner[close + 1..];
    }
    let sub = match tail {
        "" => None,
        t => Some(
            t.strip_prefix('.')
                .filter(|s| !s.is_empty() && !s.contains(['.', '[']))
                .ok_or_else(|| invalid_path(path, "unexpected characters"))?
                .to_owned(),
        ),
    };
    if extension.is_none()
        && schema
            .read_only
            .contains(&attr.to_ascii_lowercase().as_str())
    {
        return Err(ScimError::bad_request(
            "mutability",
            format!("{attr} is read-only"),
        ));
    }
    Ok(Target {
        extension,
        attr: Some(schema.canonical(attr)),
        filter: value_filter,
        sub: sub.map(|s| schema.canonical(&s)),
    })
}

fn key_ci(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

/// The object at `key` of `object`, made one when absent or not one.
fn object_at<'m>(
    object: &'m mut Map<String, Value>,
    key: &str,
) -> Result<&'m mut Map<String, Value>, ScimError> {
    let key = key_ci(object, key).unwrap_or_else(|| key.to_owned());
    let slot = object
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| ScimError::internal("an attribute could not be made an object"))
}

fn set(object: &mut Map<String, Value>, name: &str, value: Value) {
    let key = key_ci(object, name).unwrap_or_else(|| name.to_owned());
    object.insert(key, value);
}

fn remove(object: &mut Map<String, Value>, name: &str) {
    if let Some(key) = key_ci(object, name) {
        object.remove(&key);
    }
}

fn same_element(a: &Value, b: &Value) -> bool {
    match (filter::get_ci(a, "value"), filter::get_ci(b, "value")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// Merges `value`'s keys into `object` (a complex attribute's add or
/// replace: sub-attributes not given are left unchanged).
fn merge(object: &mut Map<String, Value>, value: Map<String, Value>) {
    for (k, v) in value {
        set(object, &k, v);
    }
}

/// Applies the operations to `doc` (a JSON object), in order.
pub fn apply(doc: &mut Value, ops: &[Operation], schema: &Schema<'_>) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            Some(path) => apply_one(doc, op.op, path, op.value.clone(), schema)?,
            None => {
                // add / replace without a path: an object whose keys are
                // paths (Entra: "name.givenName", the enterprise URN).
                let Some(Value::Object(fields)) = op.value.clone() else {
                    return Err(ScimError::bad_request(
                        "invalidValue",
                        "an operation without a path takes an object value",
                    ));
                };
                for (key, value) in fields {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    apply_one(doc, op.op, &key, Some(value), schema)?;
                }
            }
        }
    }
    Ok(())
}

fn apply_one(
    doc: &mut Value,
    kind: Kind,
    path: &str,
    value: Option<Value>,
    schema: &Schema<'_>,
) -> Result<(), ScimError> {
    let target = parse_path(path, schema)?;
    let Value::Object(root) = doc else {
        return Err(ScimError::internal("the resource is not an object"));
    };
    let container: &mut Map<String, Value> = match &target.extension {
        Some(ext) => {
            if target.attr.is_none() {
                // The extension object itself.
                match (kind, value) {
                    (Kind::Remove, _) => remove(root, ext),
                    (_, Some(Value::Object(fields))) => {
                        let object = object_at(root, ext)?;
                        for (k, v) in fields {
                            apply_one_in(
                                object,
                                kind,
                                &schema.canonical(&k),
                                None,
                                None,
                                Some(v),
                                schema,
                            )?;
                        }
                    }
                    _ => {
                        return Err(ScimError::bad_request(
                            "invalidValue",
                            format!("{ext} takes an object"),
                        ));
                    }
                }
                return Ok(());
            }
            object_at(root, ext)?
        }
        None => root,
    };
    let attr = target.attr.unwrap_or_default();
    apply_one_in(
        container,
        kind,
        &attr,
        target.filter.as_ref(),
        target.sub.as_deref(),
        value,
        schema,
    )
}

fn apply_one_in(
    container: &mut Map<String, Value>,
    kind: Kind,
    attr: &str,
    value_filter: Option<&filter::Raw>,
    sub: Option<&str>,
    value: Option<Value>,
    schema: &Schema<'_>,
) -> Result<(), ScimError> {
    let multi = schema
        .multi_valued
        .contains(&attr.to_ascii_lowercase().as_str());
    if let Some(f) = value_filter {
        let key = key_ci(container, attr).unwrap_or_else(|| attr.to_owned());
        let elements = container
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !elements.is_array() {
            *elements = Value::Array(Vec::new());
        }
        let Value::Array(items) = elements else {
            return Ok(());
        };
        match kind {
            Kind::Remove => {
                if let Some(sub) = sub {
                    for item in items.iter_mut().filter(|i| filter::matches(i, f)) {
                        if let Value::Object(o) = item {
                            remove(o, sub);
                        }
                    }
                } else {
                    items.retain(|i| !filter::matches(i, f));
                }
            }
            Kind::Add | Kind::Replace => {
                let value = value.unwrap_or(Value::Null);
                let mut matched = false;
                for item in items.iter_mut().filter(|i| filter::matches(i, f)) {
                    matched = true;
                    match (sub, item) {
                        (Some(sub), Value::Object(o)) => set(o, sub, value.clone()),
                        (None, Value::Object(o)) => match value.clone() {
                            Value::Object(fields) => merge(o, fields),
                            other => set(o, "value", other),
                        },
                        (_, item) => *item = value.clone(),
                    }
                }
                if !matched {
                    // `emails[type eq "work"].value` on a user without a
                    // work address: the element is made.
                    let filter::Raw::Compare(on, filter::Op::Eq, wanted) = f else {
                        return Err(ScimError::bad_request(
                            "noTarget",
                            format!("no {attr} value matches the filter"),
                        ));
                    };
                    let mut element = Map::new();
                    element.insert(schema.canonical(on), wanted.clone());
                    match (sub, value) {
                        (Some(sub), v) => {
                            element.insert(sub.to_owned(), v);
                        }
                        (None, Value::Object(fields)) => merge(&mut element, fields),
                        (None, v) => {
                            element.insert("value".into(), v);
                        }
                    }
                    items.push(Value::Object(element));
                }
            }
        }
        return Ok(());
    }
    if let Some(sub) = sub {
        match kind {
            Kind::Remove => {
                if let Some(key) = key_ci(container, attr) {
                    match container.get_mut(&key) {
                        Some(Value::Object(o)) => remove(o, sub),
                        Some(Value::Array(items)) => {
                            for item in items {
                                if let Value::Object(o) = item {
                                    remove(o, sub);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Kind::Add | Kind::Replace => {
                let value = value.unwrap_or(Value::Null);
                if multi {
                    // `emails.value`: every element's.
                    let key = key_ci(container, attr).unwrap_or_else(|| attr.to_owned());
                    let slot = container
                        .entry(key)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    match slot {
                        Value::Array(items) if !items.is_empty() => {
                            for item in items {
                                if let Value::Object(o) = item {
                                    set(o, sub, value.clone());
                                }
                            }
                        }
                        _ => {
                            let mut element = Map::new();
                            element.insert(sub.to_owned(), value);
                            *slot = Value::Array(vec![Value::Object(element)]);
                        }
                    }
                } else {
                    set(object_at(container, attr)?, sub, value);
                }
            }
        }
        return Ok(());
    }
    match kind {
        Kind::Remove => match (value, multi) {
            // Entra's member removal: the members to remove in the value.
            (Some(Value::Array(gone)), true) => {
                if let Some(key) = key_ci(container, attr)
                    && let Some(Value::Array(items)) = container.get_mut(&key)
                {
                    items.retain(|i| !gone.iter().any(|g| same_element(i, g)));
                }
            }
            (Some(Value::Object(one)), true) => {
                let gone = Value::Object(one);
                if let Some(key) = key_ci(container, attr)
                    && let Some(Value::Array(items)) = container.get_mut(&key)
                {
                    items.retain(|i| !same_element(i, &gone));
                }
            }
            _ => remove(container, attr),
        },
        Kind::Add if multi => {
            let new: Vec<Value> = match value {
                Some(Value::Array(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(one) => vec![one],
            };
            let key = key_ci(container, attr).unwrap_or_else(|| attr.to_owned());
            let slot = container
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                for item in new {
                    if !items.iter().any(|i| same_element(i, &item)) {
                        items.push(item);
                    }
                }
            }
        }
        Kind::Add | Kind::Replace => match value {
            Some(Value::Object(fields)) if !multi => {
                let existing_is_object = key_ci(container, attr)
                    .and_then(|k| container.get(&k))
                    .is_some_and(Value::is_object);
                if existing_is_object {
                    merge(object_at(container, attr)?, fields);
                } else {
                    set(container, attr, Value::Object(fields));
                }
            }
            Some(v) if multi && !v.is_array() && !v.is_null() => {
                set(container, attr, Value::Array(vec![v]))
            }
            Some(v) => set(container, attr, v),
            None => {}
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCHEMA: Schema<'static> = Schema {
        core: "urn:ietf:params:scim:schemas:core:2.0:User",
        extensions: &["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        read_only: &["id", "meta", "groups"],
        multi_valued: &["emails", "members"],
        canonical: &[
            "userName",
            "name",
            "givenName",
            "familyName",
            "active",
            "emails",
            "members",
            "value",
            "type",
            "department",
            "manager",
        ],
    };

    fn run(doc: Value, body: Value) -> Result<Value, ScimError> {
        let mut doc = doc;
        apply(&mut doc, &parse(&body)?, &SCHEMA)?;
        Ok(doc)
    }

    #[test]
    fn entra_replace_without_path_takes_dotted_keys_and_capitals() {
        let doc =
            json!({"userName": "a", "name": {"givenName": "A", "familyName": "B"}, "active": true});
        let out = run(
            doc,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "value": {"name.givenName": "Ada", "active": "False"}}
            ]}),
        )
        .unwrap();
        assert_eq!(out["name"], json!({"givenName": "Ada", "familyName": "B"}));
        assert_eq!(out["active"], json!("False"));
    }

    #[test]
    fn members_are_added_once_and_removed_by_filter_or_value() {
        let doc = json!({"displayName": "g", "members": [{"value": "1"}]});
        let out = run(
            doc,
            json!({"Operations": [
                {"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}, {"value": "3"}]},
                {"op": "remove", "path": "members[value eq \"2\"]"},
                {"op": "Remove", "path": "members", "value": [{"value": "3"}]}
            ]}),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "1"}]));
    }

    #[test]
    fn value_paths_set_sub_attributes_and_make_missing_elements() {
        let doc = json!({"emails": [{"type": "work", "value": "a@x.io"}]});
        let out = run(
            doc,
            json!({"Operations": [
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.io"},
                {"op": "add", "path": "emails[type eq \"home\"].value", "value": "c@x.io"}
            ]}),
        )
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{"type": "work", "value": "b@x.io"}, {"type": "home", "value": "c@x.io"}])
        );
    }

    #[test]
    fn extension_paths_reach_the_extension_object() {
        let doc = json!({"userName": "a"});
        let out = run(
            doc,
            json!({"Operations": [
                {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
                {"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "m"}}}
            ]}),
        )
        .unwrap();
        assert_eq!(
            out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "R&D", "manager": {"value": "m"}})
        );
    }

    #[test]
    fn bad_operations_are_refused_with_their_scim_type() {
        let doc = json!({"userName": "a"});
        let e = run(
            doc.clone(),
            json!({"Operations": [{"op": "move", "path": "a"}]}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"));
        let e = run(doc.clone(), json!({"Operations": [{"op": "remove"}]})).unwrap_err();
        assert_eq!(e.scim_type, Some("noTarget"));
        let e = run(
            doc.clone(),
            json!({"Operations": [{"op": "replace", "path": "id", "value": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("mutability"));
        let e = run(
            doc,
            json!({"Operations": [{"op": "replace", "path": "urn:x:y", "value": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidPath"));
    }
}
