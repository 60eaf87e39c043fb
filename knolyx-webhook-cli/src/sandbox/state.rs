//! The sandbox's webhooks, per project: in memory, or in a JSON file rewritten atomically
//! (a temporary file renamed over it) on every change.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::SandboxError;

/// Version of the state file's format.
const FORMAT_VERSION: u32 = 1;

/// One registered webhook, as the sandbox keeps it. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredWebhook {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) security_token: String,
}

impl fmt::Debug for StoredWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredWebhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &knolyx_webhook_client::redact_url(&self.url))
            .field("security_token", &"<redacted>")
            .finish()
    }
}

impl StoredWebhook {
    /// The webhook as the API shows it: never its token.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "id": self.id, "name": self.name, "url": self.url })
    }
}

/// The webhooks of one project; ids are never reused within it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Project {
    next_id: u64,
    webhooks: BTreeMap<u64, StoredWebhook>,
}

/// What the state file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    projects: BTreeMap<String, Project>,
}

/// Every project's webhooks, shared by the API and the sender.
#[derive(Clone, Debug)]
pub(crate) struct State {
    inner: Arc<Mutex<Contents>>,
    file: Option<PathBuf>,
}

impl State {
    /// Empty state, kept in memory only.
    pub(crate) fn in_memory() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Contents {
                version: FORMAT_VERSION,
                projects: BTreeMap::new(),
            })),
            file: None,
        }
    }

    /// The state kept in `path`: read if it exists, else created (empty) now, so that a
    /// path that cannot be written is refused at start-up, not at the first change.
    pub(crate) fn open(path: &Path) -> Result<Self, SandboxError> {
        let contents = match std::fs::read(path) {
            Ok(bytes) => {
                let contents: Contents =
                    serde_json::from_slice(&bytes).map_err(|e| SandboxError::StateFormat {
                        path: path.to_owned(),
                        source: e,
                    })?;
                if contents.version != FORMAT_VERSION {
                    return Err(SandboxError::StateVersion {
                        path: path.to_owned(),
                        version: contents.version,
                    });
                }
                contents
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents {
                version: FORMAT_VERSION,
                projects: BTreeMap::new(),
            },
            Err(e) => {
                return Err(SandboxError::StateIo {
                    path: path.to_owned(),
                    source: e,
                });
            }
        };
        write_atomically(path, &contents)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(contents)),
            file: Some(path.to_owned()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Contents> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` and, when it changed something (`Ok(Some(_))`), saves the state
    /// before the lock is released, so the file's writes are in the order of the changes.
    /// A change that cannot be saved is undone.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Contents) -> Option<T>,
    ) -> Result<Option<T>, SandboxError> {
        let mut contents = self.lock();
        let before = self.file.as_ref().map(|_| contents.projects.clone());
        let Some(changed) = change(&mut contents) else {
            return Ok(None);
        };
        if let (Some(path), Some(before)) = (&self.file, before)
            && let Err(e) = write_atomically(path, &contents)
        {
            contents.projects = before;
            return Err(e);
        }
        Ok(Some(changed))
    }

    /// Registers a webhook in `project` and returns it, with its new id.
    pub(crate) fn create(
        &self,
        project: &str,
        name: String,
        url: String,
        security_token: String,
    ) -> Result<StoredWebhook, SandboxError> {
        let created = self.change(|contents| {
            let project = contents.projects.entry(project.to_owned()).or_default();
            project.next_id += 1;
            let webhook = StoredWebhook {
                id: project.next_id,
                name,
                url,
                security_token,
            };
            project.webhooks.insert(webhook.id, webhook.clone());
            Some(webhook)
        })?;
        Ok(created.expect("create always changes the state"))
    }

    /// The webhooks of `project`, by id.
    pub(crate) fn list(&self, project: &str) -> Vec<StoredWebhook> {
        self.lock()
            .projects
            .get(project)
            .map(|p| p.webhooks.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One webhook of `project`.
    pub(crate) fn get(&self, project: &str, id: u64) -> Option<StoredWebhook> {
        self.lock()
            .projects
            .get(project)
            .and_then(|p| p.webhooks.get(&id).cloned())
    }

    /// Deletes a webhook; `Ok(false)` when `project` has no such webhook.
    pub(crate) fn delete(&self, project: &str, id: u64) -> Result<bool, SandboxError> {
        let deleted = self.change(|contents| {
            contents
                .projects
                .get_mut(project)
                .and_then(|p| p.webhooks.remove(&id))
        })?;
        Ok(deleted.is_some())
    }
}

/// Writes the state to a temporary file beside `path` (readable by the owner only: it
/// holds security tokens), flushes it to disk and renames it over `path`.
fn write_atomically(path: &Path, contents: &Contents) -> Result<(), SandboxError> {
    let io = |source| SandboxError::StateIo {
        path: path.to_owned(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(contents).map_err(|e| io(std::io::Error::other(e)))?;
    json.push(b'\n');
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    let temp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(&json)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_per_project_and_never_reused() {
        let state = State::in_memory();
        let a = state.create("p1", "a".into(), "http://x".into(), "t".into());
        let b = state.create("p1", "b".into(), "http://x".into(), "t".into());
        let c = state.create("p2", "c".into(), "http://x".into(), "t".into());
        assert_eq!([a.unwrap().id, b.unwrap().id, c.unwrap().id], [1, 2, 1]);
        assert!(state.delete("p1", 2).unwrap());
        assert!(!state.delete("p1", 2).unwrap());
        assert!(!state.delete("p2", 2).unwrap());
        let d = state.create("p1", "d".into(), "http://x".into(), "t".into());
        assert_eq!(d.unwrap().id, 3);
        assert_eq!(state.list("p1").len(), 2);
        assert!(state.list("nope").is_empty());
        assert!(!format!("{:?}", state.get("p1", 1)).contains("\"t\""));
    }
}
