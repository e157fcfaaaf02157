//! Dynamo-compatible frames (being written).
