//! Memory for large logs, prepared ahead of the writer. A log past its first MiB grows in fixed
//! blocks of [`BLOCK`] bytes (see `log_text`). A fresh block's pages are not mapped until first
//! written, and each first write is a page fault (one per 4 KiB, a microsecond or so each) taken
//! by whoever writes: without this pool, the thread appending to the log. Here a thread of the
//! library allocates the next blocks and maps every page of them first, so the appending thread
//! finds them mapped and its appends stay memory copies.
//!
//! Blocks are cut two from one allocation, which lies on one 2 MiB huge page where the kernel
//! gives them on request (see `new_blocks`): one fault maps both, for the pool or for a writer
//! that found the pool empty (the pool's thread may get no core in time on a busy machine). The
//! allocation is done with when both of its blocks are: a log that ends while the other block of
//! its pair is in another live log keeps its block's MiB until that log ends too.
//!
//! A long log that ends gives its allocations back (see [`give_back`]): each one nothing refers
//! to any more (no other log, no PATCH body still in flight) goes back to the pool as two empty
//! blocks, taken before any the pool prepares. Their pages are mapped already, so the next long
//! log costs neither the pool nor the writer a page fault or a page cleared; fresh memory would
//! cost the pool's thread a core-second per GiB, on a machine where the server and the writer
//! want the cores. Blocks given back and not taken within [`LINGER`] are freed.
//!
//! The pool holds about [`READY`] blocks and exists only while large logs are being written:
//! its thread starts on the first demand and ends, freeing what it holds, after [`LINGER`]
//! without one (and with nothing given back left). Per process, as the uploader: a fork()ed child
//! builds its own.

use super::process::PerProcess;
use super::sync::{lock, wait_timeout};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

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
/// How long the pool lives on after the last block was taken, and how long a block given back
/// is kept for the next log at least (freed when the pool's thread next looks, by twice this).
const LINGER: Duration = Duration::from_secs(2);
/// Touching one byte per page maps the whole page. 4 KiB is the smallest page on every
/// platform we build for; on larger pages some touches are redundant, never missing.
const PAGE: usize = 4096;

struct Ready {
    /// Blocks the pool prepared.
    blocks: Vec<BytesMut>,
    /// Blocks of logs that ended, with when each came back, the newest last: taken first (the
    /// newest first, its memory the likeliest in a cache), freed from the oldest once unused for
    /// `LINGER`.
    given_back: VecDeque<(BytesMut, Instant)>,
    /// How many blocks to keep ready now (`READY` ..= `MAX_READY`).
    target: usize,
    running: bool,
    /// When a writer last took a block or said it would soon (the pool ends `LINGER` after).
    last_demand: Instant,
}

impl Ready {
    /// A block given back or prepared, if there is one; a writer finding none while the pool
    /// runs makes it keep twice as many ready.
    fn take(&mut self, how: Take) -> Option<BytesMut> {
        let block = self.given_back.pop_back().map(|(b, _)| b).or_else(|| self.blocks.pop());
        if how == Take::Lines && block.is_none() && self.running {
            self.target = (self.target * 2).min(MAX_READY);
        }
        block
    }

    /// Blocks at hand for the next takes.
    fn at_hand(&self) -> usize {
        self.blocks.len() + self.given_back.len()
    }

    /// Frees the blocks given back that nobody took within `LINGER` before `now`.
    fn free_unused(&mut self, now: Instant) {
        while self.given_back.front().is_some_and(|&(_, at)| at + LINGER <= now) {
            self.given_back.pop_front();
        }
    }
}

struct Pool {
    ready: Mutex<Ready>,
    wanted: Condvar,
}

