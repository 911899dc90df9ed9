//! The two manifest formats: a store object's per-file list and a
//! generation's service map. Both are YAML files (written in JSON style),
//! written once, never changed.
//!
//! Parsing is defensive (size cap, unknown keys rejected, every error names
//! the file); this module only converts between bytes and types — callers
//! decide where the bytes live.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsops::Dir;
use crate::tree::Entry;

/// The largest manifest the tool will read, to keep a corrupt file from
/// exhausting memory.
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// `store/<name>-<digest>.manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectManifest {
    pub service: String,
    pub digest: String,
    pub entries: Vec<Entry>,
}

/// `generations/<N>/.manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationManifest {
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// RFC 3339, UTC.
    pub created: String,
    /// Service name → store object name.
    pub services: BTreeMap<String, String>,
    /// The stock trees the generation was built from.
    #[serde(default)]
    pub stock: Vec<PathBuf>,
}

/// Reads and parses a YAML manifest below `dir`.
pub fn load<T: for<'de> Deserialize<'de>>(dir: &Dir, name: &str) -> Result<T> {
    let path = dir.join(name);
    let bytes = read_capped(dir, name, MAX_MANIFEST_BYTES)?;
    parse(&bytes, &path)
}

/// Parses manifest bytes; the error names the file and says what to do.
///
/// Manifests are written as JSON, which is also YAML (YAML 1.2 is a
/// superset of JSON), so any YAML tool reads them — but JSON parses about
/// ten times faster, which matters for a generation of 10,000 services.
/// A manifest edited into block-style YAML by hand still loads.
pub fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> Result<T> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    serde_yaml::from_slice(bytes).map_err(|e| {
        Error::bad_input(format!(
            "{}: the manifest is damaged ({e}); run `svcdir-update verify` and restore it from a backup or remove the generation",
            path.display()
        ))
    })
}

/// Serializes a manifest as pretty JSON (valid YAML; see [`parse`]).
pub fn to_bytes<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::io("cannot serialize", path, std::io::Error::other(e)))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads a whole file below `dir`, refusing one larger than `cap` bytes.
pub fn read_capped(dir: &Dir, name: &str, cap: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let path = dir.join(name);
    let file = dir.open_file(name)?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    if bytes.len() as u64 > cap {
        return Err(Error::bad_input(format!(
            "{}: larger than {cap} bytes; it is not a file this tool wrote",
            path.display()
        )));
    }
    Ok(bytes)
}
