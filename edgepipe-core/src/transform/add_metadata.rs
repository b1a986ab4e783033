//! `add_metadata`: merge static labels into every record's metadata.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Transform, Verdict};
use crate::record::{CompactString, DataRecord, Metadata};

/// Sets each label on every record, replacing an existing value for the same key
/// (the seed's `{**record.metadata, **metadata}`).
#[derive(Clone, Debug)]
pub struct AddMetadata {
    labels: Metadata,
}

impl AddMetadata {
    /// Labels to set, in order.
    pub fn new<K: Into<CompactString> + AsRef<str>, V: Into<CompactString>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        AddMetadata {
            labels: labels
                .into_iter()
                .map(|(key, value)| (key, value.into()))
                .collect(),
        }
    }
}

impl Transform for AddMetadata {
    fn name(&self) -> &str {
        "add_metadata"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        for (key, value) in self.labels.iter() {
            match record.metadata.get_mut(key) {
                Some(existing) => existing.clone_from(value),
                None => {
                    record.metadata.insert(key, value.clone());
                }
            }
        }
        Verdict::Keep
    }
}

/// `{"type": "add_metadata", "metadata": {"region": "us-west"}}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Labels to set. Applied in key order (a config map carries no order).
    pub metadata: BTreeMap<String, String>,
}

impl Config {
    pub(crate) fn build(&self) -> AddMetadata {
        AddMetadata::new(
            self.metadata
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    #[test]
    fn merges_and_overrides_like_the_seed() {
        let mut input = record();
        input.metadata.insert("site", "old".into());
        input.metadata.insert("keep", "yes".into());
        let mut transform = AddMetadata::new([("region", "us-west"), ("site", "factory-1")]);
        assert_eq!(transform.apply(&mut input), Verdict::Keep);
        let pairs: Vec<_> = input
            .metadata
            .iter()
            .map(|(key, value)| (key, value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("site", "factory-1"),
                ("keep", "yes"),
                ("region", "us-west")
            ]
        );
    }
}
