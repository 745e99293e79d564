//! (being written) FileSessionHandler.
