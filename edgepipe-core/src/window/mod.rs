//! Windows and edge analytics (being written).
