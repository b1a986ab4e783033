//! Batches: split, encode, compress, checksum (being written).
