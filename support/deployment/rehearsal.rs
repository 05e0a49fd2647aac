//! The dry run: a scenario runs on a private reference deployment, and every fault is shown as the
//! command it would run on the configured target instead of being run there.

use crate::deployment::live::control::LiveControl;
use crate::vocab::fault::FaultSpec;

/// What a dry run shows instead of faulting the target.
pub struct Rehearsal {
    /// The live target's controls; `None` when the target is the reference.
    pub live: Option<LiveControl>,
}

impl Rehearsal {
    /// The commands that would apply and undo `spec` on the target.
    pub fn commands(&self, spec: &FaultSpec) -> (String, String) {
        match &self.live {
            Some(live) => {
                let (apply, undo) = live.commands(spec);
                let shown = |commands: Vec<crate::infra::exec::Exec>| {
                    commands.iter().map(|c| c.argv()).collect::<Vec<_>>().join(" && ")
                };
                (shown(apply), shown(undo))
            }
            None => (
                format!("{spec} (reference deployment control)"),
                format!("restore {spec}"),
            ),
        }
    }
}
