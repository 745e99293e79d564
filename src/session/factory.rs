//! (being written) SessionHandlerFactory.
