//! The members of a room on other servers, as this server knows them: from their
//! `joined` / `left` notices, corrected by what presence lists (the notices of a server
//! that died never come).

use std::collections::HashMap;

/// A change of the roster that this server's members must be told about.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RosterChange {
    Joined(String),
    Left(String),
}

/// Nicknames of the room's members on other servers (a nickname may be there twice:
/// two servers may give it at the same moment).
#[derive(Debug, Default)]
pub(crate) struct Roster {
    nicks: Vec<String>,
    /// Nicknames whose count differed from presence's at the last reconciliation, with
    /// presence's count then.
    disagreements: HashMap<String, usize>,
}

impl Roster {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.nicks.iter().map(String::as_str)
    }

    pub(crate) fn add(&mut self, nick: String) {
        self.nicks.push(nick);
    }

    pub(crate) fn remove(&mut self, nick: &str) {
        if let Some(index) = self.nicks.iter().position(|n| n == nick) {
            self.nicks.swap_remove(index);
        }
    }

    /// Takes presence's list as it is, telling nobody: for a room that had no member on
    /// this server, which heard no notices meanwhile.
    pub(crate) fn replace(&mut self, listed: Vec<String>) {
        self.nicks = listed;
        self.disagreements.clear();
    }

    /// Brings the roster in line with presence's list of the other servers' members.
    /// A difference is applied only when the next reconciliation finds it again: a
    /// server's notice and its presence record reach Redis separately, so one of them
    /// may briefly be ahead of the other.
    pub(crate) fn reconcile(&mut self, listed: &[String]) -> Vec<RosterChange> {
        let known = counts(self.nicks.iter());
        let listed = counts(listed.iter());
        let mut nicks: Vec<&String> = known.keys().chain(listed.keys()).copied().collect();
        nicks.sort_unstable();
        nicks.dedup();
        let mut disagreements = HashMap::new();
        let mut changes = Vec::new();
        for nick in nicks {
            let have = known.get(nick).copied().unwrap_or(0);
            let want = listed.get(nick).copied().unwrap_or(0);
            if have == want {
                continue;
            }
            if self.disagreements.get(nick) != Some(&want) {
                disagreements.insert(nick.clone(), want);
                continue;
            }
            for _ in want..have {
                changes.push(RosterChange::Left(nick.clone()));
            }
            for _ in have..want {
                changes.push(RosterChange::Joined(nick.clone()));
            }
        }
        for change in &changes {
            match change {
                RosterChange::Joined(nick) => self.add(nick.clone()),
                RosterChange::Left(nick) => self.remove(nick),
            }
        }
        self.disagreements = disagreements;
        changes
    }
}

fn counts<'a>(nicks: impl Iterator<Item = &'a String>) -> HashMap<&'a String, usize> {
    let mut counts = HashMap::new();
    for nick in nicks {
        *counts.entry(nick).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nicks(list: &[&str]) -> Vec<String> {
        list.iter().map(|&n| n.to_owned()).collect()
    }

    #[test]
    fn a_difference_is_applied_when_seen_twice() {
        let mut roster = Roster::default();
        roster.add("ada".into());
        // Ada's server died: presence no longer lists her.
        assert_eq!(roster.reconcile(&[]), []);
        assert_eq!(roster.reconcile(&[]), [RosterChange::Left("ada".into())]);
        assert_eq!(roster.iter().count(), 0);
        // Bob is listed but his notice was missed.
        assert_eq!(roster.reconcile(&nicks(&["bob"])), []);
        assert_eq!(
            roster.reconcile(&nicks(&["bob", "bob"])),
            [],
            "a different count starts over"
        );
        assert_eq!(
            roster.reconcile(&nicks(&["bob", "bob"])),
            [
                RosterChange::Joined("bob".into()),
                RosterChange::Joined("bob".into())
            ]
        );
    }

    #[test]
    fn a_notice_ahead_of_presence_is_not_undone() {
        let mut roster = Roster::default();
        assert_eq!(roster.reconcile(&[]), []);
        // Ada's `joined` arrives before her presence record is in Redis.
        roster.add("ada".into());
        assert_eq!(roster.reconcile(&[]), []);
        assert_eq!(roster.reconcile(&nicks(&["ada"])), []);
        assert_eq!(roster.iter().collect::<Vec<_>>(), ["ada"]);
    }
}
