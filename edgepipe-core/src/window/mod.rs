//! Windows and edge analytics: readings in, aggregate records out.
//!
//! The stage after the transforms. Readings are grouped per series
//! (`device_id`, `data_type`, optionally the field) into windows of event time (or the caller's
//! clock), and each window is emitted once as an ordinary [`DataRecord`](crate::DataRecord)
//! with `{field}.{aggregate}` payload fields and a deterministic id.
//!
//! | file          | what it holds                                                           |
//! | ------------- | ----------------------------------------------------------------------- |
//! | [`aggregate`] | [`Aggregate`] functions and the mergeable [`FieldState`] behind them      |
//! | [`sketch`]    | [`Sketch`], a DDSketch: quantiles within a relative error, mergeable     |
//! | [`assigner`]  | [`WindowKind`]: tumbling, hopping, session, count                       |
//! | `operator`    | [`WindowOperator`]: series, watermarks, lateness, idle timeout, flush, bounds, snapshots |
//! | `config`      | [`WindowConfig`]: the declarative form (the `window` table of a pipeline config) |
//! | `stage`       | [`WindowedPipeline`]: transforms, then a window                         |
//!
//! Time is driven by the caller ([`WindowOperator::advance_to`]), never read
//! from the system, so every run is reproducible. The guide's `docs/windows.md`
//! documents the output records, the late-data policies and the memory bounds.

pub mod aggregate;
pub mod assigner;
mod config;
mod operator;
pub mod sketch;
mod stage;

pub use aggregate::{Aggregate, FieldState};
pub use assigner::WindowKind;
pub use config::{
    DEFAULT_MAX_FIELDS, DEFAULT_MAX_SERIES, DEFAULT_MAX_WINDOWS_PER_SERIES, InputKind, KindName,
    LatePolicy, TimeMode, WindowConfig,
};
pub use operator::{
    Rejected, SNAPSHOT_FORMAT, WindowOperator, WindowOutput, WindowSnapshot, WindowStats,
};
pub use sketch::Sketch;
pub use stage::WindowedPipeline;
