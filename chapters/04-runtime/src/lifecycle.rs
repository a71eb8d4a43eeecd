//! (being written)

/// The OCI runtime (being written).
#[derive(Debug)]
pub struct Runtime;
