//! On-disk document formats: parsing and serializing manifests, and the
//! guard that refuses hostile YAML before a parser sees it. No I/O here:
//! callers read and write the bytes (`src/state/documents.rs`,
//! `src/sys/fs.rs`); this folder imports only `error` and `model`.

pub(crate) mod config_words;
pub(crate) mod manifest;
pub(crate) mod yaml_guard;
