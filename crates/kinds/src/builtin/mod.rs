//! One module per task kind.

pub mod chaos;
pub mod fan_out;
pub mod fibonacci;
pub mod gather;
pub mod http_request;
pub mod noop;
pub mod send_email;
pub mod sha256;
pub mod sleep;
#[cfg(test)]
mod testing;
