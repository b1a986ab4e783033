//! Placeholder while this transform is written; replaced before commit.
use crate::error::{Error, Result};

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Config {}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<super::AddMetadata> {
        Err(Error::config(key, "placeholder"))
    }
}
pub struct Deadband;
