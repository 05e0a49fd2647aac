//! Running programs: the `./dive` CLI and the container runtime. Every command echoes a
//! copy-pasteable argv before it runs, has a deadline, and on failure reports its exit code and
//! both streams. Exit 0 proves nothing about DIVE's CLI (contract section 9): callers verify the
//! effect of every command they run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
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
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The `./dive` CLI of a DIVE checkout: `bash <root>/dive [global flags] <command...>`, with the
/// inherited variables that change its behaviour removed.
#[must_use = "a Dive command does nothing until run"]
#[derive(Debug, Clone)]
pub struct Dive {
    root: PathBuf,
    instance: Option<String>,
    dry_run: bool,
    command: Vec<String>,
    leaky: Vec<String>,
    deadline: Duration,
}

impl Dive {
    /// `leaky`: the inherited variable names to remove (see `Config::dive_leaky_vars`).
    pub fn new(root: &Path, leaky: &[String]) -> Dive {
        let mut leaky = leaky.to_vec();
        for always in ["INSTANCE", "COMPOSE_PROJECT_NAME"] {
            if !leaky.iter().any(|k| k == always) {
                leaky.push(always.to_string());
            }
        }
        Dive {
            root: root.to_path_buf(),
            instance: None,
            dry_run: false,
            command: Vec::new(),
            leaky,
            deadline: Duration::from_secs(600),
        }
    }

    pub fn instance(mut self, code: &str) -> Dive {
        self.instance = Some(code.to_lowercase());
        self
    }

    pub fn dry_run(mut self) -> Dive {
        self.dry_run = true;
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Dive {
        self.command.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Dive {
        self.deadline = deadline;
        self
    }

    /// The program run, with global flags before the command as the CLI requires.
    pub fn exec(self) -> Exec {
        // v15a's shebang names /usr/local/bin/bash: run it through bash explicitly.
        let mut exec = Exec::new("bash").arg(self.root.join("dive").display().to_string());
        if let Some(code) = &self.instance {
            exec = exec.args(["--instance", code]);
        }
        if self.dry_run {
            exec = exec.arg("--dry-run");
        }
        exec = exec.args(self.command).cwd(&self.root).deadline(self.deadline);
        for k in self.leaky {
            exec = exec.env_remove(k);
        }
        exec
    }

    /// Runs the command, then `verify` must confirm its effect: an exit 0 alone is not trusted,
    /// because unknown subcommands print help and exit 0.
    pub async fn run_verified<F, Fut>(self, effect: &str, verify: F) -> Result<Output, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let out = self.exec().must_succeed().await?;
        match verify().await {
            Ok(()) => Ok(out),
            Err(seen) => Err(format!(
                "`{}` exited 0 but had no effect ({effect} not observed: {seen}); the CLI may not support this command (contract section 9, D10)\n{out}",
                out.argv
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fake_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake-dive")
    }

    #[tokio::test]
    async fn global_flags_come_before_the_command() {
        let out = Dive::new(&fake_root(), &[])
            .instance("TST")
            .dry_run()
            .args(["spoke", "down"])
            .exec()
            .must_succeed()
            .await
            .expect("the fake CLI runs");
        assert!(out.stdout.contains("instance=tst"), "{out}");
        assert!(out.stdout.contains("args=spoke down"), "{out}");
        assert!(
            out.argv.contains("dive --instance tst --dry-run spoke down"),
            "{}",
            out.argv
        );
    }

    #[tokio::test]
    async fn leaky_variables_are_removed_from_the_cli_environment() {
        let exec = Dive::new(&fake_root(), &["HUB_LOADED".to_string()])
            .args(["hub", "status"])
            .exec();
        // Variables a parent shell would have exported; the wrapper must strip them.
        let exec = exec
            .env("INSTANCE", "usa")
            .env("COMPOSE_PROJECT_NAME", "dive-hub")
            .env("HUB_LOADED", "1");
        let out = exec.must_succeed().await.expect("hub status runs");
        assert!(
            out.stdout
                .contains("INSTANCE=unset COMPOSE_PROJECT_NAME=unset HUB_LOADED=unset"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn exit_zero_without_effect_is_reported_not_trusted() {
        let err = Dive::new(&fake_root(), &[])
            .args(["hub", "exec", "docker", "stop", "hub-opa-1"])
            .run_verified("dive-hub-opa stopped", async || {
                Err("dive-hub-opa is running".to_string())
            })
            .await
            .expect_err("unknown subcommands print help and exit 0");
        assert!(err.contains("exited 0 but had no effect"), "{err}");
        assert!(err.contains("dive-hub-opa is running") && err.contains("D10"), "{err}");
        assert!(err.contains("Usage: ./dive"), "the help text is shown: {err}");
    }

    #[tokio::test]
    async fn a_failure_shows_the_exit_code_and_both_streams() {
        let err = Dive::new(&fake_root(), &[])
            .args(["fail", "now"])
            .exec()
            .must_succeed()
            .await
            .expect_err("exit 3");
        assert!(err.contains("-> exit 3"), "{err}");
        assert!(
            err.contains("partial output") && err.contains("boom: compose failed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_command_past_its_deadline_is_killed() {
        let err = Dive::new(&fake_root(), &[])
            .args(["hang", "forever"])
            .deadline(Duration::from_millis(300))
            .exec()
            .run()
            .await
            .expect_err("the deadline ends it");
        assert!(err.contains("did not finish within"), "{err}");
    }

    #[test]
    fn argv_is_copy_pasteable() {
        let exec = Exec::new("docker").args(["inspect", "-f", "{{.State.Status}}", "dive-hub-opa"]);
        assert_eq!(exec.argv(), "docker inspect -f '{{.State.Status}}' dive-hub-opa");
    }
}
