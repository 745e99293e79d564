//! What one setting is: its section and key, its default, what it accepts,
//! what it means and PHP's name for it. Each setting is declared once, in
//! [`super::table`]; its defaults, its parsing, `nene config --table` and the
//! README's table all come from that declaration.

/// What a setting accepts: how its text becomes a typed value. The kinds
/// are in [`super::kinds`].
pub trait Accepts: Sync + 'static {
    /// The typed value the settings are built from.
    type Value;

    /// The value `text` stands for, or what is accepted (for the message
    /// naming where the bad value came from).
    fn parse(&self, text: &str) -> Result<Self::Value, String>;

    /// Whether surrounding whitespace is removed first: true except for
    /// values where it can matter (a log line format).
    const TRIMMED: bool = true;
}

/// The words that describe a setting, whatever its type.
#[derive(Clone, Copy, Debug)]
pub struct SettingSpec {
    /// The ini section, without brackets: `server`, `session`, …
    pub section: &'static str,
    /// The key within the section, lower case.
    pub key: &'static str,
    /// The value used when no file, variable or flag sets it.
    pub default: &'static str,
    /// A second environment variable that also sets it (`NENE_SESSION_DSN`
    /// for `SESSION_DSN`, see docs/decisions/0006; `NENE_LISTEN`).
    pub env_alias: Option<&'static str>,
    /// Holds a password: `nene config` and error messages show it redacted.
    pub secret: bool,
    /// PHP's (or PHP-FPM's) name for the same thing, `-` when there is none;
    /// printed in the settings table.
    pub php: &'static str,
    /// One line on what the setting does, for `nene config` and the README.
    pub meaning: &'static str,
}

impl SettingSpec {
    /// `section.key`, as written in messages.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// The environment variable that overrides it: `NENE_{SECTION}__{KEY}`.
    pub fn env_var(&self) -> String {
        format!(
            "NENE_{}__{}",
            self.section.to_ascii_uppercase(),
            self.key.to_ascii_uppercase()
        )
    }

    /// The constant name: `SECTION_KEY` in upper case.
    pub fn constant_name(&self) -> String {
        format!(
            "{}_{}",
            self.section.to_ascii_uppercase(),
            self.key.to_ascii_uppercase()
        )
    }
}

/// One setting: its words and what it accepts. `Setting<Number>` parses to
/// a `u64`, `Setting<Flag>` to a `bool`, so the settings builder can only
/// ask a setting for the type it holds.
#[derive(Clone, Copy, Debug)]
pub struct Setting<A> {
    /// Name, default, meaning.
    pub spec: SettingSpec,
    /// What it accepts.
    pub accepts: A,
}

impl<A: Accepts> Setting<A> {
    /// A setting read from `NENE_{SECTION}__{KEY}` and `[section] key`.
    pub const fn new(
        section: &'static str,
        key: &'static str,
        default: &'static str,
        accepts: A,
        php: &'static str,
        meaning: &'static str,
    ) -> Self {
        Self {
            spec: SettingSpec {
                section,
                key,
                default,
                env_alias: None,
                secret: false,
                php,
                meaning,
            },
            accepts,
        }
    }

    /// Also set by the environment variable `alias`.
    pub const fn env_alias(mut self, alias: &'static str) -> Self {
        self.spec.env_alias = Some(alias);
        self
    }

    /// Shown redacted wherever values are printed.
    pub const fn secret(mut self) -> Self {
        self.spec.secret = true;
        self
    }

    /// The typed value of `text` (trimmed first unless the kind says not).
    pub fn parse(&self, text: &str) -> Result<A::Value, String> {
        self.accepts
            .parse(if A::TRIMMED { text.trim() } else { text })
    }
}

/// Any setting, for the table: its words, and a check of a value.
pub trait AnySetting: Sync {
    /// Name, default, meaning.
    fn spec(&self) -> &SettingSpec;
    /// `Ok` when `text` is accepted, else what is.
    fn check(&self, text: &str) -> Result<(), String>;
}

impl<A: Accepts> AnySetting for Setting<A> {
    fn spec(&self) -> &SettingSpec {
        &self.spec
    }

    fn check(&self, text: &str) -> Result<(), String> {
        self.parse(text).map(|_| ())
    }
}
