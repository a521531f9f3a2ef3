//! A directory for one test's files.

use std::path::PathBuf;

/// A directory for one test's files, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates an empty `sockjet-cli-PID-NAME` in the system's temporary directory.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sockjet-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` in the directory; returns the file's path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write temp file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
