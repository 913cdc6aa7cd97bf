//! The real errand binaries as child processes: where cargo put them, how they are
//! started (with the repository's config, through an optional wrapper), and what a test
//! does to a running one (signal it, wait for its exit, read what it printed).

use std::{
    io::{BufRead, Write},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::{Child, Command};

use crate::Output;

/// Where cargo put the workspace's binaries: beside the running executable (a binary such
/// as the benchmark) or beside its `deps/` directory (a test).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let here = exe.parent().expect("exe dir");
    let p = if here.join(name).exists() {
        here.join(name)
    } else {
        here.parent().expect("target dir").join(name)
    };
    assert!(
        p.exists(),
        "{} not built: run `cargo build --bins` first (`just test` does)",
        p.display()
    );
    p
}

/// A running errand binary.
#[derive(Debug)]
pub struct Proc {
    /// The process, killed on drop.
    pub child: Child,
    /// The binary's name, for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `bin` with `env`. Logs go to the test's output only when `TEST_LOG` is set.
    pub fn spawn(bin: &str, args: &[&str], env: &[(String, String)]) -> Self {
        let mut cmd = Self::command(bin, args, env);
        if std::env::var_os("TEST_LOG").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Self {
            child,
            name: bin.to_owned(),
        }
    }

    /// Like [`Proc::spawn`], keeping everything the process prints (stdout and stderr, in
    /// order) for the test to read: what a test of its log (a panic, a warning) needs.
    pub fn spawn_logged(bin: &str, args: &[&str], env: &[(String, String)]) -> (Self, Output) {
        let output = Output::default();
        let (p, _) = Self::spawn_reporting(bin, args, env, |_| None::<()>, Some(output.clone()));
        (p, output)
    }

    /// Like [`Proc::spawn`], and sends the first value `found_in` finds in a line of the
    /// process's output (stdout and stderr), such as the port it bound. A thread reads the
    /// output for the process's whole life, so the process never blocks on a full pipe; the
    /// receiver errs if the process closes its output (exits) without such a line. Every
    /// line also goes to `keep`, when given.
    pub(crate) fn spawn_reporting<T: Send + 'static>(
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
        found_in: fn(&str) -> Option<T>,
        keep: Option<Output>,
    ) -> (Self, tokio::sync::oneshot::Receiver<T>) {
        Self::spawn_reporting_via(&[], bin, args, env, found_in, keep)
    }

    /// [`Proc::spawn_reporting`] with the command prefixed by `wrapper` (e.g. `ip netns exec
    /// NS`), and every output line also kept in `keep` when given.
    pub(crate) fn spawn_reporting_via<T: Send + 'static>(
        wrapper: &[&str],
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
        found_in: fn(&str) -> Option<T>,
        keep: Option<Output>,
    ) -> (Self, tokio::sync::oneshot::Receiver<T>) {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let mut cmd = Self::command_via(wrapper, bin, args, env);
        cmd.stdout(writer.try_clone().expect("pipe")).stderr(writer);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        // Our copies of the write end go with `cmd`: the thread sees EOF when the child exits.
        drop(cmd);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let show = std::env::var_os("TEST_LOG").is_some();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(reader).split(b'\n') {
                let Ok(line) = line else { break };
                if show {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&line);
                    let _ = err.write_all(b"\n");
                }
                let text = String::from_utf8_lossy(&line);
                if tx.is_some()
                    && let Some(found) = found_in(&text)
                {
                    let _ = tx.take().expect("checked").send(found);
                }
                if let Some(keep) = &keep {
                    keep.push(&text);
                }
            }
        });
        (
            Self {
                child,
                name: bin.to_owned(),
            },
            rx,
        )
    }

    fn command(bin: &str, args: &[&str], env: &[(String, String)]) -> Command {
        Self::command_via(&[], bin, args, env)
    }

    /// The command for `bin`, run through `wrapper` when it is not empty: `wrapper[0]` is
    /// the program, the rest and then the binary's path its arguments. The wrapper must
    /// exec the binary (as `ip netns exec` does), so the pid is the binary's own.
    fn command_via(
        wrapper: &[&str],
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin_path(bin));
                c
            }
            None => Command::new(bin_path(bin)),
        };
        cmd.args(args).envs(env.iter().cloned()).kill_on_drop(true);
        cmd.env(
            "ERRAND_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        );
        cmd
    }

    /// The process id, to signal it.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("running") as i32)
    }

    /// Sends `sig` (SIGTERM for a graceful stop, SIGKILL for a crash).
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal");
    }

    /// Waits for the process to exit; returns its exit code (None if killed by a signal).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {timeout:?}", self.name))
            .expect("wait");
        status.code()
    }
}
