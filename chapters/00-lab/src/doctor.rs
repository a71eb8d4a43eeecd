//! doctor (stub, being written)