fn pool() -> Option<&'static Pool> {
    static POOL: PerProcess<Pool> = PerProcess::new();
    POOL.get(|| Pool {
        ready: Mutex::new(Ready {
            blocks: Vec::new(),
            given_back: VecDeque::new(),
            target: READY,
            running: false,
            last_demand: Instant::now(),
        }),
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
/// pool has one, else new ones whose pages the writer maps as it writes (the second of them goes
/// to the pool for the next take; the pool prepares the following ones). Never waits for the pool.
pub fn take(how: Take) -> BytesMut {
    let p = pool();
    if let Some(b) = p.and_then(|p| demand(p, Some(how))) {
        return b;
    }
    let mut blocks = new_blocks(Mapping::OnFirstWrite);
    let first = blocks.swap_remove(0);
    if let Some(p) = p {
        let mut ready = lock(&p.ready);
        // Only into a running pool, which frees what it holds when it ends.
        if ready.running {
            ready.blocks.extend(blocks);
        }
    }
    first
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
    ready.last_demand = Instant::now();
    // A thread that starts prepares first; a running one is woken only when it has blocks to
    // prepare (not for every block taken from a pool that still holds enough).
    let wake = ready.running && ready.at_hand() < ready.target;
    if !ready.running {
        // Without the thread, blocks are simply allocated by the writer: nothing is lost.
        ready.running = std::thread::Builder::new().name("glr-log-blocks".into()).spawn(move || run(p)).is_ok();
    }
    drop(ready);
    if wake {
        p.wanted.notify_one();
    }
    block
}

/// How many blocks are cut from one allocation: two 1 MiB blocks make one 2 MiB huge page.
const BLOCKS_PER_ALLOCATION: usize = 2;

/// Who maps the pages of new blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mapping {
    /// The pool, now: every page mapped in one system call where the kernel has it, else by
    /// writing one byte of each.
    Now,
    /// The writer, by writing (a writer that found the pool empty).
    OnFirstWrite,
}

/// [`BLOCKS_PER_ALLOCATION`] empty blocks cut from one allocation, freed once every block cut
/// from it is. Where the kernel gives huge pages on request and they are 2 MiB, the blocks lie on
/// one huge page (the allocation has room to align them; the room before and after is never
/// written, so it takes address space, not memory): mapping them is one page fault and one
/// clearing of 2 MiB instead of 512 faults, several times less work, so the pool keeps ahead of
/// a fast writer on a busy machine, and a writer that finds the pool empty takes one fault per
/// 2 MiB instead of one per 4 KiB.
fn new_blocks(mapping: Mapping) -> Vec<BytesMut> {
    cut(BytesMut::with_capacity(allocation_size()), Some(mapping))
}

/// What the blocks of one allocation span, end to end.
const SPAN: usize = BLOCKS_PER_ALLOCATION * (BLOCK + HEADROOM);

/// The huge page size the blocks of one allocation share, where the kernel gives huge pages on
/// request and they are the size of an allocation's blocks.
fn huge_page() -> Option<usize> {
    crate::os::huge_page_size().filter(|&h| h == BLOCKS_PER_ALLOCATION * BLOCK)
}

/// The size of one allocation: the blocks, and room to start them on a huge page.
fn allocation_size() -> usize {
    SPAN + huge_page().unwrap_or(0)
}

/// The blocks of `all`, a whole empty allocation of [`allocation_size`]: new (`fresh` says who
/// maps its pages) or given back (its pages as mapped as the log that ended left them).
fn cut(mut all: BytesMut, fresh: Option<Mapping>) -> Vec<BytesMut> {
    let huge = huge_page();
    let skip = huge.map_or(0, |h| (all.as_ptr() as usize).next_multiple_of(h) - all.as_ptr() as usize);
    let mut rest = all.split_off(skip);
    drop(all);
    if let Some(mapping) = fresh {
        if let Some(h) = huge {
            // Asked on the whole span before it is cut: no one block holds a whole huge page.
            crate::os::ask_for_huge_pages(&mut rest.spare_capacity_mut()[..SPAN], h);
        }
        if mapping == Mapping::Now {
            map_for_writing(&mut rest.spare_capacity_mut()[..SPAN]);
        }
    }
    let mut blocks = Vec::with_capacity(BLOCKS_PER_ALLOCATION);
    for _ in 0..BLOCKS_PER_ALLOCATION {
        let after = rest.split_off(BLOCK + HEADROOM);
        blocks.push(std::mem::replace(&mut rest, after));
    }
    blocks
}

/// A piece of a log that ended (a frozen piece or its tail). Where it is the last reference to
/// a block allocation (nothing else refers to any part of it: the other block's log ended too, no
/// PATCH body is still in flight), the allocation goes back to the running pool as empty blocks;
/// anything else is just dropped. The bytes crate tells when a reference is the last one, so no
/// memory anybody can still read is ever written again.
pub fn give_back(piece: Bytes) {
    if let Ok(memory) = piece.try_into_mut() {
        give_back_memory(memory);
    }
}

/// [`give_back`] for a piece that is still writable (a log's tail).
pub fn give_back_memory(memory: BytesMut) {
    let Some(blocks) = reclaim(memory) else { return };
    #[cfg(test)]
    tests::RECLAIMED_HERE.with(|r| r.borrow_mut().extend(blocks.iter().map(|b| b.as_ptr() as usize)));
    let Some(p) = pool() else { return };
    let mut ready = lock(&p.ready);
    // Only into a running pool, which frees them within `LINGER` if no log takes them.
    if ready.running {
        let now = Instant::now();
        ready.given_back.extend(blocks.into_iter().map(|b| (b, now)));
    }
}

/// The empty blocks of the allocation `memory` is the last reference to, or None when it is
/// not a whole block allocation of ours (a short log's buffer, a log restored from a dump).
fn reclaim(mut memory: BytesMut) -> Option<Vec<BytesMut>> {
    // Smaller than a block: a short log's memory (most logs), not worth more.
    if memory.capacity() < BLOCK + HEADROOM {
        return None;
    }
    memory.clear();
    let size = allocation_size();
    // Back to the start of its allocation without a copy (it is empty), if it is the only
    // reference; an allocation of another size is not one of ours.
    if !memory.try_reclaim(size) || memory.capacity() != size {
        return None;
    }
    Some(cut(memory, None))
}

/// Maps every page of `memory` now (one system call where the kernel has it, else a write to
/// each page), so that later writes to it take no page fault.
fn map_for_writing(memory: &mut [std::mem::MaybeUninit<u8>]) {
    if !crate::os::populate_for_writing(memory) {
        touch_pages(memory);
    }
}

/// Writes a byte to every page `memory` reaches into (a page fault each, where not mapped yet),
/// so that later writes to it take none.
pub fn touch_pages(memory: &mut [std::mem::MaybeUninit<u8>]) {
    for byte in memory.iter_mut().step_by(PAGE) {
        byte.write(0);
    }
    if let Some(last) = memory.last_mut() {
        last.write(0);
    }
}

fn run(p: &'static Pool) {
    let mut ready = lock(&p.ready);
    loop {
        if ready.at_hand() < ready.target {
            // Prepared without the lock: a writer taking a block never waits for the faults.
            drop(ready);
            let blocks = new_blocks(Mapping::Now);
            ready = lock(&p.ready);
            ready.blocks.extend(blocks);
            continue;
        }
        ready = wait_timeout(&p.wanted, ready, LINGER).0;
        let now = Instant::now();
        ready.free_unused(now);
        if ready.last_demand + LINGER <= now && ready.at_hand() >= ready.target && ready.given_back.is_empty() {
            // No demand for LINGER: give the memory back and end (the next demand restarts).
            ready.blocks.clear();
            ready.target = READY;
            ready.running = false;
            return;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Where the blocks start that this thread gave back to the pool (per thread: tests run
        /// in parallel).
        pub(in crate::core) static RECLAIMED_HERE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn the_last_reference_to_an_allocation_gives_its_blocks_back_in_place() {
        let blocks = new_blocks(Mapping::OnFirstWrite);
        let starts: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
        let [mut first, second]: [BytesMut; 2] = blocks.try_into().unwrap();
        first.extend_from_slice(b"a PATCH body");
        let first = first.freeze();
        let in_flight = first.slice(2..7);
        // Still read by a PATCH in flight, and the other block still in a log: not given back.
        let first = first.try_into_mut().expect_err("a body in flight refers to it");
        drop(in_flight);
        let first = first.try_into_mut().expect_err("the other block of the pair is in use");
        drop(second);
        let memory = first.try_into_mut().expect("the last reference");
        let again = reclaim(memory).expect("a whole allocation of blocks");
        assert_eq!(again.iter().map(|b| b.as_ptr() as usize).collect::<Vec<_>>(), starts);
        assert!(again.iter().all(|b| b.is_empty() && b.capacity() == BLOCK + HEADROOM));
    }

    #[test]
    fn memory_other_than_a_block_allocation_is_not_taken_for_one() {
        assert!(reclaim(BytesMut::new()).is_none());
        assert!(reclaim(BytesMut::with_capacity(BLOCK + HEADROOM)).is_none(), "a first MiB grown as a Vec");
        assert!(reclaim(BytesMut::with_capacity(allocation_size() + 1)).is_none(), "a large log restored from a dump");
        let mut shared = BytesMut::with_capacity(allocation_size());
        let other = shared.split_off(BLOCK + HEADROOM);
        assert!(reclaim(shared).is_none(), "another part of it is in use");
        drop(other);
    }

    #[test]
    fn blocks_given_back_are_taken_first_newest_first_and_freed_when_unused() {
        let block = |text: &[u8]| BytesMut::from(text);
        let t0 = Instant::now();
        let mut ready = Ready {
            blocks: vec![block(b"prepared")],
            given_back: VecDeque::from([
                (block(b"oldest"), t0),
                (block(b"older"), t0 + LINGER / 2),
                (block(b"newest"), t0 + LINGER / 2),
            ]),
            target: READY,
            running: true,
            last_demand: t0,
        };
        assert_eq!(ready.take(Take::Lines).as_deref(), Some(&b"newest"[..]));
        ready.free_unused(t0 + LINGER);
        assert_eq!(ready.at_hand(), 2, "the block given back LINGER ago is freed, the younger one kept");
        assert_eq!(ready.take(Take::Lines).as_deref(), Some(&b"older"[..]));
        assert_eq!(ready.take(Take::Lines).as_deref(), Some(&b"prepared"[..]));
        assert_eq!(ready.target, READY, "no miss yet");
        assert!(ready.take(Take::Lines).is_none());
    }

    #[test]
    fn blocks_are_empty_with_room_for_a_block() {
        for _ in 0..5 {
            let b = take(Take::Lines);
            assert!(b.is_empty());
            assert!(b.capacity() >= BLOCK + HEADROOM);
        }
        for mapping in [Mapping::Now, Mapping::OnFirstWrite] {
            let blocks = new_blocks(mapping);
            assert_eq!(blocks.len(), BLOCKS_PER_ALLOCATION);
            assert!(blocks.iter().all(|b| b.is_empty() && b.capacity() == BLOCK + HEADROOM));
        }
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
        let mut ready = Ready {
            blocks: Vec::new(),
            given_back: VecDeque::new(),
            target: READY,
            running: true,
            last_demand: Instant::now(),
        };
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

    #[test]
    fn the_blocks_of_one_allocation_follow_each_other_on_one_huge_page() {
        let huge = crate::os::huge_page_size().filter(|&h| h == BLOCKS_PER_ALLOCATION * BLOCK);
        let blocks = new_blocks(Mapping::OnFirstWrite);
        let start = blocks[0].as_ptr() as usize;
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.as_ptr() as usize, start + i * (BLOCK + HEADROOM), "block {i} does not follow the one before");
        }
        if let Some(h) = huge {
            assert_eq!(start % h, 0, "the blocks do not start on a huge page");
        }
    }

    /// Where the kernel has 2 MiB huge pages on request, a writer that found the pool empty
    /// fills two blocks with a fault or two (512 with small pages), unless the kernel had no
    /// huge page to give (it then falls back to small pages and counts the fallback).
    #[cfg(target_os = "linux")]
    #[test]
    fn writing_new_blocks_takes_one_fault_per_huge_page() {
        if crate::os::huge_page_size() != Some(BLOCKS_PER_ALLOCATION * BLOCK) {
            eprintln!("no 2 MiB huge pages on request here: nothing to check");
            return;
        }
        let fallbacks = || {
            let vmstat = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
            vmstat.lines().find_map(|l| l.strip_prefix("thp_fault_fallback ")?.trim().parse::<u64>().ok())
        };
        let fallbacks_before = fallbacks();
        let blocks = new_blocks(Mapping::OnFirstWrite);
        let before = crate::os::thread_minor_faults();
        let mut written = Vec::new();
        for mut b in blocks {
            b.resize(BLOCK + HEADROOM, 1);
            written.push(b);
        }
        let faults = crate::os::thread_minor_faults() - before;
        if fallbacks() != fallbacks_before {
            eprintln!("the kernel had no huge page to give ({faults} faults): nothing to check");
            return;
        }
        // The huge page, the small page the headroom reaches into, and a few of the test's own.
        assert!(faults <= 16, "{faults} page faults writing two new blocks");
        assert!(written.iter().all(|b| b.iter().all(|&c| c == 1)));
    }
}
