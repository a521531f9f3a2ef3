//! The records of this process, by topic: what every presence implementation keeps, and
//! what a Redis presence writes to Redis.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard, PoisonError},
};

/// Topic → member key → value, for the topics with at least one record.
#[derive(Debug, Default)]
pub(crate) struct LocalEntries {
    topics: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl LocalEntries {
    fn topics(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, topic: &str, key: &str, value: &str) {
        self.topics()
            .entry(topic.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }

    /// Whether there was such a record.
    pub(crate) fn remove(&self, topic: &str, key: &str) -> bool {
        let mut topics = self.topics();
        let Some(entries) = topics.get_mut(topic) else {
            return false;
        };
        let removed = entries.remove(key).is_some();
        if entries.is_empty() {
            topics.remove(topic);
        }
        removed
    }

    /// `topic`'s records, by key.
    pub(crate) fn get(&self, topic: &str) -> Vec<(String, String)> {
        self.topics().get(topic).map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
    }

    /// The topics with records.
    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics().keys().cloned().collect()
    }
}
