//! DIVE's `./dive` CLI as a command builder: `bash <root>/dive [global flags] <command...>`, run
//! through [`Exec`] (echoed, with a deadline), with the inherited variables that change the CLI's
//! behaviour removed. Exit 0 proves nothing about this CLI (contract section 9): unknown
//! subcommands print help and exit 0, so callers verify the effect of every command they run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::infra::exec::{Exec, Output};

/// The `./dive` CLI of a DIVE checkout: `bash <root>/dive [global flags] <command...>`, with the
/// inherited variables that change its behaviour removed.
#[must_use = "a Dive command does nothing until run"]
#[derive(Debug, Clone)]
pub struct Dive {
    root: PathBuf,
    instance: Option<String>,
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
            command: Vec::new(),
            leaky,
            deadline: Duration::from_secs(600),
        }
    }

    pub fn instance(mut self, code: &str) -> Dive {
        self.instance = Some(code.to_lowercase());
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
        exec = exec.args(self.command).cwd(&self.root).deadline(self.deadline);
        for k in self.leaky {
            exec = exec.env_remove(k);
        }
        exec
    }

    /// Runs the command, then `verify` must confirm its effect: an exit 0 alone is not trusted,
    /// because unknown subcommands print help and exit 0.
    pub async fn run_verified<F, Fut>(self, effect: &str, verify: F) -> Result<Output, CliError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let out = self.exec().must_succeed().await.map_err(CliError::Failed)?;
        match verify().await {
            Ok(()) => Ok(out),
            Err(seen) => Err(CliError::NoEffect(format!(
                "`{}` exited 0 but had no effect ({effect} not observed: {seen}); the CLI may not support this command (contract section 9)\n{out}",
                out.argv
            ))),
        }
    }
}

/// Why a `./dive` command did not do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// It did not start, ran out of time or exited non-zero (the text has the whole output).
    Failed(String),
    /// It exited 0 and did nothing: DIVE's CLI prints help and exits 0 for what it does not know.
    NoEffect(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Failed(text) | CliError::NoEffect(text) => f.write_str(text),
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
            .args(["spoke", "down"])
            .exec()
            .must_succeed()
            .await
            .expect("the fake CLI runs");
        assert!(out.stdout.contains("instance=tst"), "{out}");
        assert!(out.stdout.contains("args=spoke down"), "{out}");
        assert!(out.argv.contains("dive --instance tst spoke down"), "{}", out.argv);
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
        let CliError::NoEffect(err) = err else {
            panic!("an exit 0 without effect is its own error: {err}")
        };
        assert!(err.contains("exited 0 but had no effect"), "{err}");
        assert!(err.contains("dive-hub-opa is running"), "{err}");
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
}
