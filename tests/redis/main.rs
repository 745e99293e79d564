//! The Redis backend in depth: its handler and lock scripts, the lock
//! hand-off under load, and no acknowledged write lost when connections
//! drop, replies vanish or lock keys are hostile. Sentinel and Cluster are
//! in `tests/redis_ha/`.

mod handler;
mod lock_hand_off;
mod reliability;
