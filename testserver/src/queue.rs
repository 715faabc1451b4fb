//! The queue of jobs waiting for a runner, in FIFO order, grouped by what decides which runner
//! may take a job (its tags and whether its ref is protected).
//!
//! A job request takes the first queued job its runner may take. Walking the whole queue for
//! that made every job request cost more with every job queued that this runner may not take
//! (a tag it does not have): groups are few however many jobs there are, so a request looks at
//! the front of each group it may take from and picks the oldest.

use std::collections::VecDeque;

struct Group {
    /// Sorted, without duplicates.
    tags: Vec<String>,
    protected: bool,
    /// (position in the queue, job id), oldest first.
    jobs: VecDeque<(u64, i64)>,
}

/// Who asks: the runner's tags and settings.
pub(crate) struct Taker<'a> {
    pub tags: &'a [String],
    pub run_untagged: bool,
    /// `access_level == "ref_protected"`: only jobs of protected refs.
    pub protected_only: bool,
}

#[derive(Default)]
pub(crate) struct Queue {
    next: u64,
    groups: Vec<Group>,
}

impl Queue {
    pub(crate) fn push(&mut self, id: i64, tags: &[String], protected: bool) {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        let at = self.next;
        self.next += 1;
        match self.groups.iter_mut().find(|g| g.tags == tags && g.protected == protected) {
            Some(g) => g.jobs.push_back((at, id)),
            None => self.groups.push(Group { tags, protected, jobs: VecDeque::from([(at, id)]) }),
        }
    }

    /// Takes `id` out of the queue (taken or canceled); usually it is at the front of its group.
    pub(crate) fn remove(&mut self, id: i64) {
        for g in &mut self.groups {
            if let Some(i) = g.jobs.iter().position(|&(_, j)| j == id) {
                g.jobs.remove(i);
            }
        }
        self.groups.retain(|g| !g.jobs.is_empty());
    }

    /// The oldest queued job `taker` may take and `available` says can be handed out now.
    pub(crate) fn first_for(&self, taker: &Taker, available: impl Fn(i64) -> bool) -> Option<i64> {
        self.groups
            .iter()
            .filter(|g| {
                let tags_ok =
                    if g.tags.is_empty() { taker.run_untagged } else { g.tags.iter().all(|t| taker.tags.contains(t)) };
                tags_ok && (!taker.protected_only || g.protected)
            })
            .filter_map(|g| g.jobs.iter().find(|&&(_, id)| available(id)))
            .min()
            .map(|&(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn oldest_job_the_runner_may_take_first() {
        let mut q = Queue::default();
        q.push(1, &tags(&["gpu"]), false);
        q.push(2, &[], false);
        q.push(3, &tags(&["linux", "docker"]), true);
        q.push(4, &tags(&["docker", "linux"]), false);
        q.push(5, &[], true);
        let any = |_: i64| true;
        let (docker, none) = (tags(&["docker", "linux", "x"]), tags(&[]));
        let runner = |t: &[String], run_untagged, protected_only| -> Option<i64> {
            q.first_for(&Taker { tags: t, run_untagged, protected_only }, any)
        };
        assert_eq!(runner(&docker, true, false), Some(2));
        assert_eq!(runner(&docker, false, false), Some(3));
        assert_eq!(runner(&docker, false, true), Some(3));
        assert_eq!(runner(&none, true, true), Some(5));
        assert_eq!(runner(&none, false, false), None);
        // Jobs that cannot be handed out now are passed over, not removed.
        let docker_taker = Taker { tags: &docker, run_untagged: true, protected_only: false };
        assert_eq!(q.first_for(&docker_taker, |id| id != 2), Some(3));
        q.remove(2);
        q.remove(3);
        assert_eq!(q.first_for(&docker_taker, any), Some(4));
        q.remove(4);
        q.remove(5);
        q.remove(42);
        assert_eq!(q.groups.len(), 1, "empty groups go");
    }
}
