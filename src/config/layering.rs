//! Layering: built-in defaults < `system.ini` < `site.ini` < environment <
//! command line. Each source may set a setting of nene's (checked against
//! the table: an unknown key is an error with a did-you-mean) or define a
//! site constant; the result is the final text of every setting and where
//! it came from, which [`super::building`] turns into typed settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::building::build_settings;
use super::constants::{Constant, Constants};
use super::error::{ConfigError, closest};
use super::ini_file::{IniEntry, read_ini_file};
use super::setting::SettingSpec;
use super::source::Source;
use super::table::{self, NENE_SECTIONS, SETTINGS};

/// The ini files read from the ini directory, in order (later wins).
pub const INI_FILES: &[&str] = &["system.ini", "site.ini"];

/// Environment variables that are not settings but are nene's.
const OTHER_ENV: &[&str] = &["NENE_INI_DIR"];

/// What to load from.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The directory holding `system.ini` and `site.ini`.
    pub ini_dir: PathBuf,
    /// The environment (passed in, so tests need not touch the process's).
    pub env: Vec<(String, String)>,
    /// Command-line overrides: (the setting, value, flag).
    pub command_line: Vec<(&'static SettingSpec, String, &'static str)>,
}

impl LoadOptions {
    /// The process environment's `NENE_*` variables, and the standard
    /// names some settings also answer to (`OTEL_TRACES_EXPORTER`, …).
    pub fn process_env() -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| name.starts_with("NENE_") || alias_of(name).is_some())
            .collect()
    }
}

/// The result of loading: the constants, and the ini files that were read.
pub struct Loaded {
    /// Every setting and site constant, validated.
    pub constants: Constants,
    /// The ini files found and read, in the order read (for the start-up log).
    pub files_read: Vec<PathBuf>,
    /// Likely mistakes that are not errors, for the start-up log: an
    /// environment variable that sets a site constant no ini file declares,
    /// one typo away from one that is declared (`NENE_NOTES__GRETING` beside
    /// `[notes] greeting`).
    pub warnings: Vec<String>,
}

/// Whether a site constant may hold a secret, so `nene config` masks it: a
/// DSN (`TODO_DATABASE_DSN`, `[db] dsn`) or anything named like a password,
/// key or credential (`DB_PASS`, `SMTP_PWD`, `API_KEY`, `PRIVATE_KEY`,
/// `OAUTH_CLIENT_SECRET`, `AUTH_TOKEN`). Names are the convention an
/// application keeps to; a name that only looks like one (`CACHE_KEY_PREFIX`)
/// is masked too, since showing a secret costs more than hiding a setting.
/// Whatever the name, a URL's password is masked (`print_config`).
fn site_constant_is_secret(name: &str) -> bool {
    name.ends_with("_DSN")
        || [
            "PASS",
            "PWD",
            "SECRET",
            "TOKEN",
            "KEY",
            "AUTH",
            "CREDENTIAL",
            "PRIVATE",
            "SALT",
        ]
        .iter()
        .any(|word| name.contains(word))
}

/// A value before validation, and where it came from.
#[derive(Clone, Debug)]
pub(super) struct RawValue {
    /// The text as the source gave it.
    pub text: String,
    /// Where it came from.
    pub source: Source,
}

/// The final text of every setting some source set, keyed by
/// `section.key`; a setting no source set has its declared default.
#[derive(Debug, Default)]
pub(super) struct RawValues {
    set: BTreeMap<String, RawValue>,
}

impl RawValues {
    /// The text `spec` ends up with, and where it came from.
    pub fn raw(&self, spec: &SettingSpec) -> RawValue {
        self.set
            .get(&spec.dotted())
            .cloned()
            .unwrap_or_else(|| RawValue {
                text: spec.default.to_string(),
                source: Source::Default,
            })
    }

    fn set(&mut self, spec: &SettingSpec, text: String, source: Source) {
        self.set.insert(spec.dotted(), RawValue { text, source });
    }
}

