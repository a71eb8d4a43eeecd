//! Network configurations: the JSON files in a CNI config dir (`/etc/cni/net.d`).
//!
//! A *network configuration list* (`*.conflist`) names a network and the chain of
//! plugins that build it; a single *network configuration* (`*.conf`, `*.json`, the
//! older form) is one plugin, which we turn into a list of one. The kubelet (through
//! containerd or CRI-O) uses the file whose name sorts first, which is why they are
//! called `10-bridge.conflist`, `99-loopback.conf`.
//!
//! ```json
//! { "cniVersion": "1.0.0", "name": "pods",
//!   "plugins": [ { "type": "bridge", "bridge": "cni0", "ipam": { "type": "host-local", ... } },
//!                { "type": "loopback" } ] }
//! ```
//!
//! What libcni does differently: it also reads `disableGC` and the 1.1 fields, keeps the
//! raw bytes of each plugin config, and skips files it cannot parse when it lists a
//! directory; we stop at the first file, with an error naming the field that is wrong.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Result};

/// The CNI versions whose configs and results we understand. They differ in details
/// that we do not use (0.4.0 added CHECK; 1.0.0 dropped the `version` of an IP).
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.4.0", "1.0.0", "1.1.0", "0.3.1"];

/// A network configuration list, as read from a config dir.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The file it came from (for error messages).
    pub source: PathBuf,
    pub cni_version: String,
    /// The network's name; plugins key their state by it (host-local's `dataDir/NAME`).
    pub name: String,
    /// `disableCheck`: the runtime must not call CHECK.
    pub disable_check: bool,
    /// Each plugin's config object, in chain order, as written (a plugin owns its fields).
    pub plugins: Vec<Value>,
}

impl NetworkConfig {
    /// The `type` of each plugin: the names of their binaries.
    pub fn types(&self) -> Vec<&str> {
        self.plugins.iter().filter_map(|p| p.get("type")?.as_str()).collect()
    }
}

/// The config files of `dir`, `*.conflist`, `*.conf` and `*.json`, lowest name first.
///
/// # Errors
/// If `dir` cannot be read.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("read the CNI config dir", dir))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads the network of `dir`: its first config file by name.
///
/// # Errors
/// If `dir` holds no config file, or the first one is not a valid network config.
pub fn load_dir(dir: &Path) -> Result<NetworkConfig> {
    let first = config_files(dir)?.into_iter().next().ok_or_else(|| {
        Error::bad(
            format!("the CNI config dir {}", dir.display()),
            "holds no *.conflist, *.conf or *.json file; write the network's config there",
        )
    })?;
    load_file(&first)
}

/// Loads one config file.
///
/// # Errors
/// If it cannot be read or is not a valid network config.
pub fn load_file(path: &Path) -> Result<NetworkConfig> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
    parse(path, &text)
}

/// Parses a config list (with `plugins`) or a single plugin config (without), checking
/// the fields the runtime itself needs. The error names the file and the field.
///
/// # Errors
/// [`Error::Bad`] for JSON that is not an object, or a missing or wrong `cniVersion`,
/// `name`, `plugins` or `plugins[N].type`.
pub fn parse(source: &Path, text: &str) -> Result<NetworkConfig> {
    let bad = |why: String| Error::bad(format!("CNI config {}", source.display()), why);
    let json: Value = serde_json::from_str(text).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let top = json.as_object().ok_or_else(|| bad("is not a JSON object".into()))?;
    let string = |field: &str, hint: &str| match top.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(bad(format!("field `{field}` must be a non-empty string, not {other}; {hint}"))),
        None => Err(bad(format!("field `{field}` is missing; {hint}"))),
    };
    let cni_version = string("cniVersion", "set it to \"1.0.0\"")?;
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(bad(format!("field `cniVersion` is {cni_version:?}; we support {SUPPORTED_VERSIONS:?}")));
    }
    let name = string("name", "name the network, e.g. \"pods\"")?;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) || name.starts_with(['.', '-', '_']) {
        return Err(bad(format!("field `name` is {name:?}; use letters, digits, '_', '.' and '-' (not first)")));
    }
    let (plugins, prefix) = match top.get("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => (list.clone(), "plugins"),
        Some(_) => return Err(bad("field `plugins` must be a non-empty list of plugin configs".into())),
        // A single network configuration (`.conf`): the object is the plugin's config.
        None => (vec![json.clone()], ""),
    };
    for (i, plugin) in plugins.iter().enumerate() {
        let field = if prefix.is_empty() { "type".to_string() } else { format!("{prefix}[{i}].type") };
        match plugin.get("type") {
            Some(Value::String(t)) if !t.is_empty() && !t.contains('/') => {}
            Some(other) => return Err(bad(format!("field `{field}` must be a plugin binary's name, not {other}"))),
            None => {
                return Err(bad(format!(
                    "field `{field}` is missing; each plugin needs the name of its binary, e.g. \"bridge\""
                )));
            }
        }
    }
    let disable_check = top.get("disableCheck").and_then(Value::as_bool).unwrap_or(false);
    Ok(NetworkConfig { source: source.to_path_buf(), cni_version, name, disable_check, plugins })
}

