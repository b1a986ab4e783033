//! `filter_fields`: keep only the listed payload fields.

use serde::Deserialize;

use super::{Transform, Verdict};
use crate::record::DataRecord;

/// Keeps the payload fields named in the allow-list, in payload order; the rest
/// are removed. Records always pass (an empty payload is still a reading).
#[derive(Clone, Debug)]
pub struct FilterFields {
    allowed: Vec<String>,
}

impl FilterFields {
    /// The fields to keep.
    pub fn new<S: Into<String>>(allowed: impl IntoIterator<Item = S>) -> Self {
        FilterFields {
            allowed: allowed.into_iter().map(Into::into).collect(),
        }
    }
}

impl Transform for FilterFields {
    fn name(&self) -> &str {
        "filter_fields"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let allowed = &self.allowed;
        record
            .payload
            .retain(|key, _| allowed.iter().any(|name| name == key));
        Verdict::Keep
    }
}

/// `{"type": "filter_fields", "fields": ["temperature", "humidity"]}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload fields to keep.
    pub fields: Vec<String>,
}

impl Config {
    pub(crate) fn build(&self) -> FilterFields {
        FilterFields::new(self.fields.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    #[test]
    fn keeps_listed_fields_in_payload_order() {
        let mut input = record();
        FilterFields::new(["pressure", "temperature", "absent"]).apply(&mut input);
        assert_eq!(
            input.payload.keys().collect::<Vec<_>>(),
            ["temperature", "pressure"]
        );
    }
}
