//! Sessions on every backend: one contract run over files, memory, Redis,
//! memcached, SQLite, MariaDB and PostgreSQL, then what each backend adds,
//! the lock hand-off, migrations between backends and sharing with PHP.

mod contract;
mod files;
mod hand_off;
mod memcached;
mod memory;
mod migration;
mod php_sharing;
mod redis;
mod sql;
