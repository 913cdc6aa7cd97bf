//! What a spawned process printed, kept line by line for a test to read or wait on.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Everything a process started with [`Proc::spawn_logged`](crate::Proc::spawn_logged) (or an `Errand::…_logged`)
/// printed so far, a line each, ANSI colours removed.
#[derive(Debug, Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    pub(crate) fn push(&self, line: &str) {
        let mut text = self.0.lock().unwrap_or_else(|p| p.into_inner());
        text.push_str(&without_ansi(line));
        text.push('\n');
    }

    /// The output so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lines so far (ANSI escapes removed).
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    /// Whether a line so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(needle)
    }

    /// Waits until a line contains `needle`; panics after `timeout`, with the output.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no line with `{needle}` within {timeout:?}; output:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `line` without its ANSI escape sequences (CSI: ESC [ parameters, ended by a letter).
pub(crate) fn without_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
