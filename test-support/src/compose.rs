//! compose.yaml as the tests read it: services, their images, environment,
//! volumes, health checks and dependencies, plus Compose's `${VAR}`
//! interpolation, so a test can check the wiring and run the same topology
//! without Docker.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_serde::Value;

use crate::REPO;

/// The repository's compose.yaml, parsed.
pub struct ComposeFile {
    root: Value,
}

impl ComposeFile {
    pub fn load() -> ComposeFile {
        let path = Path::new(REPO).join("compose.yaml");
        let text = std::fs::read_to_string(&path).expect("compose.yaml at the repository's top");
        let root = yaml_serde::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
        ComposeFile { root }
    }

    /// The service names, sorted.
    pub fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.root["services"]
            .as_mapping()
            .expect("a services map")
            .keys()
            .map(|key| key.as_str().expect("a service name").to_string())
            .collect();
        names.sort();
        names
    }

    /// One service's definition; fails the test naming it when missing.
    pub fn service(&self, name: &str) -> Service<'_> {
        let value = &self.root["services"][name];
        assert!(
            value.is_mapping(),
            "compose.yaml has no service {name:?}: {:?}",
            self.service_names()
        );
        Service {
            name: name.to_string(),
            value,
        }
    }

    /// Top-level named volumes.
    pub fn volume_names(&self) -> Vec<String> {
        self.root["volumes"]
            .as_mapping()
            .map(|volumes| {
                volumes
                    .keys()
                    .filter_map(|key| key.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One service of the compose file.
pub struct Service<'a> {
    name: String,
    value: &'a Value,
}

impl Service<'_> {
    /// A scalar field (`image`, `stop_grace_period`, …) as text.
    pub fn text(&self, field: &str) -> Option<String> {
        scalar(&self.value[field])
    }

    /// The raw definition, for fields with no helper.
    pub fn get(&self, field: &str) -> &Value {
        &self.value[field]
    }

    /// `environment` as written, before interpolation. Compose accepts a map
    /// or a list of `NAME=VALUE`; both are read.
    pub fn environment(&self) -> BTreeMap<String, String> {
        let environment = &self.value["environment"];
        if let Some(map) = environment.as_mapping() {
            return map
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().expect("a variable name").to_string(),
                        scalar(value).unwrap_or_default(),
                    )
                })
                .collect();
        }
        strings(environment)
            .iter()
            .map(|entry| {
                let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
                (name.to_string(), value.to_string())
            })
            .collect()
    }

    /// `volumes` entries in their short form, `SOURCE:TARGET[:MODE]`.
    pub fn volumes(&self) -> Vec<String> {
        strings(&self.value["volumes"])
    }

    /// `ports` entries in their short form.
    pub fn ports(&self) -> Vec<String> {
        strings(&self.value["ports"])
    }

    /// The healthcheck's `test`, as a list (`CMD-SHELL "x y"` stays two items).
    pub fn healthcheck_test(&self) -> Vec<String> {
        let test = &self.value["healthcheck"]["test"];
        match scalar(test) {
            Some(shell) => vec!["CMD-SHELL".to_string(), shell],
            None => strings(test),
        }
    }

    /// The `condition` this service waits for on `dependency`.
    pub fn depends_on_condition(&self, dependency: &str) -> Option<String> {
        let depends_on = &self.value["depends_on"];
        if strings(depends_on).iter().any(|name| name == dependency) {
            // The short form waits only for the container to start.
            return Some("service_started".to_string());
        }
        scalar(&depends_on[dependency]["condition"])
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// Compose's interpolation of one value against the variables `set` (the
/// shell and `.env`): `${VAR}`, `${VAR-default}` (the default when VAR is
/// unset), `${VAR:-default}` (the default when VAR is unset or empty), and
/// `$$` for a literal `$`. Any other form fails the test rather than being
/// guessed.
pub fn interpolate(text: &str, set: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let inner = after
            .strip_prefix('{')
            .and_then(|braced| braced.split_once('}'))
            .unwrap_or_else(|| panic!("unsupported interpolation in {text:?}"));
        let (expression, tail) = inner;
        let name_len = expression
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expression.len());
        let (name, operator) = expression.split_at(name_len);
        let current = set.get(name).copied();
        let value = if operator.is_empty() {
            current.unwrap_or("")
        } else if let Some(default) = operator.strip_prefix(":-") {
            current.filter(|value| !value.is_empty()).unwrap_or(default)
        } else if let Some(default) = operator.strip_prefix('-') {
            current.unwrap_or(default)
        } else {
            panic!("unsupported interpolation ${{{expression}}} in {text:?}")
        };
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// The variables of a `.env` file such as .env.example: `NAME=VALUE` lines,
/// comments and blank lines skipped.
pub fn dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}
