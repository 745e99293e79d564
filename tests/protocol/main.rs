//! FastCGI records, name-value pairs and PHP's session formats, byte by
//! byte: nene's parsers and encoders against hostile and random input, and
//! against PHP's own serialize() as the oracle.

mod bounds;
mod decoder_properties;
mod fastcgi;
mod php_format;
