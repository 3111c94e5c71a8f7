//! JSON ⇄ XPC, for the parts of replies that are plain data
//! (`network_info`, `status`).
//!
//! | JSON                     | XPC          |
//! |--------------------------|--------------|
//! | `null`                   | null         |
//! | `true` / `false`         | bool         |
//! | integer in `i64`         | int64        |
//! | integer above `i64::MAX` | uint64       |
//! | other number             | double       |
//! | string                   | string       |
//! | array                    | array        |
//! | object                   | dictionary   |
//!
//! The way back accepts the same types; a uint64 comes back as a JSON
//! integer, a non-finite double as `null`. Other XPC types (data, file
//! descriptors, connections, the opaque vmnet serialization) have no JSON
//! form and are an error.

use serde_json::{Map, Number, Value};

use super::object::{XpcDictionary, XpcObject, XpcType};
use super::{XpcError, shorten};
use crate::sys::xpc as sys;

/// The XPC form of a JSON value.
///
/// # Errors
///
/// [`XpcError::InteriorNul`] if a string or key holds a NUL byte.
pub fn from_json(value: &Value) -> Result<XpcObject, XpcError> {
    Ok(match value {
        Value::Null => XpcObject::null(),
        Value::Bool(b) => XpcObject::bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                XpcObject::int64(i)
            } else if let Some(u) = n.as_u64() {
                XpcObject::uint64(u)
            } else if let Some(f) = n.as_f64() {
                XpcObject::double(f)
            } else {
                return Err(XpcError::BadNumber(shorten(&n.to_string())));
            }
        }
        Value::String(s) => XpcObject::string(s)?,
        Value::Array(items) => {
            // SAFETY: (NULL, 0) creates an empty array (SDK xpc/xpc.h:
            // "This parameter may be NULL only if the count is 0").
            let raw = unsafe { sys::xpc_array_create(std::ptr::null(), 0) };
            // SAFETY: a +1 array (or NULL), ours alone until returned.
            let array = unsafe { XpcObject::from_owned(raw) }
                .ok_or_else(|| XpcError::Unsupported("array (allocation failed)".into()))?;
            for item in items {
                let element = from_json(item)?;
                // SAFETY: both objects are alive; the array retains the
                // element (SDK xpc/xpc.h) and is not yet shared.
                unsafe { sys::xpc_array_append_value(array.as_ptr(), element.as_ptr()) };
            }
            array
        }
        Value::Object(map) => {
            let mut dict = XpcDictionary::new();
            for (key, item) in map {
                dict.set_value(key, &from_json(item)?)?;
            }
            dict.into_object()
        }
    })
}

/// The JSON form of an XPC object.
///
/// # Errors
///
/// [`XpcError::Unsupported`] for types without a JSON form,
/// [`XpcError::NotUtf8`] for a string value that is not UTF-8. (Dictionary
/// keys that are not UTF-8 are skipped.)
pub fn to_json(object: &XpcObject) -> Result<Value, XpcError> {
    Ok(match object.kind() {
        XpcType::Null => Value::Null,
        XpcType::Bool => Value::Bool(object.as_bool().unwrap_or_default()),
        XpcType::Int64 => Value::from(object.as_i64().unwrap_or_default()),
        XpcType::UInt64 => Value::from(object.as_u64().unwrap_or_default()),
        XpcType::Double => object
            .as_f64()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number),
        XpcType::String => Value::String(object.as_string().ok_or(XpcError::NotUtf8)?),
        XpcType::Array => Value::Array(
            object
                .array_elements()
                .unwrap_or_default()
                .iter()
                .map(to_json)
                .collect::<Result<_, _>>()?,
        ),
        XpcType::Dictionary => {
            let mut map = Map::new();
            for (key, value) in object.dictionary_entries().unwrap_or_default() {
                map.insert(key, to_json(&value)?);
            }
            Value::Object(map)
        }
        _ => return Err(XpcError::Unsupported(object.type_name())),
    })
}
