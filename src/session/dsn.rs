//! (being written) Parsing session DSNs.
