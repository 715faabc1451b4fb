//! Memory for large logs, prepared ahead of the writer. A log past its first MiB grows in fixed
//! blocks of [`BLOCK`] bytes (see `log_text`). A fresh block's pages are not mapped until first
//! written, and each first write is a page fault (one per 4 KiB, a microsecond or so each) taken
//! by whoever writes: without this pool, the thread appending to the log. Here a thread of the
//! library allocates the next blocks and touches every page of them first, so the appending
//! thread finds them mapped and its appends stay memory copies.
//!
//! The pool holds at most [`READY`] blocks and exists only while large logs are being written:
//! its thread starts on the first demand and ends, freeing what it holds, after [`LINGER`]
//! without one. Per process, as the uploader: a fork()ed child builds its own.

use super::process::PerProcess;
use super::sync::{lock, wait_timeout};
use bytes::BytesMut;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The size of one block of a large log, and of its largest PATCH (`trace::MAX_PATCH`).
pub const BLOCK: usize = 1024 * 1024;
/// Room in a block beyond [`BLOCK`] for output longer than its input at a block's end (see
/// `log_text::LogText::room`), so that a full block holds exactly `BLOCK` bytes of log.
pub const HEADROOM: usize = 64;
/// Blocks kept ready at first: for the writer's next blocks, and for a second writer.
const READY: usize = 2;
/// At most this many: each time a writer finds the pool empty (it wrote faster than the pool
/// could prepare, or the pool's thread did not get a core in time), twice as many are kept
/// ready, up to this; back to `READY` when the pool ends.
const MAX_READY: usize = 8;
/// How long the pool lives on after the last block was taken.
const LINGER: Duration = Duration::from_secs(2);
/// Touching one byte per page maps the whole page. 4 KiB is the smallest page on every
/// platform we build for; on larger pages some touches are redundant, never missing.
const PAGE: usize = 4096;

struct Ready {
    blocks: Vec<BytesMut>,
    /// How many blocks to keep ready now (`READY` ..= `MAX_READY`).
    target: usize,
    running: bool,
}

impl Ready {
    /// A prepared block, if there is one; a writer finding none while the pool runs makes it
    /// keep twice as many ready.
    fn take(&mut self, how: Take) -> Option<BytesMut> {
        let block = self.blocks.pop();
        if how == Take::Lines && block.is_none() && self.running {
            self.target = (self.target * 2).min(MAX_READY);
        }
        block
    }
}

struct Pool {
    ready: Mutex<Ready>,
    wanted: Condvar,
}

fn pool() -> Option<&'static Pool> {
    static POOL: PerProcess<Pool> = PerProcess::new();
    POOL.get(|| Pool {
        ready: Mutex::new(Ready { blocks: Vec::new(), target: READY, running: false }),
        wanted: Condvar::new(),
    })
}

/// How a block is taken, which decides what finding the pool empty means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// For a writer's next lines: an empty pool means the writer outran it, and more blocks are
    /// kept ready from then on.
    Lines,
    /// For the middle of one append longer than a block: no pool keeps ahead of one copy, so an
    /// empty pool says nothing about the writer, and keeping more ready would only hold memory
    /// (up to [`MAX_READY`] blocks) after the append.
    OneLongAppend,
}

/// An empty block with room for [`BLOCK`] bytes and the [`HEADROOM`]: a prepared one when the
/// pool has one, else a fresh allocation (the pool then prepares the following ones). Never
/// waits for the pool.
pub fn take(how: Take) -> BytesMut {
    if let Some(b) = pool().and_then(|p| demand(p, Some(how))) {
        return b;
    }
    BytesMut::with_capacity(BLOCK + HEADROOM)
}

/// A log will soon need blocks (its first MiB is half full): the pool starts preparing them
/// now, so that the first ones are ready when a fast writer gets there.
pub fn expect() {
    if let Some(p) = pool() {
        demand(p, None);
    }
}

/// Wakes the pool (starting its thread if needed), and takes a prepared block if `take` says how.
fn demand(p: &'static Pool, take: Option<Take>) -> Option<BytesMut> {
    let mut ready = lock(&p.ready);
    let block = take.and_then(|how| ready.take(how));
    if !ready.running {
        // Without the thread, blocks are simply allocated by the writer: nothing is lost.
        ready.running = std::thread::Builder::new().name("glr-log-blocks".into()).spawn(move || run(p)).is_ok();
    }
    drop(ready);
    p.wanted.notify_one();
    block
}

/// A block whose every page is mapped: in one system call where the kernel has it (several
/// times faster than a trap per page, so the pool keeps ahead of a fast writer on a busy
/// machine), else by writing one byte of each page.
fn prepared() -> BytesMut {
    let mut block = BytesMut::with_capacity(BLOCK + HEADROOM);
    let spare = block.spare_capacity_mut();
    if !crate::os::populate_for_writing(spare) {
        for byte in spare.iter_mut().step_by(PAGE) {
            byte.write(0);
        }
    }
    block
}

fn run(p: &'static Pool) {
    let mut ready = lock(&p.ready);
    loop {
        if ready.blocks.len() < ready.target {
            // Prepared without the lock: a writer taking a block never waits for the faults.
            drop(ready);
            let block = prepared();
            ready = lock(&p.ready);
            ready.blocks.push(block);
            continue;
        }
        let (guard, waited) = wait_timeout(&p.wanted, ready, LINGER);
        ready = guard;
        if waited.timed_out() && ready.blocks.len() >= ready.target {
            // No demand for LINGER: give the memory back and end (the next demand restarts).
            ready.blocks.clear();
            ready.target = READY;
            ready.running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_empty_with_room_for_a_block() {
        for _ in 0..5 {
            let b = take(Take::Lines);
            assert!(b.is_empty());
            assert!(b.capacity() >= BLOCK + HEADROOM);
        }
        let b = prepared();
        assert!(b.is_empty() && b.capacity() >= BLOCK + HEADROOM);
    }

    #[test]
    fn an_expected_demand_fills_the_pool_before_any_block_is_taken() {
        expect();
        let p = pool().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lock(&p.ready).blocks.len() < READY {
            assert!(std::time::Instant::now() < deadline, "the pool did not fill on an expected demand");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_pool_fills_up_to_ready_and_hands_out_prepared_blocks() {
        drop(take(Take::Lines));
        let p = pool().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lock(&p.ready).blocks.len() < READY {
            assert!(std::time::Instant::now() < deadline, "the pool never filled");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(lock(&p.ready).blocks.len() <= MAX_READY);
    }

    #[test]
    fn an_empty_pool_keeps_more_ready_for_a_fast_writer_but_not_for_one_long_append() {
        let mut ready = Ready { blocks: Vec::new(), target: READY, running: true };
        assert!(ready.take(Take::OneLongAppend).is_none());
        assert_eq!(ready.target, READY, "a long append's miss keeps no more ready");
        assert!(ready.take(Take::Lines).is_none());
        assert_eq!(ready.target, 2 * READY, "a writer's miss keeps twice as many ready");
        for _ in 0..10 {
            ready.take(Take::Lines);
        }
        assert_eq!(ready.target, MAX_READY);
        ready.blocks.push(BytesMut::with_capacity(16));
        assert!(ready.take(Take::Lines).is_some());
    }
}
