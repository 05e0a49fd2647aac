//! The configuration file (`DIVE_CONFIG`): the hub and its spokes in one TOML file instead of
//! twenty variables. Each key stands for one variable; a variable set in the environment wins
//! over the file. `fixtures/dive-live.example.toml` shows every key.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, bad};

/// The variable each top-level or `[section]` key stands for.
const KEYS: &[(&str, &str)] = &[
    ("target", "DIVE_TARGET"),
    ("profile", "DIVE_PROFILE"),
    ("time_scale", "DIVE_TIME_SCALE"),
    ("state_dir", "DIVE_STATE_DIR"),
    ("root", "DIVE_ROOT"),
    ("ca_cert", "DIVE_CA_CERT"),
    ("tls_insecure", "DIVE_TLS_INSECURE"),
    ("allow_remote", "DIVE_ALLOW_REMOTE"),
    ("container_runtime", "DIVE_CONTAINER_RUNTIME"),
    ("silence_alerts", "DIVE_SILENCE_ALERTS"),
    ("hub.backend", "HUB_BACKEND_URL"),
    ("hub.keycloak", "HUB_KEYCLOAK_URL"),
    ("monitoring.prometheus", "PROMETHEUS_URL"),
    ("monitoring.alertmanager", "ALERTMANAGER_URL"),
    ("users.test", "DIVE_TEST_USER"),
    ("users.revoke", "DIVE_REVOKE_USER"),
];

/// The variables the file at `path` sets. `spokes` is either `"all"` or a table of spokes by
/// code, each with an optional `backend` URL.
pub(super) fn vars_of(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad(
            "DIVE_CONFIG",
            format!("cannot read {shown}: {e}; point it at a TOML file"),
        )
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        // One line: where, and what the parser expected.
        let line = e.span().map_or(1, |s| text[..s.start].lines().count().max(1));
        bad(
            "DIVE_CONFIG",
            format!("{shown} is not valid TOML at line {line}: {}", e.message()),
        )
    })?;
    let mut vars = HashMap::new();
    let mut flat: Vec<(String, &toml::Value)> = Vec::new();
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("spokes", _) => {}
            (section, toml::Value::Table(inner)) => {
                flat.extend(inner.iter().map(|(k, v)| (format!("{section}.{k}"), v)));
            }
            _ => flat.push((key.clone(), value)),
        }
    }
    for (key, value) in flat {
        let Some((_, var)) = KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(bad(
                "DIVE_CONFIG",
                format!("{shown}: unknown key `{key}`; the keys are those of fixtures/dive-live.example.toml"),
            ));
        };
        vars.insert(
            var.to_string(),
            scalar(value).ok_or_else(|| {
                bad(
                    "DIVE_CONFIG",
                    format!("{shown}: `{key}` must be a string, number or true/false"),
                )
            })?,
        );
    }
    match table.get("spokes") {
        None => {}
        Some(toml::Value::String(all)) => {
            vars.insert("DIVE_SPOKES".to_string(), all.clone());
        }
        Some(toml::Value::Table(spokes)) => {
            let codes: Vec<String> = spokes.keys().map(|c| c.to_uppercase()).collect();
            vars.insert("DIVE_SPOKES".to_string(), codes.join(","));
            for (code, spoke) in spokes {
                let backend = spoke.as_table().and_then(|s| s.get("backend"));
                match backend.map(scalar) {
                    None => {}
                    Some(Some(url)) => {
                        vars.insert(format!("DIVE_SPOKE_{}_BACKEND_URL", code.to_uppercase()), url);
                    }
                    Some(None) => {
                        return Err(bad(
                            "DIVE_CONFIG",
                            format!("{shown}: spokes.{code}.backend must be a URL"),
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(bad(
                "DIVE_CONFIG",
                format!("{shown}: `spokes` is \"all\" or a table of spokes by code ([spokes.FRA])"),
            ));
        }
    }
    Ok(vars)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}