/// Writes `config` as `dir/file_name` (pretty JSON), creating `dir`.
///
/// # Errors
/// If the file cannot be written.
pub fn write(dir: &Path, file_name: &str, config: &Value) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let path = dir.join(file_name);
    let mut text = serde_json::to_string_pretty(config).map_err(|e| Error::bad("CNI config", e))?;
    text.push('\n');
    std::fs::write(&path, text).map_err(Error::io("write", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("10-pods.conflist"), text).unwrap_err().to_string()
    }

    // A config list keeps its plugins in order; a single `.conf` becomes a list of one.
    #[test]
    fn lists_and_single_configs_parse() {
        let list = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"loopback"}]}"#;
        let c = parse(Path::new("a.conflist"), list).unwrap();
        assert_eq!((c.name.as_str(), c.types()), ("pods", vec!["bridge", "loopback"]));
        let single = r#"{"cniVersion":"0.4.0","name":"lo","type":"loopback"}"#;
        let c = parse(Path::new("99-lo.conf"), single).unwrap();
        assert_eq!(c.types(), ["loopback"]);
        assert!(!c.disable_check);
    }

    // A bad config is refused with an error that names the file and the field.
    #[test]
    fn bad_configs_name_the_field() {
        let e = err(r#"{"name":"pods","plugins":[{"type":"bridge"}]}"#);
        assert!(e.contains("10-pods.conflist") && e.contains("field `cniVersion` is missing"), "{e}");
        let e = err(r#"{"cniVersion":"9.9.9","name":"pods","plugins":[{"type":"bridge"}]}"#);
        assert!(e.contains("field `cniVersion` is \"9.9.9\""), "{e}");
        let e = err(r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#);
        assert!(e.contains("field `name` is missing"), "{e}");
        let e = err(r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"ipam":{}}]}"#);
        assert!(e.contains("field `plugins[1].type` is missing"), "{e}");
        let e = err(r#"{"cniVersion":"1.0.0","name":"pods","plugins":[]}"#);
        assert!(e.contains("field `plugins` must be a non-empty list"), "{e}");
        let e = err(r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"../../bin/sh"}]}"#);
        assert!(e.contains("field `plugins[0].type` must be a plugin binary's name"), "{e}");
        let e = err("{ not json");
        assert!(e.contains("is not JSON"), "{e}");
    }

    // The config dir's first file by name is the network; other files are ignored.
    #[test]
    fn the_lowest_file_name_wins() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |name: &str| serde_json::json!({"cniVersion":"1.0.0","name":name,"type":"loopback"});
        write(dir.path(), "20-b.conflist", &cfg("b")).unwrap();
        write(dir.path(), "10-a.conf", &cfg("a")).unwrap();
        std::fs::write(dir.path().join("00-notes.txt"), "not a config").unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().name, "a");
        let empty = tempfile::tempdir().unwrap();
        let e = load_dir(empty.path()).unwrap_err().to_string();
        assert!(e.contains("holds no *.conflist"), "{e}");
    }
}