/// Loads defaults < system.ini < site.ini < environment < command line and
/// validates every value; the first problem is the error.
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut values = RawValues::default();
    let mut app_constants: BTreeMap<String, RawValue> = BTreeMap::new();

    let mut files_read = Vec::new();
    for file_name in INI_FILES {
        let path = options.ini_dir.join(file_name);
        let Some(entries) = read_ini_file(&path)? else {
            continue;
        };
        files_read.push(path);
        for entry in entries {
            apply_ini_entry(entry, file_name, &mut values, &mut app_constants)?;
        }
    }
    // A constant only the environment sets is fine (a secret kept out of
    // the ini files); one a typo away from a declared constant is most
    // likely that constant, misspelt, and the application would read the
    // declared value unaware.
    let declared: Vec<String> = app_constants.keys().cloned().collect();
    let mut warnings = Vec::new();
    for (name, value) in &options.env {
        if let Some(constant) = apply_env(name, value, &mut values, &mut app_constants)?
            && !declared.contains(&constant)
            && let Some(near) = closest(&constant, declared.iter().map(String::as_str))
        {
            warnings.push(format!(
                "{name} sets {constant}, which no ini file declares; did you mean {near}? (the application reads {near} from the ini file)"
            ));
        }
    }
    for (spec, value, flag) in &options.command_line {
        values.set(spec, value.clone(), Source::CommandLine(flag));
    }

    // Every setting is checked by its declared kind, whether or not the
    // settings below read it, in the table's order.
    for setting in SETTINGS {
        let spec = setting.spec();
        let raw = values.raw(spec);
        if let Err(accepted) = setting.check(&raw.text) {
            return Err(ConfigError::invalid(spec, &raw, accepted));
        }
    }
    let typed = build_settings(&values)?;

    let mut by_name = BTreeMap::new();
    for spec in SETTINGS.iter().map(|setting| setting.spec()) {
        let raw = values.raw(spec);
        by_name.insert(
            spec.constant_name(),
            Constant {
                value: raw.text,
                source: raw.source,
                secret: spec.secret,
            },
        );
    }
    for (name, raw) in app_constants {
        let secret = site_constant_is_secret(&name);
        by_name.insert(
            name,
            Constant {
                value: raw.text,
                source: raw.source,
                secret,
            },
        );
    }
    Ok(Loaded {
        constants: Constants::new(typed, by_name),
        files_read,
        warnings,
    })
}

