//! Every program the suite runs goes through here: commands that run to completion ([`Exec`]: the
//! `./dive` CLI, the container runtime, promtool, mkcert) echo a copy-pasteable argv, have a
//! deadline, and on failure report their exit code and both streams; long-lived programs of the
//! reference deployment (redis-server, Prometheus, AlertManager) are [`Tied`] children that die
//! with the deployment that started them.

// The one module allowed to start processes (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// One program run, built then executed once.
#[must_use = "an Exec does nothing until run"]
#[derive(Debug, Clone)]
pub struct Exec {
    program: String,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    set: Vec<(String, String)>,
    remove: Vec<String>,
    deadline: Duration,
}

/// What a finished command printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    pub argv: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self
            .code
            .map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
        write!(
            f,
            "`{}` -> {code}\n--- stdout\n{}--- stderr\n{}",
            self.argv, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Exec {
    pub fn new(program: impl Into<String>) -> Exec {
        Exec {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            set: Vec::new(),
            remove: Vec::new(),
            deadline: Duration::from_secs(60),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Exec {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Exec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Exec {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Exec {
        self.set.push((key.into(), value.into()));
        self
    }

    /// Removes a variable from the child's environment (applied after [`Exec::env`]).
    pub fn env_remove(mut self, key: impl Into<String>) -> Exec {
        self.remove.push(key.into());
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Exec {
        self.deadline = deadline;
        self
    }

    /// The command as a shell line that can be pasted to reproduce it.
    pub fn argv(&self) -> String {
        let mut parts: Vec<String> = self.remove.iter().map(|k| format!("-u {k}")).collect();
        if !parts.is_empty() {
            parts.insert(0, "env".to_string());
        }
        parts.push(shell_quote(&self.program));
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        let line = parts.join(" ");
        match &self.cwd {
            Some(dir) => format!("(cd {} && {line})", shell_quote(&dir.display().to_string())),
            None => line,
        }
    }

    /// The command as an argv vector, environment removals and directory included
    /// (`env -u K -C DIR program args`), so it can be stored and run again later.
    pub fn argv_vec(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if !self.remove.is_empty() || self.cwd.is_some() {
            argv.push("env".to_string());
            for k in &self.remove {
                argv.extend(["-u".to_string(), k.clone()]);
            }
            if let Some(dir) = &self.cwd {
                argv.extend(["-C".to_string(), dir.display().to_string()]);
            }
        }
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Runs to completion or until the deadline (then the child is killed). `Err` when it could
    /// not be started or ran out of time; a non-zero exit is an `Ok` the caller judges.
    pub async fn run(self) -> Result<Output, String> {
        let argv = self.argv();
        eprintln!("*** executing: {argv}");
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.set {
            cmd.env(k, v);
        }
        for k in &self.remove {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().map_err(|e| format!("`{argv}` could not start: {e}"))?;
        let out = tokio::time::timeout(self.deadline, child.wait_with_output())
            .await
            .map_err(|_| format!("`{argv}` did not finish within {:?}; killed", self.deadline))?
            .map_err(|e| format!("`{argv}`: {e}"))?;
        let output = Output {
            argv,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if !output.success() {
            eprintln!("{output}");
        }
        Ok(output)
    }

    /// Runs and requires exit 0; the error carries the whole output.
    pub async fn must_succeed(self) -> Result<Output, String> {
        let out = self.run().await?;
        if out.success() { Ok(out) } else { Err(out.to_string()) }
    }

    /// [`Exec::run`] from synchronous code (reading the configuration), on a runtime of its own.
    pub fn run_blocking(self) -> Result<Output, String> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("runtime for `{}`: {e}", self.argv()))?;
                    rt.block_on(self.run())
                })
                .join()
                .unwrap_or_else(|_| Err("the command's thread panicked".to_string()))
        })
    }
}

/// `s` as one shell word: bare when that is safe, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// True when `program` runs (`program --version` exits 0 within 10 s).
pub fn runs(program: &str) -> bool {
    let probe = Exec::new(program).arg("--version").deadline(Duration::from_secs(10));
    probe.run_blocking().is_ok_and(|out| out.success())
}

/// A long-lived child process that dies with whoever started it: `PR_SET_PDEATHSIG` kills it when
/// the spawning thread ends, so every tied child is spawned from one thread that lives as long as
/// its [`Spawner`].
pub struct Tied {
    name: String,
    child: Mutex<Option<Child>>,
}

/// The thread that spawns [`Tied`] children.
pub struct Spawner {
    jobs: Mutex<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>>,
}

impl Spawner {
    pub fn new() -> Spawner {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(spawn_tied(&mut cmd));
            }
        });
        Spawner { jobs: Mutex::new(tx) }
    }

    /// Starts `program args...` with no input and `stderr` (a log file) as its error stream.
    pub fn spawn(&self, program: &str, args: &[String], stderr: Stdio) -> Result<Tied, String> {
        eprintln!("*** starting: {}", Exec::new(program).args(args.iter().cloned()).argv());
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        let (tx, rx) = mpsc::channel();
        let gone = || format!("{program}: the spawner thread is gone");
        self.jobs
            .lock()
            .map_err(|_| gone())?
            .send((cmd, tx))
            .map_err(|_| gone())?;
        let child = rx.recv().map_err(|_| gone())?.map_err(|e| format!("{program}: {e}"))?;
        Ok(Tied {
            name: program.to_string(),
            child: Mutex::new(Some(child)),
        })
    }
}

impl Default for Spawner {
    fn default() -> Self {
        Spawner::new()
    }
}

fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// How long a tied child gets to exit after its signal before it is killed outright.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

impl Tied {
    /// Whether the child has exited (or was ended).
    pub fn exited(&self) -> bool {
        self.child
            .lock()
            .map(|mut c| c.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None))))
            .unwrap_or(true)
    }

    /// Sends `sig` (SIGSTOP and SIGCONT freeze and thaw it).
    pub fn signal(&self, sig: libc::c_int) {
        if let Ok(slot) = self.child.lock()
            && let Some(child) = slot.as_ref()
        {
            // SAFETY: plain kill(2) on a child we own.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
    }

    /// Ends the child with `sig` and reaps it; one that ignores the signal past its deadline is
    /// killed.
    pub fn end(&self, sig: libc::c_int) {
        self.signal(libc::SIGCONT);
        self.signal(sig);
        let Some(mut child) = self.child.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        let (done, exited) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = child.wait();
            let _ = done.send(());
        });
        if exited.recv_timeout(EXIT_DEADLINE).is_err() {
            eprintln!(
                "{} (pid {pid}) ignored its signal for {EXIT_DEADLINE:?}: killed",
                self.name
            );
            // SAFETY: plain kill(2) on a child we own; the reaper thread then collects it.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        self.end(libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_copy_pasteable() {
        let exec = Exec::new("docker").args(["inspect", "-f", "{{.State.Status}}", "dive-hub-opa"]);
        assert_eq!(exec.argv(), "docker inspect -f '{{.State.Status}}' dive-hub-opa");
    }
}
