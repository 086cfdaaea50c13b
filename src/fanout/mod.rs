//! fanout (runtime; see docs/ARCHITECTURE.md).
