//! `mask_sensitive_fields`: replace sensitive payload values with a mask.

use serde::Deserialize;

use super::{Transform, Verdict};
use crate::record::{CompactString, DataRecord, Value};

/// The seed's mask text.
pub const DEFAULT_MASK: &str = "***MASKED***";

/// Replaces the value of each listed field that is present with the mask string.
#[derive(Clone, Debug)]
pub struct MaskFields {
    fields: Vec<String>,
    mask: CompactString,
}

impl MaskFields {
    /// Masks `fields` with [`DEFAULT_MASK`].
    pub fn new<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Self {
        Self::with_mask(fields, DEFAULT_MASK)
    }

    /// Masks `fields` with `mask`.
    pub fn with_mask<S: Into<String>>(
        fields: impl IntoIterator<Item = S>,
        mask: impl Into<CompactString>,
    ) -> Self {
        MaskFields {
            fields: fields.into_iter().map(Into::into).collect(),
            mask: mask.into(),
        }
    }
}

impl Transform for MaskFields {
    fn name(&self) -> &str {
        "mask_sensitive_fields"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        for field in &self.fields {
            if let Some(value) = record.payload.get_mut(field) {
                *value = Value::String(self.mask.clone());
            }
        }
        Verdict::Keep
    }
}

/// `{"type": "mask_sensitive_fields", "fields": ["operator"], "mask": "***MASKED***"}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload fields to mask.
    pub fields: Vec<String>,
    /// The replacement text; the seed's `***MASKED***` by default.
    #[serde(default = "default_mask")]
    pub mask: String,
}

fn default_mask() -> String {
    DEFAULT_MASK.to_owned()
}

impl Config {
    pub(crate) fn build(&self) -> MaskFields {
        MaskFields::with_mask(self.fields.iter().cloned(), self.mask.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    #[test]
    fn masks_present_fields_only() {
        let mut input = record();
        MaskFields::new(["humidity", "absent"]).apply(&mut input);
        assert_eq!(
            input.payload.get("humidity"),
            Some(&Value::from(DEFAULT_MASK))
        );
        assert!(!input.payload.contains_key("absent"));
        assert_eq!(input.payload.len(), 3);
    }
}
