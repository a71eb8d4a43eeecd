//! reset (stub, being written)
