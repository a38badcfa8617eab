//! The Docker driver (being written).
