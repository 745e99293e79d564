//! (being written) RedisSessionHandler.
