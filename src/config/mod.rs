//! Configuration: built-in defaults < `ini/system.ini` < `ini/site.ini` <
//! environment (`NENE_{SECTION}__{KEY}`, `NENE_SESSION_DSN`) < command line,
//! validated once at start-up into immutable [`Constants`].
//!
//! | file | what |
//! |---|---|
//! | `table.rs` | every setting, declared once: name, default, kind, meaning, PHP's name |
//! | `setting.rs`, `kinds.rs` | what a declaration is; what each kind of value accepts |
//! | `ini_file.rs` | one ini file, read once, each value with its line |
//! | `layering.rs` | defaults < files < environment < command line; unknown keys |
//! | `building.rs` | layered text → the typed settings, cross-setting checks |
//! | `settings.rs`, `constants.rs` | what the rest of nene receives |
//!
//! Rule for where a `*Settings` type lives: with the part of nene that uses
//! it (`fastcgi::ConnectionLimits`, `server::ServerSettings`,
//! `session::SessionSettings`, `ops::OpsSettings`, `upload::UploadSettings`),
//! as plain data. `config` builds them, so it depends on those types and on
//! nothing else of theirs, and none of them depends on `config`: each layer
//! can be built and tested with settings made by hand.

mod building;
mod constants;
mod error;
mod ini_file;
pub mod kinds;
mod layering;
pub mod setting;
mod settings;
mod source;
pub mod table;

pub use constants::{Constant, Constants};
pub use error::{ConfigError, closest};
pub use layering::{INI_FILES, LoadOptions, Loaded, load};
pub use settings::Settings;
pub use source::Source;
