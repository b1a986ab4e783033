//! Payload values and the small ordered maps that hold payloads and metadata.

use std::fmt;

use compact_str::CompactString;

/// One payload value: anything JSON can carry.
///
/// Integers that fit in an `i64` are [`Value::Int`]; only integers above
/// `i64::MAX` (up to `u64::MAX`) are [`Value::UInt`]. Integers beyond `u64` have no
/// exact representation and are read as the nearest float, as JavaScript does.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// JSON `null` (Python `None`).
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A 64-bit float; NaN and infinities are allowed in memory but not in JSON output.
    Float(f64),
    /// A UTF-8 string (inline up to 24 bytes).
    String(CompactString),
    /// A JSON array.
    List(Vec<Value>),
    /// A JSON object, in insertion order.
    Map(FieldMap<Value>),
}

impl Value {
    /// The value as a float, for numbers (not booleans).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(value) => Some(value as f64),
            Value::UInt(value) => Some(value as f64),
            Value::Float(value) => Some(value),
            _ => None,
        }
    }

    /// The value as a float, for numbers that are finite: what numeric
    /// transforms (anomaly, rolling) take, skipping NaN and infinities.
    pub fn as_finite_f64(&self) -> Option<f64> {
        self.as_f64().filter(|number| number.is_finite())
    }

    /// The string inside a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// True for integers and floats (booleans are not numbers here, unlike Python).
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::UInt(_) | Value::Float(_))
    }

    /// The JSON-ish name of the value's type, used in error messages and schemas.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) | Value::UInt(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::String(_) => ValueKind::String,
            Value::List(_) => ValueKind::List,
            Value::Map(_) => ValueKind::Map,
        }
    }

    /// Builds an integer value, choosing [`Value::UInt`] only when it must.
    pub fn from_u64(value: u64) -> Value {
        match i64::try_from(value) {
            Ok(signed) => Value::Int(signed),
            Err(_) => Value::UInt(value),
        }
    }
}

/// The type of a [`Value`], as named in schemas and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// `null`
    Null,
    /// `bool`
    Bool,
    /// `int`
    Int,
    /// `float`
    Float,
    /// `string`
    String,
    /// `list`
    List,
    /// `map`
    Map,
}

impl ValueKind {
    /// The lowercase name used in configs (`"float"`, `"int"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool => "bool",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::String => "string",
            ValueKind::List => "list",
            ValueKind::Map => "map",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Value::from_u64(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(CompactString::from(value))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::String(CompactString::from(value))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// A map from field name to value that keeps insertion order, like a Python dict.
///
/// Backed by a vector: telemetry payloads have a handful of fields, where a
/// linear scan beats hashing, and order must survive a round trip so that
/// edgepipe writes a record's JSON in the order it was read. Lookups are linear
/// in the number of fields.
#[derive(Clone, PartialEq)]
pub struct FieldMap<V> {
    entries: Vec<(CompactString, V)>,
}

/// A record's payload: field name to [`Value`].
pub type Payload = FieldMap<Value>;

/// A record's metadata: string keys to string values.
pub type Metadata = FieldMap<CompactString>;

impl<V> Default for FieldMap<V> {
    fn default() -> Self {
        FieldMap {
            entries: Vec::new(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for FieldMap<V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_map()
            .entries(self.entries.iter().map(|(key, value)| (key, value)))
            .finish()
    }
}

impl<V> FieldMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        FieldMap {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(name, _)| name == key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// The value of `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.entries
            .iter_mut()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key`, keeping its position if it exists (as a Python dict does) and
    /// appending otherwise. Returns the previous value.
    pub fn insert(&mut self, key: impl Into<CompactString> + AsRef<str>, value: V) -> Option<V> {
        match self.position(key.as_ref()) {
            Some(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            None => {
                self.entries.push((key.into(), value));
                None
            }
        }
    }

    /// Appends without looking for an existing key. Callers must know the key is new.
    pub(crate) fn push_unchecked(&mut self, key: CompactString, value: V) {
        self.entries.push((key, value));
    }

    /// Removes `key`, keeping the order of the rest.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.position(key).map(|index| self.entries.remove(index).1)
    }

    /// Keeps only the fields for which `keep` returns true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.entries.retain_mut(|(key, value)| keep(key, value));
    }

    /// Fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &V)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value))
    }

    /// Fields in order, values mutable.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut V)> {
        self.entries
            .iter_mut()
            .map(|(key, value)| (key.as_str(), value))
    }

    /// Field names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    /// Field names, mutably, for renaming in place. Callers keep names unique.
    pub(crate) fn keys_mut(&mut self) -> impl Iterator<Item = &mut CompactString> {
        self.entries.iter_mut().map(|(key, _)| key)
    }

    /// Removes later duplicates of each key, keeping the first position and the
    /// last value (what a Python dict does with repeated keys).
    pub(crate) fn dedup_keys_keep_last(&mut self) {
        let mut index = 0;
        while index < self.entries.len() {
            let mut later = index + 1;
            while later < self.entries.len() {
                if self.entries[later].0 == self.entries[index].0 {
                    let (_, value) = self.entries.remove(later);
                    self.entries[index].1 = value;
                } else {
                    later += 1;
                }
            }
            index += 1;
        }
    }
}

impl<K: Into<CompactString> + AsRef<str>, V> FromIterator<(K, V)> for FieldMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = FieldMap::new();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

impl<V> IntoIterator for FieldMap<V> {
    type Item = (CompactString, V);
    type IntoIter = std::vec::IntoIter<(CompactString, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for FieldMap<V> {
    /// Reads a JSON/TOML object keeping the order of its keys; a repeated key keeps
    /// its first position and its last value.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for MapVisitor<V> {
            type Value = FieldMap<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<FieldMap<V>, A::Error> {
                let mut map = FieldMap::with_capacity(access.size_hint().unwrap_or(0).min(1024));
                while let Some((key, value)) = access.next_entry::<CompactString, V>()? {
                    map.insert(key, value);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_the_position_of_an_existing_key() {
        let mut map: Payload = [("a", Value::Int(1)), ("b", Value::Int(2))]
            .into_iter()
            .collect();
        assert_eq!(map.insert("a", Value::Int(3)), Some(Value::Int(1)));
        map.insert("c", Value::Null);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(map.get("a"), Some(&Value::Int(3)));
        assert_eq!(map.remove("b"), Some(Value::Int(2)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        let mut map = FieldMap::new();
        for (key, value) in [("x", 1), ("y", 2), ("x", 3), ("x", 4)] {
            map.push_unchecked(key.into(), value);
        }
        map.dedup_keys_keep_last();
        assert_eq!(map.iter().collect::<Vec<_>>(), [("x", &4), ("y", &2)]);
    }
}
