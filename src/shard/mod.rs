//! shard (runtime; see docs/ARCHITECTURE.md).
