//! net (runtime; see docs/ARCHITECTURE.md).
