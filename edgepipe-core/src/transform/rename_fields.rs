//! `rename_fields`: rename payload fields.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{CompactString, DataRecord};

/// Renames payload fields by a mapping, keeping their positions.
///
/// When a new name collides with another field, the result is what the seed's
/// dict rebuild gives: the name keeps the first position it reached and the
/// value that came last in payload order.
#[derive(Clone, Debug)]
pub struct RenameFields {
    mapping: Vec<(CompactString, CompactString)>,
}

impl RenameFields {
    /// `(old, new)` pairs.
    pub fn new<A: Into<CompactString>, B: Into<CompactString>>(
        mapping: impl IntoIterator<Item = (A, B)>,
    ) -> Self {
        RenameFields {
            mapping: mapping
                .into_iter()
                .map(|(old, new)| (old.into(), new.into()))
                .collect(),
        }
    }
}

impl Transform for RenameFields {
    fn name(&self) -> &str {
        "rename_fields"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let mut renamed = false;
        for key in record.payload.keys_mut() {
            if let Some((_, new)) = self.mapping.iter().find(|(old, _)| old == key) {
                key.clone_from(new);
                renamed = true;
            }
        }
        if renamed {
            record.payload.dedup_keys_keep_last();
        }
        Verdict::Keep
    }
}

/// `{"type": "rename_fields", "mapping": {"temperature": "temp_c"}}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Old name to new name.
    pub mapping: BTreeMap<String, String>,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<RenameFields> {
        if let Some((old, _)) = self.mapping.iter().find(|(_, new)| new.is_empty()) {
            return Err(Error::config(
                format!("{key}.mapping.{old}"),
                "the new name is empty",
            ));
        }
        Ok(RenameFields::new(
            self.mapping
                .iter()
                .map(|(old, new)| (old.as_str(), new.as_str())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use crate::transform::tests::record;

    #[test]
    fn renames_in_place() {
        let mut input = record();
        RenameFields::new([("temperature", "temp_c"), ("absent", "x")]).apply(&mut input);
        assert_eq!(
            input.payload.keys().collect::<Vec<_>>(),
            ["temp_c", "humidity", "pressure"]
        );
    }

    #[test]
    fn collisions_resolve_like_a_python_dict_rebuild() {
        let mut input = record();
        // temperature -> humidity collides with the existing humidity, which comes later.
        RenameFields::new([("temperature", "humidity")]).apply(&mut input);
        assert_eq!(
            input.payload.keys().collect::<Vec<_>>(),
            ["humidity", "pressure"]
        );
        assert_eq!(input.payload.get("humidity"), Some(&Value::Float(50.3)));
    }
}
