//! On-disk document formats: parsing and serializing manifests, and the
//! guard that refuses hostile YAML before a parser sees it. No I/O here.

pub(crate) mod manifest;