fn apply_ini_entry(
    entry: IniEntry,
    file_name: &str,
    values: &mut RawValues,
    app_constants: &mut BTreeMap<String, RawValue>,
) -> Result<(), ConfigError> {
    // PHP's php.ini style, `session.gc_maxlifetime = 600` outside any
    // section, means the same as the key under `[session]`.
    let (section, key) = match entry.raw_key.split_once('.') {
        Some((section, key)) if entry.section.is_empty() => {
            (section.to_ascii_lowercase(), key.to_string())
        }
        _ => (entry.section.clone(), entry.raw_key.clone()),
    };
    if NENE_SECTIONS.contains(&section.as_str()) {
        if file_name != "system.ini" {
            return Err(ConfigError::MisplacedSection {
                origin: entry.source,
                section,
            });
        }
        let key = key.to_ascii_lowercase();
        let Some(spec) = table::find(&section, &key) else {
            let suggestion = closest(
                &key,
                SETTINGS
                    .iter()
                    .map(|s| s.spec())
                    .filter(|s| s.section == section)
                    .map(|s| s.key),
            )
            .map(|k| format!("{section}.{k}"));
            return Err(ConfigError::UnknownKey {
                origin: entry.source,
                name: format!("{section}.{key}"),
                suggestion,
            });
        };
        values.set(spec, entry.value, entry.source);
        return Ok(());
    }
    if let Some(near) = closest(&section, NENE_SECTIONS.iter().copied()) {
        return Err(ConfigError::UnknownKey {
            origin: entry.source,
            name: format!("[{section}]"),
            suggestion: Some(format!("[{near}]")),
        });
    }
    let name = if section.is_empty() {
        key.to_ascii_uppercase()
    } else {
        format!(
            "{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    };
    app_constants.insert(
        name,
        RawValue {
            text: entry.value,
            source: entry.source,
        },
    );
    Ok(())
}

/// The setting whose `env_alias` is `name`.
fn alias_of(name: &str) -> Option<&'static SettingSpec> {
    SETTINGS
        .iter()
        .map(|s| s.spec())
        .find(|s| s.env_alias == Some(name))
}

/// Applies one `NENE_*` variable; returns the site constant it set, if it
/// set one (nene's own settings and other variables: none).
fn apply_env(
    name: &str,
    value: &str,
    values: &mut RawValues,
    app_constants: &mut BTreeMap<String, RawValue>,
) -> Result<Option<String>, ConfigError> {
    // An alias (`NENE_LISTEN`, or a standard name outside nene's prefix,
    // `OTEL_TRACES_EXPORTER`) sets its setting.
    if let Some(spec) = alias_of(name) {
        values.set(spec, value.to_string(), Source::Env(name.to_string()));
        return Ok(None);
    }
    let Some(rest) = name.strip_prefix("NENE_") else {
        return Ok(None);
    };
    if OTHER_ENV.contains(&name) {
        return Ok(None);
    }
    let raw = RawValue {
        text: value.to_string(),
        source: Source::Env(name.to_string()),
    };
    let all_env_names = || {
        SETTINGS
            .iter()
            .map(|s| s.spec())
            .flat_map(|s| [Some(s.env_var()), s.env_alias.map(str::to_string)])
            .flatten()
            .chain(OTHER_ENV.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
    };
    let Some((section, key)) = rest.split_once("__") else {
        let names = all_env_names();
        return Err(ConfigError::UnknownKey {
            origin: Source::Env(name.to_string()),
            name: name.to_string(),
            suggestion: closest(name, names.iter().map(String::as_str)),
        });
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    if NENE_SECTIONS.contains(&section.as_str()) {
        let Some(spec) = table::find(&section, &key) else {
            let names = all_env_names();
            return Err(ConfigError::UnknownKey {
                origin: Source::Env(name.to_string()),
                name: name.to_string(),
                suggestion: closest(name, names.iter().map(String::as_str)),
            });
        };
        values.set(spec, raw.text, raw.source);
        return Ok(None);
    }
    // A section one typo away from nene's own is a mistake, not an
    // application constant.
    if let Some(near) = closest(&section, NENE_SECTIONS.iter().copied()) {
        return Err(ConfigError::UnknownKey {
            origin: Source::Env(name.to_string()),
            name: name.to_string(),
            suggestion: Some(format!(
                "NENE_{}__{}",
                near.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            )),
        });
    }
    let constant = format!(
        "{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    );
    app_constants.insert(constant.clone(), raw);
    Ok(Some(constant))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        load(&LoadOptions {
            ini_dir: dir.path().to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            command_line: Vec::new(),
        })
    }

    fn error_of(files: &[(&str, &str)], env: &[(&str, &str)]) -> String {
        match load_with(files, env) {
            Ok(_) => panic!("expected a configuration error"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn phps_nested_save_path_forms_give_a_depth_and_a_directory() {
        for (text, depth, dir) in [
            ("/var/lib/php/sessions", 0, "/var/lib/php/sessions"),
            ("2;/var/lib/php/sessions", 2, "/var/lib/php/sessions"),
            ("1;0600;/srv/sessions", 1, "/srv/sessions"),
            ("x;/odd", 0, "x;/odd"),
        ] {
            let loaded = load_with(&[], &[("NENE_SESSION__SAVE_PATH", text)]).unwrap();
            let session = &loaded.constants.settings().session;
            assert_eq!(session.save_path_depth, depth, "{text}");
            assert_eq!(session.save_path, PathBuf::from(dir), "{text}");
        }
    }

    #[test]
    fn defaults_apply_without_ini_files() {
        let loaded = load_with(&[], &[]).unwrap();
        let session = &loaded.constants.settings().session;
        assert_eq!(session.gc_maxlifetime, 1440);
        assert_eq!(session.name, "NENESESSID");
        assert_eq!(loaded.constants.get("SESSION_DSN"), Some(""));
        assert!(loaded.files_read.is_empty());
        let limits = &loaded.constants.settings().server.limits;
        assert_eq!(limits.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(limits.max_params_bytes, 64 * 1024);
    }

    #[test]
    fn a_file_overrides_a_default_and_the_environment_overrides_the_file() {
        let files = [(
            "system.ini",
            "[session]\ngc_maxlifetime = 600\nname = FILEID\n",
        )];
        let loaded = load_with(&files, &[("NENE_SESSION__GC_MAXLIFETIME", "77")]).unwrap();
        let constants = &loaded.constants;
        assert_eq!(constants.settings().session.gc_maxlifetime, 77);
        assert_eq!(constants.settings().session.name, "FILEID");
        let all: BTreeMap<_, _> = constants.iter().collect();
        assert_eq!(
            all["SESSION_GC_MAXLIFETIME"].source,
            Source::Env("NENE_SESSION__GC_MAXLIFETIME".into())
        );
        assert!(matches!(
            all["SESSION_NAME"].source,
            Source::File { line: 3, .. }
        ));
        assert_eq!(all["SESSION_COOKIE_PATH"].source, Source::Default);
    }

    #[test]
    fn nene_session_dsn_sets_the_session_dsn_constant() {
        let loaded = load_with(&[], &[("NENE_SESSION_DSN", "redis://cache:6379/2")]).unwrap();
        assert_eq!(
            loaded.constants.get("SESSION_DSN"),
            Some("redis://cache:6379/2")
        );
        assert_eq!(
            loaded.constants.settings().session.dsn,
            "redis://cache:6379/2"
        );
    }

    #[test]
    fn php_style_dotted_keys_and_size_shorthand_are_understood() {
        let files = [(
            "system.ini",
            "session.cookie_httponly = Off\n[server]\nmax_body_bytes = 2M\n",
        )];
        let loaded = load_with(&files, &[]).unwrap();
        let settings = loaded.constants.settings();
        assert!(!settings.session.cookie_httponly);
        assert_eq!(settings.server.limits.max_body_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn site_constants_come_from_site_ini_and_the_environment() {
        let files = [(
            "site.ini",
            "COPYRIGHT = \"ACME\"\n[site]\ntitle = \"My Shop\"\nowner = me\n",
        )];
        let loaded = load_with(&files, &[("NENE_SITE__OWNER", "you")]).unwrap();
        assert_eq!(loaded.constants.get("SITE_TITLE"), Some("My Shop"));
        assert_eq!(loaded.constants.get("COPYRIGHT"), Some("ACME"));
        assert_eq!(loaded.constants.get("SITE_OWNER"), Some("you"));
    }

    #[test]
    fn a_wrong_type_names_the_file_line_key_value_and_what_is_accepted() {
        let error = error_of(
            &[("system.ini", "[session]\n\ngc_maxlifetime = abc\n")],
            &[],
        );
        assert!(error.contains("system.ini:3"), "{error}");
        assert!(error.contains("session.gc_maxlifetime"), "{error}");
        assert!(error.contains("\"abc\""), "{error}");
        assert!(error.contains("a whole number from 1 to"), "{error}");
    }

    #[test]
    fn out_of_range_values_and_bad_choices_are_refused() {
        let error = error_of(&[], &[("NENE_SESSION__SID_LENGTH", "1000")]);
        assert!(error.contains("env NENE_SESSION__SID_LENGTH"), "{error}");
        assert!(error.contains("from 22 to 128"), "{error}");
        let error = error_of(
            &[("system.ini", "[session]\ncookie_samesite = Sometimes\n")],
            &[],
        );
        assert!(
            error.contains("one of Lax, Strict, None, or empty"),
            "{error}"
        );
        let error = error_of(&[("system.ini", "[server]\nreceive_timeout = soon\n")], &[]);
        assert!(error.contains("a duration"), "{error}");
        let error = error_of(&[("system.ini", "[server]\nlisten = localhost\n")], &[]);
        assert!(error.contains("unix:/path/to.sock"), "{error}");
        // PHP accepts 4, 5 or 6 bits per id character; 7 has no alphabet.
        let error = error_of(&[], &[("NENE_SESSION__SID_BITS_PER_CHARACTER", "7")]);
        assert!(error.contains("from 4 to 6"), "{error}");
    }

    #[test]
    fn every_default_in_the_table_is_accepted_by_its_own_kind() {
        for setting in SETTINGS {
            let spec = setting.spec();
            assert!(
                setting.check(spec.default).is_ok(),
                "{} = {:?}",
                spec.dotted(),
                spec.default
            );
        }
        let defaults = crate::config::Settings::defaults();
        assert_eq!(defaults.session.gc_maxlifetime, 1440);
        assert_eq!(defaults.server.limits.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(
            defaults.ops.access_format,
            table::ACCESS_FORMAT.spec.default
        );
    }

    #[test]
    fn a_setting_is_named_once_in_the_table() {
        let mut names: Vec<String> = SETTINGS.iter().map(|s| s.spec().dotted()).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a section.key is declared twice");
    }

    #[test]
    fn unknown_keys_get_a_did_you_mean() {
        let error = error_of(&[("system.ini", "[session]\ngc_maxlifetim = 10\n")], &[]);
        assert!(error.contains("system.ini:2"), "{error}");
        assert!(
            error.contains("did you mean session.gc_maxlifetime?"),
            "{error}"
        );
        for (variable, value, meant) in [
            (
                "NENE_SESSION__COOKIE_SECUR",
                "on",
                "NENE_SESSION__COOKIE_SECURE",
            ),
            // One underscore instead of two.
            (
                "NENE_SESSION_GC_MAXLIFETIME",
                "10",
                "NENE_SESSION__GC_MAXLIFETIME",
            ),
            // A misspelt section is not taken for an application constant.
            ("NENE_SESION__NAME", "x", "NENE_SESSION__NAME"),
        ] {
            let error = error_of(&[], &[(variable, value)]);
            assert!(error.contains(&format!("did you mean {meant}?")), "{error}");
        }
        let error = error_of(&[("system.ini", "[sesion]\nname = x\n")], &[]);
        assert!(error.contains("did you mean [session]?"), "{error}");
    }

    #[test]
    fn samesite_none_without_secure_is_refused() {
        let error = error_of(
            &[("system.ini", "[session]\ncookie_samesite = None\n")],
            &[],
        );
        assert!(
            error.contains("needs session.cookie_secure = on"),
            "{error}"
        );
        let ok = load_with(
            &[(
                "system.ini",
                "[session]\ncookie_samesite = None\ncookie_secure = on\n",
            )],
            &[],
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn nene_sections_in_site_ini_and_unreadable_files_are_errors() {
        let error = error_of(&[("site.ini", "[session]\nname = X\n")], &[]);
        assert!(error.contains("belongs in system.ini"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("system.ini")).unwrap();
        let error = load(&LoadOptions {
            ini_dir: dir.path().to_path_buf(),
            ..LoadOptions::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("cannot read ini file"), "{error}");
    }

    #[test]
    fn the_dsn_is_never_shown_in_an_error() {
        let error = error_of(
            &[(
                "system.ini",
                "[session]\ndsn = \"redis://u:hunter2@h:1\"\nname = 123\n",
            )],
            &[],
        );
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_environment_variable_a_typo_away_from_a_declared_constant_is_a_warning() {
        let loaded = load_with(
            &[("site.ini", "[notes]\ngreeting = hello\n")],
            &[
                ("NENE_NOTES__GRETING", "hi"),
                ("NENE_DB__PASSWORD", "only in the environment"),
                ("NENE_NOTES__GREETING", "overridden"),
            ],
        )
        .unwrap();
        assert_eq!(
            loaded.warnings,
            vec![
                "NENE_NOTES__GRETING sets NOTES_GRETING, which no ini file declares; did you mean NOTES_GREETING? (the application reads NOTES_GREETING from the ini file)"
                    .to_string()
            ]
        );
        // Still a constant: a warning, not a refusal.
        assert_eq!(loaded.constants.get("NOTES_GRETING"), Some("hi"));
        assert_eq!(loaded.constants.get("NOTES_GREETING"), Some("overridden"));
    }
}
