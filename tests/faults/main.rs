//! Faults from below: a disk that fills or refuses, hostile files in the
//! session directory, backends that stop answering.

mod disk_faults;
mod faults;
mod hostile_session_files;
