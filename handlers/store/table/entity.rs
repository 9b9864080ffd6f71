//! Entity shapes: how ids become PartitionKey/RowKey text, how long JSON documents are
//! split across string properties, and OData filter literals.

use super::super::StoreError;
use serde_json::Value;

/// A table entity as the JSON object the service sends and takes.
pub(crate) type Entity = serde_json::Map<String, Value>;

/// Characters of one string property: the service allows 64 KiB (32K UTF-16 units).
const CHUNK_UTF16: usize = 30_000;
/// Ids longer than this once encoded are keyed by their hash (keys may be 1 KiB at most).
const MAX_ENCODED: usize = 400;

/// Key-safe text for an arbitrary id: ASCII letters, digits, `-`, `_` and `.` stay, every
/// other byte becomes `~HH`. Injective, and free of `/ \ # ?`, quotes and control
/// characters, so keys go into URLs and filters as they are. Very long ids become `~h` and
/// their SHA-256 (an encoded id never contains `~h`).
pub(crate) fn key(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02X}"));
        }
    }
    if out.len() > MAX_ENCODED {
        use sha2::Digest;
        return format!("~h{}", hex::encode(sha2::Sha256::digest(id.as_bytes())));
    }
    out
}

/// A new entity with its keys.
pub(crate) fn entity(partition: &str, row: &str) -> Entity {
    let mut entity = Entity::new();
    entity.insert("PartitionKey".into(), Value::String(partition.into()));
    entity.insert("RowKey".into(), Value::String(row.into()));
    entity
}

/// Stores `text` as `{name}0`, `{name}1`, … each within the property size limit.
pub(crate) fn put_text(entity: &mut Entity, name: &str, text: &str) {
    let mut part = String::new();
    let mut units = 0;
    let mut index = 0;
    for c in text.chars() {
        if units + c.len_utf16() > CHUNK_UTF16 {
            entity.insert(
                format!("{name}{index}"),
                Value::String(std::mem::take(&mut part)),
            );
            index += 1;
            units = 0;
        }
        units += c.len_utf16();
        part.push(c);
    }
    entity.insert(format!("{name}{index}"), Value::String(part));
}

/// Reads back what [`put_text`] stored.
pub(crate) fn get_text(entity: &Entity, name: &str) -> Result<String, StoreError> {
    let mut text = String::new();
    let mut index = 0;
    while let Some(part) = entity.get(&format!("{name}{index}")) {
        text.push_str(part.as_str().ok_or_else(|| {
            StoreError::Backend(format!("property {name}{index} is not a string"))
        })?);
        index += 1;
    }
    if index == 0 {
        return Err(StoreError::Backend(format!(
            "entity has no {name}0 property"
        )));
    }
    Ok(text)
}

/// Stores a value as JSON text in `Doc0`, `Doc1`, ….
pub(crate) fn put_doc<T: serde::Serialize>(
    entity: &mut Entity,
    value: &T,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(value).map_err(StoreError::from)?;
    put_text(entity, "Doc", &text);
    Ok(())
}

/// Reads a value stored with [`put_doc`].
pub(crate) fn get_doc<T: serde::de::DeserializeOwned>(entity: &Entity) -> Result<T, StoreError> {
    serde_json::from_str(&get_text(entity, "Doc")?)
        .map_err(|e| StoreError::unreadable("stored document", e))
}

/// A string property.
pub(crate) fn string(entity: &Entity, name: &str) -> Result<String, StoreError> {
    entity
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| StoreError::Backend(format!("entity has no string property {name}")))
}

/// An OData string literal: quoted, with quotes doubled.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The resource path of one entity: `Table(PartitionKey='…',RowKey='…')`.
pub(crate) fn entity_path(table: &str, partition: &str, row: &str) -> String {
    format!(
        "{table}(PartitionKey={},RowKey={})",
        literal(partition),
        literal(row)
    )
}

/// A filter for the rows of one partition whose RowKey starts with `prefix`.
pub(crate) fn prefix_filter(partition: &str, prefix: &str) -> String {
    let mut end = prefix.to_string();
    // every prefix ends with an ASCII character below 0x7F; the next one bounds the range
    let last = end
        .pop()
        .map(|c| char::from_u32(c as u32 + 1).unwrap_or(c))
        .unwrap_or('~');
    end.push(last);
    format!(
        "PartitionKey eq {} and RowKey ge {} and RowKey lt {}",
        literal(partition),
        literal(prefix),
        literal(&end)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_safe_and_distinct() {
        assert_eq!(key("r-1"), "r-1");
        assert_eq!(key("r:extra/1"), "r~3Aextra~2F1");
        assert_eq!(key("~"), "~7E");
        assert_ne!(key("a~3A"), key("a:"));
        let long = "x".repeat(500);
        assert!(key(&long).starts_with("~h") && key(&long).len() < 100);
        assert!(key("é #?'")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)));
    }

    #[test]
    fn long_text_is_split_and_joined() {
        let text: String = "ab€😀".repeat(20_000);
        let mut e = entity("p", "r");
        put_text(&mut e, "Doc", &text);
        assert!(e.len() > 4, "split across several properties");
        for (name, value) in &e {
            if name.starts_with("Doc") {
                let units: usize = value.as_str().expect("string").encode_utf16().count();
                assert!(units <= CHUNK_UTF16);
            }
        }
        assert_eq!(get_text(&e, "Doc").expect("text"), text);
        let mut short = entity("p", "r");
        put_text(&mut short, "Doc", "");
        assert_eq!(get_text(&short, "Doc").expect("text"), "");
    }

    #[test]
    fn filters_quote_and_bound_prefixes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(
            prefix_filter("p", "audit_"),
            "PartitionKey eq 'p' and RowKey ge 'audit_' and RowKey lt 'audit`'"
        );
    }
}
