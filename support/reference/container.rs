//! Containers of the reference's Docker runtime stay in the ledger for as long as they exist, so
//! that a run killed before testcontainers could remove them leaves them to the next run's sweep,
//! which removes them with `docker rm -f`.

use std::path::PathBuf;

use testcontainers::{ContainerAsync, GenericImage};

use crate::fault::ledger::{Change, Ledger};

/// A started container, recorded in the ledger; removed, then cleared from it, on drop.
pub struct Ledgered {
    container: Option<ContainerAsync<GenericImage>>,
    entry: PathBuf,
}

impl Ledgered {
    pub fn new(container: ContainerAsync<GenericImage>, ledger: &Ledger) -> Result<Ledgered, String> {
        let entry = ledger.record(container_change(container.id()), Some(undo(container.id())))?;
        Ok(Ledgered {
            container: Some(container),
            entry,
        })
    }

    pub fn container(&self) -> Result<&ContainerAsync<GenericImage>, String> {
        self.container
            .as_ref()
            .ok_or_else(|| "the container is gone".to_string())
    }
}

impl Drop for Ledgered {
    fn drop(&mut self) {
        // testcontainers removes the container as it drops; only then is the entry done with.
        drop(self.container.take());
        Ledger::clear(&self.entry);
    }
}

fn container_change(id: &str) -> Change {
    Change::Container { id: id.to_string() }
}

/// What removes the container from any process.
fn undo(id: &str) -> Vec<Vec<String>> {
    vec![["docker", "rm", "-f", id].map(String::from).to_vec()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_is_undone_by_removing_it() {
        let dir = std::env::temp_dir().join(format!("ledgered-{}", crate::infra::os::random_hex()));
        let ledger = Ledger::new(&dir);
        let path = ledger
            .record(container_change("3f2a9c"), Some(undo("3f2a9c")))
            .expect("recorded");
        let (_, entry) = ledger.entries().into_iter().next().expect("one entry");
        assert_eq!(
            entry.change,
            Change::Container {
                id: "3f2a9c".to_string()
            }
        );
        assert_eq!(
            entry.undo,
            Some(vec![vec![
                "docker".to_string(),
                "rm".into(),
                "-f".into(),
                "3f2a9c".into()
            ]])
        );
        Ledger::clear(&path);
        assert!(ledger.entries().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
