//! Alerts without waking anyone: on a live DIVE, with `DIVE_SILENCE_ALERTS=1`, every test silences
//! the ten alerts of the catalogue in DIVE's AlertManager for as long as it may run, so the faults
//! it injects page no one. Each silence is labelled as the suite's, is in the ledger before it
//! exists (with the `curl` line that expires it), and is expired when the test ends, on drop
//! included; one a killed run leaves behind is expired by the next run, and expires by itself
//! after [`LIFETIME`] anyway. The alert scenarios accept an alert suppressed by these silences as
//! delivered.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::fault::ledger::{Change, Ledger};
use crate::infra::alertmanager::AlertManager;
use crate::infra::config::Trust;
use crate::infra::http::Http;
use crate::vocab::alerts::ALERTS;

/// How long a silence lasts if nothing expires it: longer than the longest scenario may run
/// (nextest's live profile ends a test after 30 min).
pub const LIFETIME: Duration = Duration::from_secs(35 * 60);

/// The silence a live test holds; expired when it is dropped.
pub struct Silences {
    alertmanager: AlertManager,
    trust: Trust,
    id: String,
    ledger_entry: Option<PathBuf>,
}

impl Silences {
    /// Silences the catalogue's alerts in `alertmanager` for [`LIFETIME`]; `trust` says how the
    /// ledger's `curl` line must verify AlertManager's certificate.
    pub async fn create(
        alertmanager: &AlertManager,
        ledger: &Ledger,
        trust: &Trust,
        run: &str,
    ) -> Result<Silences, String> {
        let names: Vec<&str> = ALERTS.iter().map(|a| a.name).collect();
        let comment = format!("DIVE resilience suite, run {run}: the faults it injects would page on-call");
        let id = alertmanager
            .silence(&names, SystemTime::now() + LIFETIME, &comment)
            .await?;
        let mut undo = vec![
            "curl".to_string(),
            "-fsS".to_string(),
            "-X".to_string(),
            "DELETE".to_string(),
        ];
        match trust {
            Trust::CaBundle(ca) => undo.extend(["--cacert".to_string(), ca.display().to_string()]),
            Trust::Insecure => undo.push("-k".to_string()),
        }
        undo.push(alertmanager.silence_url(&id).to_string());
        let change = Change::Silence {
            id: id.clone(),
            alertmanager: alertmanager.base.to_string(),
        };
        // Recorded right after creation: AlertManager chooses the id. A run killed in between
        // leaves a silence that expires by itself after LIFETIME.
        let ledger_entry = Some(ledger.record(change, Some(vec![undo]))?);
        eprintln!(
            "silenced the catalogue's alerts in {} for up to {} (silence {id}); expired when this test ends",
            alertmanager.base,
            crate::vocab::units::secs(LIFETIME)
        );
        Ok(Silences {
            alertmanager: alertmanager.clone(),
            trust: trust.clone(),
            id,
            ledger_entry,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Silences {
    fn drop(&mut self) {
        let Some(entry) = self.ledger_entry.take() else {
            return;
        };
        // Drop cannot await: expire on a thread with its own runtime, as the fault guards do, and
        // its own client (a client's connections belong to the runtime that made them).
        let (base, trust, id) = (self.alertmanager.base.clone(), self.trust.clone(), self.id.clone());
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let expired = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(async {
                        let http = Http::for_trust(&trust)?;
                        AlertManager::new(base, http).unsilence(&id).await
                    })
                });
            let _ = done.send(expired);
        });
        match outcome.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {
                Ledger::clear(&entry);
                eprintln!("silence {} expired", self.id);
            }
            Ok(Err(e)) => eprintln!(
                "silence {} not expired: {e}; the next run expires it from the ledger",
                self.id
            ),
            Err(_) => eprintln!(
                "silence {} not expired in time; the next run expires it from the ledger",
                self.id
            ),
        }
    }
}
