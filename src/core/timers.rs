//! A timer heap for the background thread: which of many items is due when, without looking at
//! every item to find out. Each item embeds a [`Slot`] holding the one time it is set for; setting
//! a new time leaves the old heap entry behind, and an entry whose slot no longer says its time
//! is skipped when it comes out. Only the thread that owns the [`Timers`] touches the slots.

use super::sync::lock;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where an item keeps the time it is set for (None: not set).
#[derive(Debug, Default)]
pub struct Slot(Mutex<Option<Instant>>);

pub trait HasSlot {
    fn slot(&self) -> &Slot;
}

struct Timer<T> {
    at: Instant,
    /// Breaks ties between items due at the same instant (no order on the items themselves).
    seq: u64,
    item: Arc<T>,
}

impl<T> PartialEq for Timer<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Timer<T> {}
impl<T> PartialOrd for Timer<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timer<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct Timers<T> {
    heap: BinaryHeap<Reverse<Timer<T>>>,
    seq: u64,
}

impl<T: HasSlot> Timers<T> {
    pub fn new() -> Self {
        Timers { heap: BinaryHeap::new(), seq: 0 }
    }

    /// Sets `item` for `at` (None: for no time), replacing the time it was set for. Setting
    /// the time it already has adds nothing, so an item looked at often does not fill the heap.
    pub fn set(&mut self, item: &Arc<T>, at: Option<Instant>) {
        let mut slot = lock(&item.slot().0);
        if *slot == at {
            return;
        }
        *slot = at;
        drop(slot);
        if let Some(at) = at {
            self.seq += 1;
            self.heap.push(Reverse(Timer { at, seq: self.seq, item: item.clone() }));
        }
    }

    /// The items due at `now`, in the order of their times; each is then set for no time.
    pub fn take_due(&mut self, now: Instant) -> Vec<Arc<T>> {
        let mut due = Vec::new();
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.at > now {
                break;
            }
            let Some(Reverse(timer)) = self.heap.pop() else { break };
            let mut slot = lock(&timer.item.slot().0);
            if *slot == Some(timer.at) {
                *slot = None;
                drop(slot);
                due.push(timer.item);
            }
        }
        due
    }

    /// Drops the entries left behind by a later setting, and those of items `keep` refuses (a
    /// job that is gone: its entry must not hold it until its time comes). A walk of the heap.
    pub fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        self.heap.retain(|Reverse(t)| *lock(&t.item.slot().0) == Some(t.at) && keep(&t.item));
    }

    /// The earliest time in the heap (possibly one an item was set for before its latest
    /// setting: waking then finds nothing due, which is harmless).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// Entries in the heap, current and left behind (for tests).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Default)]
    struct Item(Slot, u32);
    impl HasSlot for Item {
        fn slot(&self) -> &Slot {
            &self.0
        }
    }

    /// Items 0..n, none set yet.
    fn items(n: u32) -> Vec<Arc<Item>> {
        (0..n).map(|i| Arc::new(Item(Slot::default(), i))).collect()
    }

    fn ids(v: &[Arc<Item>]) -> Vec<u32> {
        v.iter().map(|i| i.1).collect()
    }

    #[test]
    fn items_come_out_in_the_order_of_their_times_and_only_when_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let items = items(4);
        let mut timers = Timers::new();
        timers.set(&items[0], Some(t0 + 3 * s));
        timers.set(&items[1], Some(t0 + s));
        timers.set(&items[2], Some(t0 + 2 * s));
        timers.set(&items[3], None);
        assert_eq!(timers.next(), Some(t0 + s));
        assert!(timers.take_due(t0).is_empty());
        assert_eq!(ids(&timers.take_due(t0 + 2 * s)), [1, 2]);
        assert_eq!(ids(&timers.take_due(t0 + 10 * s)), [0]);
        assert!(timers.take_due(t0 + 10 * s).is_empty(), "an item comes out once per setting");
    }

    #[test]
    fn a_new_time_replaces_the_old_one_and_the_same_time_adds_nothing() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let a = Arc::new(Item(Slot::default(), 7));
        let mut timers = Timers::new();
        timers.set(&a, Some(t0 + s));
        for _ in 0..1000 {
            timers.set(&a, Some(t0 + s));
        }
        assert_eq!(timers.entries(), 1, "setting the same time again adds no entry");
        timers.set(&a, Some(t0 + 5 * s));
        assert!(timers.take_due(t0 + 2 * s).is_empty(), "the old time no longer counts");
        timers.set(&a, None);
        assert!(timers.take_due(t0 + 10 * s).is_empty(), "an item set for no time never comes out");
        timers.set(&a, Some(t0));
        assert_eq!(ids(&timers.take_due(t0)), [7]);
    }

    #[test]
    fn retain_drops_what_was_left_behind_and_what_is_refused() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let items = items(3);
        let mut timers = Timers::new();
        for (i, item) in items.iter().enumerate() {
            timers.set(item, Some(t0 + (i as u32 + 10) * s));
        }
        timers.set(&items[0], Some(t0 + 20 * s));
        assert_eq!(timers.entries(), 4);
        timers.retain(|item| item.1 != 1);
        assert_eq!(timers.entries(), 2, "item 0's first time and item 1 are gone");
        assert_eq!(Arc::strong_count(&items[1]), 1, "the heap no longer holds item 1");
        assert_eq!(ids(&timers.take_due(t0 + 30 * s)), [2, 0]);
    }
}
