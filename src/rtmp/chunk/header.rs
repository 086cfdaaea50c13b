//! Basic header (fmt + csid, 1–3 bytes) and message header (fmt 0/1/2/3) codec.
