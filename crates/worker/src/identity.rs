//! Who this worker process is, as its heartbeat and claims name it: host, pid, and a
//! name unique to this start.

/// A name unique to this process start: host, pid and a ULID.
pub(crate) fn process_name() -> String {
    format!(
        "{}:{}:{}",
        host_name(),
        std::process::id(),
        ulid::Ulid::generate()
    )
}

/// The machine's name as the OS gives it; `host` when it has none readable.
pub(crate) fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into())
}
