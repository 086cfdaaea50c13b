//! FLV file container: header, tags, previous-tag-size. Reading (load generator input) and
//! writing (HTTP-FLV, recordings).
