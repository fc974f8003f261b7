//! The write journal: bounded multi-producer, single-consumer queues of image
//! writes in the shared mapping, one ring per producer process. Plugins (in any
//! process) queue writes without taking the image lock and are never blocked;
//! the scan thread applies them in stamp order under the lock each cycle, so
//! the last write wins. A producer process that dies mid-write stalls only its
//! own ring, which the supervisor has reset when it reaps the process: the
//! dead process costs at most its own unpublished writes.
//!
//! Everything in a ring lives in memory a worker can write (through ctypes and
//! the capsule's table pointers, a plugin reaches the whole mapping), so the
//! scan thread trusts none of it: a tail, a reset flag or a slot sequence
//! number that no honest producer can leave is a corrupt ring, which is reset
//! from the scan thread's own read position and counted (see
//! [`super::RingFigures`]), and every pass is bounded by
//! [`JOURNAL_CAPACITY`] applies per ring whatever the ring holds.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(test)]
use super::RingReport;
use super::{Image, Table};
use crate::config::MAX_PLUGINS;
use crate::sys::monotonic_ns;

/// Rings of the journal: one per producer process, so that a process that
/// dies between claiming a slot and publishing it (a SIGKILLed worker) stalls
/// only its own ring. Ring 0 is the supervisor's process (shared-mode Python
/// plugins, native plugins); ring `slot + 1` is the worker process of the
/// plugin in callback slot `slot`.
pub const JOURNAL_RINGS: usize = MAX_PLUGINS + 1;
/// Depth of each ring. At a 20 ms scan one producer can queue 1024 writes per
/// cycle before a write is refused; 17 rings × 1024 × 32 bytes = 544 KiB.
pub const JOURNAL_CAPACITY: usize = 1024;
/// Tries a producer makes to claim a slot before the write counts as
/// refused for a full journal: other threads of the process win the race
/// a few times at most; more is a ring written over in the mapping.
const CLAIM_ATTEMPTS: u32 = JOURNAL_CAPACITY as u32;
/// Longest publish-to-apply wait one write adds to a ring's figures: a
/// worker can forge a slot's publish time; one forged slot must not swamp the
/// ring's mean.
const MAX_COUNTED_WAIT_NS: u64 = 60_000_000_000;
/// Apply passes (scan cycles) a ring's oldest write may stay claimed but
/// unpublished before the journal counts as stalled. A live producer publishes
/// within nanoseconds; only a producer that died mid-write (and whose ring the
/// supervisor has not reset yet) or one stopped by a debugger gets here.
pub const RING_STALL_PASSES: u64 = 50;

/// `journal_write_*` return: accepted.
pub const JOURNAL_OK: c_int = 0;
/// `journal_write_*` return: wrong type code for that function, index out of
/// range or bit > 7. Counted in `rejected`.
pub const JOURNAL_REJECTED: c_int = -1;
/// `journal_write_*` return: the journal is full this cycle; the write is dropped
/// and counted, the caller is never blocked.
pub const JOURNAL_FULL: c_int = -2;

/// `Ring::reset` states: none (0), requested by the supervisor, being carried
/// out by the scan thread. Any other value is a corrupt ring.
const RESET_REQUESTED: u64 = 1;
const RESET_RUNNING: u64 = 2;

/// What made the scan thread find a ring corrupt (kept with the offending
/// value in [`super::RingFigures`], told by [`Corruption::describe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Corruption {
    /// The tail is behind the scan thread's read position or more than
    /// [`JOURNAL_CAPACITY`] ahead of it.
    Tail = 1,
    /// The reset flag holds a value the supervisor never writes.
    Reset = 2,
    /// The oldest slot's sequence number is neither "free" nor "published"
    /// for the read position.
    Seq = 3,
}

impl Corruption {
    pub(super) fn from_code(code: u64) -> Option<Corruption> {
        match code {
            1 => Some(Corruption::Tail),
            2 => Some(Corruption::Reset),
            3 => Some(Corruption::Seq),
            _ => None,
        }
    }

    /// One phrase: what was found, with the value and the scan thread's read
    /// position `head`.
    pub fn describe(self, value: u64, head: u64) -> String {
        match self {
            Corruption::Tail => format!(
                "its tail is {value} with the read position at {head} (possible: {head}..={})",
                head.saturating_add(JOURNAL_CAPACITY as u64)
            ),
            Corruption::Reset => format!("its reset flag is {value} (possible: 0, 1, 2)"),
            Corruption::Seq => format!(
                "its oldest slot's sequence number is {value} at read position {head} (possible: {head} or {})",
                head.saturating_add(1)
            ),
        }
    }
}

/// One queued write. Data fields are written by the producer that claimed the
/// slot, then published by `seq` (release); the scan thread reads them after an
/// acquire load of `seq`.
#[repr(C)]
pub(super) struct JournalSlot {
    pub(super) seq: AtomicU64,
    /// Global order across rings (last write wins across producers too).
    stamp: UnsafeCell<u64>,
    table: UnsafeCell<u8>,
    bit: UnsafeCell<u8>,
    index: UnsafeCell<u32>,
    value: UnsafeCell<u64>,
    /// When the producer published it (`CLOCK_MONOTONIC` ns): the ring's
    /// publish-to-apply figures.
    published_ns: UnsafeCell<u64>,
}

/// One producer's ring: a bounded multi-producer (the threads of one process),
/// single-consumer queue with a sequence number per slot.
#[repr(C)]
pub(super) struct Ring {
    /// Next position a producer claims.
    tail: AtomicU64,
    /// Set by the supervisor once this ring's producer process is dead (and no
    /// new one is started); the scan thread resets the ring and clears it.
    reset: AtomicU64,
    pub(super) slots: [JournalSlot; JOURNAL_CAPACITY],
}

impl Ring {
    /// Sets every slot free for the lap starting at `from`. Only when no
    /// producer uses the ring: at image creation, or by the consumer on reset.
    pub(super) fn init(&self, from: u64) {
        for k in 0..JOURNAL_CAPACITY as u64 {
            self.slots[((from + k) % JOURNAL_CAPACITY as u64) as usize]
                .seq
                .store(from + k, Ordering::Relaxed);
        }
        self.tail.store(from, Ordering::Release);
    }
}

/// The scan thread's read positions, one per ring (fixed size: the scan loop
/// allocates nothing). Only the scan thread's own memory says where a ring's
/// unread writes start: the mapping's copy could be forged.
#[derive(Debug, Default)]
pub struct JournalCursor {
    heads: [u64; JOURNAL_RINGS],
}

/// A slot claimed by [`Image::claim`] and not yet published.
pub(super) struct Claim<'a> {
    slot: &'a JournalSlot,
    pos: u64,
    stamp: u64,
}

/// Validates the type code against the tables a `journal_write_*` function
/// serves, then queues.
pub(super) fn write(code: c_int, first: Table, index: c_int, bit: c_int, value: u64) -> c_int {
    let Some(img) = super::get() else {
        return JOURNAL_REJECTED;
    };
    let ok_table = Table::from_code(code)
        .filter(|t| (*t as u8) >= first as u8 && (*t as u8) < first as u8 + 3)
        .filter(|t| first as u8 != Table::ByteIn as u8 || (*t as u8) < Table::IntIn as u8);
    match (ok_table, usize::try_from(index), usize::try_from(bit)) {
        (Some(t), Ok(i), Ok(b)) => img.journal_push(t, i, b, value),
        _ => {
            img.header()
                .journal_rejected
                .fetch_add(1, Ordering::Relaxed);
            JOURNAL_REJECTED
        }
    }
}

impl Image {
    /// Queues a write for the scan thread into this process's ring. Lock-free;
    /// never blocks.
    pub fn journal_push(&self, table: Table, index: usize, bit: usize, value: u64) -> c_int {
        self.journal_push_to(self.ring, table, index, bit, value)
    }

    /// Queues a write into ring `ring` (this process's ring, except in tests
    /// that play several producer processes).
    pub fn journal_push_to(
        &self,
        ring: usize,
        table: Table,
        index: usize,
        bit: usize,
        value: u64,
    ) -> c_int {
        let h = self.header();
        if index >= self.buffer_size || bit >= table.values_per_slot() || ring >= JOURNAL_RINGS {
            h.journal_rejected.fetch_add(1, Ordering::Relaxed);
            return JOURNAL_REJECTED;
        }
        match self.claim(ring) {
            Some(c) => {
                self.publish(c, table, index, bit, value);
                JOURNAL_OK
            }
            None => {
                h.journal_overflows.fetch_add(1, Ordering::Relaxed);
                h.ring_overflows[ring].fetch_add(1, Ordering::Relaxed);
                JOURNAL_FULL
            }
        }
    }

    /// Takes a stamp, then claims the next slot of ring `ring` (`None`: full,
    /// or no slot claimed within [`CLAIM_ATTEMPTS`]).
    ///
    /// The stamp comes first: every write ahead of this one in the ring was
    /// claimed, and so stamped, before this claim. A write that returned to
    /// its caller before another producer's write started therefore has a
    /// lower stamp than that write and than everything queued before it in
    /// its own ring, which is what the merge in [`Image::apply_journal`] needs
    /// to apply them in that order. (Stamped after the claim, a thread that
    /// claimed and was descheduled, while ctypes had released the GIL, could
    /// stamp after a later write from another ring and let a write queued
    /// behind it win against that later write.)
    pub(super) fn claim(&self, ring: usize) -> Option<Claim<'_>> {
        let h = self.header();
        let r = &h.rings[ring];
        let stamp = h.journal_stamp.fetch_add(1, Ordering::Relaxed);
        let mut pos = r.tail.load(Ordering::Relaxed);
        // Bounded: a slot whose sequence number was written over (always
        // "ahead") would otherwise keep this producer re-reading the tail for
        // ever, and producers include native cycle hooks on the scan thread.
        for _ in 0..CLAIM_ATTEMPTS {
            let slot = &r.slots[(pos % JOURNAL_CAPACITY as u64) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == pos {
                // AcqRel: this claim happens after the claims (and so the
                // stamps) of the slots ahead of it.
                match r.tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(Claim { slot, pos, stamp }),
                    Err(actual) => pos = actual,
                }
            } else if seq < pos {
                // The slot still holds an entry from one lap ago: full.
                return None;
            } else {
                pos = r.tail.load(Ordering::Relaxed);
            }
        }
        None
    }

    /// Fills a claimed slot and publishes it to the scan thread.
    pub(super) fn publish(&self, c: Claim<'_>, table: Table, index: usize, bit: usize, value: u64) {
        let slot = c.slot;
        // SAFETY: winning the CAS for `pos` gives this producer exclusive
        // access to the slot's data until it publishes `seq = pos + 1`; the
        // consumer reads only after that.
        unsafe {
            *slot.stamp.get() = c.stamp;
            *slot.table.get() = table as u8;
            *slot.bit.get() = bit as u8;
            *slot.index.get() = index as u32;
            *slot.value.get() = value;
            *slot.published_ns.get() = monotonic_ns();
        }
        slot.seq.store(c.pos + 1, Ordering::Release);
    }

    /// Asks the scan thread to reset ring `ring`, whose producer process is
    /// dead: its published writes are applied, its unpublished ones (at most
    /// one per thread it had) are counted as lost. Call it only when no
    /// process produces into the ring, and start the next one once
    /// [`Image::ring_reset_done`] says so.
    pub fn request_ring_reset(&self, ring: usize) {
        if let Some(r) = self.header().rings.get(ring) {
            r.reset.store(RESET_REQUESTED, Ordering::Release);
        }
    }

    /// Waits up to `budget` for the scan thread to carry out the reset of
    /// `ring`; withdraws a request it has not started by then (a stalled scan
    /// thread, which the watchdog reports anyway). True when the ring is clean.
    /// Bounded whatever the flag holds: a worker can write it too.
    pub fn await_ring_reset(&self, ring: usize, budget: std::time::Duration) -> bool {
        let Some(r) = self.header().rings.get(ring) else {
            return true;
        };
        let end = std::time::Instant::now() + budget;
        loop {
            let state = r.reset.load(Ordering::Acquire);
            if state == 0 {
                return true;
            }
            if std::time::Instant::now() >= end {
                // Withdraw a request the scan thread has not taken up; any
                // other value (running, or forged) is left to the scan thread,
                // which resets the ring once it sees it.
                let _ = r.reset.compare_exchange(
                    RESET_REQUESTED,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The ring whose oldest write has been claimed but unpublished for more
    /// than [`RING_STALL_PASSES`] scan cycles, if any, with that count.
    pub fn stalled_ring(&self) -> Option<(usize, u64)> {
        self.figures
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.stalled_passes.load(Ordering::Relaxed)))
            .find(|&(_, n)| n > RING_STALL_PASSES)
    }

    /// Applies queued writes, oldest stamp first across the rings (last write
    /// wins), and carries out requested ring resets. Called by the scan thread
    /// only (single consumer), with the image lock held. Allocation-free, and
    /// bounded whatever the mapping holds: each ring is checked before it is
    /// read (a corrupt one is reset, see [`Corruption`]), and at most
    /// [`JOURNAL_CAPACITY`] writes are applied from each ring per pass.
    /// Returns the number applied.
    pub fn apply_journal(&self, cursor: &mut JournalCursor) -> u64 {
        let h = self.header();
        let start = monotonic_ns();
        let mut applied = 0;
        let mut budget = [JOURNAL_CAPACITY as u32; JOURNAL_RINGS];
        for (i, r) in h.rings.iter().enumerate() {
            let head = &mut cursor.heads[i];
            // Requested (1) → in progress (2) → done (0): a request the
            // supervisor withdraws in time is never half carried out.
            match r.reset.load(Ordering::Relaxed) {
                0 => {}
                RESET_REQUESTED
                    if r.reset
                        .compare_exchange(
                            RESET_REQUESTED,
                            RESET_RUNNING,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok() =>
                {
                    applied += self.reset_ring(i, head, start);
                    r.reset.store(0, Ordering::Release);
                }
                RESET_REQUESTED => {}
                other => {
                    // RESET_RUNNING is only ever set (and cleared) inside
                    // this function: seen here, like any other value, it was
                    // written by someone else.
                    self.ring_corrupt(i, head, Corruption::Reset, other);
                    r.reset.store(0, Ordering::Release);
                }
            }
            let tail = r.tail.load(Ordering::Acquire);
            if tail < *head || tail - *head > JOURNAL_CAPACITY as u64 {
                self.ring_corrupt(i, head, Corruption::Tail, tail);
            }
        }
        loop {
            // The published write with the lowest stamp among the rings' heads.
            let mut next: Option<(usize, u64)> = None;
            for (i, r) in h.rings.iter().enumerate() {
                if budget[i] == 0 {
                    continue;
                }
                let head = cursor.heads[i];
                let slot = &r.slots[(head % JOURNAL_CAPACITY as u64) as usize];
                let seq = slot.seq.load(Ordering::Acquire);
                if seq == head {
                    continue;
                }
                if seq != head + 1 {
                    self.ring_corrupt(i, &mut cursor.heads[i], Corruption::Seq, seq);
                    budget[i] = 0;
                    continue;
                }
                // SAFETY: published (seq == head + 1): the producer is done
                // with the slot and nobody writes it until we release it.
                let stamp = unsafe { *slot.stamp.get() };
                if next.is_none_or(|(_, s)| stamp < s) {
                    next = Some((i, stamp));
                }
            }
            let Some((i, _)) = next else { break };
            budget[i] -= 1;
            self.apply_slot(i, &mut cursor.heads[i], start);
            applied += 1;
        }
        for (i, r) in h.rings.iter().enumerate() {
            // Claimed but unpublished oldest write: a producer mid-write, or
            // one that died there.
            let f = &self.figures[i];
            let pending = r.tail.load(Ordering::Relaxed) > cursor.heads[i];
            if pending && budget[i] > 0 {
                f.stalled_passes.fetch_add(1, Ordering::Relaxed);
            } else if f.stalled_passes.load(Ordering::Relaxed) != 0 {
                f.stalled_passes.store(0, Ordering::Relaxed);
            }
        }
        if applied > 0 {
            h.journal_applied.fetch_add(applied, Ordering::Relaxed);
        }
        self.apply_max_ns
            .fetch_max(monotonic_ns().saturating_sub(start), Ordering::Relaxed);
        applied
    }

    /// Applies the published slot at `*head` of ring `ring` and frees it for
    /// the next lap; `now` is the pass's start, for the ring's figures.
    fn apply_slot(&self, ring: usize, head: &mut u64, now: u64) {
        let r = &self.header().rings[ring];
        let slot = &r.slots[(*head % JOURNAL_CAPACITY as u64) as usize];
        // SAFETY: the caller saw seq == head + 1: published, and nobody writes
        // the slot until the store below releases it.
        let (table, bit, index, value, published) = unsafe {
            (
                *slot.table.get(),
                *slot.bit.get(),
                *slot.index.get(),
                *slot.value.get(),
                *slot.published_ns.get(),
            )
        };
        slot.seq
            .store(*head + JOURNAL_CAPACITY as u64, Ordering::Release);
        *head += 1;
        if let Some(t) = Table::ALL.get(table as usize) {
            self.store(*t, index as usize, bit as usize, value);
        }
        let f = &self.figures[ring];
        let wait = now.saturating_sub(published).min(MAX_COUNTED_WAIT_NS);
        f.applied.fetch_add(1, Ordering::Relaxed);
        f.wait_sum_ns.fetch_add(wait, Ordering::Relaxed);
        f.wait_max_ns.fetch_max(wait, Ordering::Relaxed);
        f.wait_max_run_ns.fetch_max(wait, Ordering::Relaxed);
    }

    /// Resets a ring whose producer is dead: applies what it published,
    /// counts what it claimed and never published as lost, and frees every
    /// slot from the tail on. Returns the number applied. At most
    /// [`JOURNAL_CAPACITY`] steps: a tail further away is a corrupt ring.
    fn reset_ring(&self, ring: usize, head: &mut u64, now: u64) -> u64 {
        let r = &self.header().rings[ring];
        let tail = r.tail.load(Ordering::Acquire);
        if tail < *head || tail - *head > JOURNAL_CAPACITY as u64 {
            self.ring_corrupt(ring, head, Corruption::Tail, tail);
            return 0;
        }
        let mut applied = 0;
        let mut lost = 0;
        while *head < tail {
            let slot = &r.slots[(*head % JOURNAL_CAPACITY as u64) as usize];
            if slot.seq.load(Ordering::Acquire) == *head + 1 {
                self.apply_slot(ring, head, now);
                applied += 1;
            } else {
                lost += 1;
                *head += 1;
            }
        }
        r.init(tail);
        self.figures[ring]
            .stalled_passes
            .store(0, Ordering::Relaxed);
        if lost > 0 {
            self.header()
                .journal_lost
                .fetch_add(lost, Ordering::Relaxed);
        }
        applied
    }

    /// A ring found corrupt: counted with what was found, then set empty
    /// from the scan thread's own read position (its pending writes are
    /// dropped: which of them are real cannot be told). Bounded:
    /// [`JOURNAL_CAPACITY`] stores.
    fn ring_corrupt(&self, ring: usize, head: &mut u64, what: Corruption, value: u64) {
        let f = &self.figures[ring];
        f.corrupt.fetch_add(1, Ordering::Relaxed);
        f.corrupt_value.store(value, Ordering::Relaxed);
        f.corrupt_head.store(*head, Ordering::Relaxed);
        f.corrupt_kind.store(what as u64, Ordering::Release);
        f.stalled_passes.store(0, Ordering::Relaxed);
        self.header().rings[ring].init(*head);
    }

    /// Writes that could not be queued because the journal was full.
    pub fn journal_overflows(&self) -> u64 {
        self.header().journal_overflows.load(Ordering::Relaxed)
    }

    /// Writes refused for a wrong type code, index or bit.
    pub fn journal_rejected(&self) -> u64 {
        self.header().journal_rejected.load(Ordering::Relaxed)
    }

    /// Writes applied by the scan thread.
    pub fn journal_applied(&self) -> u64 {
        self.header().journal_applied.load(Ordering::Relaxed)
    }

    /// Writes claimed by a producer process that died before publishing them
    /// (at most one per thread of each dead process), discarded at the ring's
    /// reset.
    pub fn journal_lost(&self) -> u64 {
        self.header().journal_lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image::create(64).unwrap()
    }

    /// One apply pass under the lock, as the scan thread does it.
    fn pass(img: &Image, cursor: &mut JournalCursor) -> u64 {
        assert!(img.lock_until(monotonic_ns() + 1_000_000_000));
        let n = img.apply_journal(cursor);
        img.unlock();
        n
    }

    #[test]
    fn a_forged_tail_with_a_reset_request_is_a_corrupt_ring_not_a_spin() {
        let img = image();
        let mut cursor = JournalCursor::default();
        assert_eq!(img.journal_push_to(2, Table::IntMem, 1, 0, 7), JOURNAL_OK);
        let r = &img.header().rings[2];
        r.tail.store(1 << 62, Ordering::Relaxed);
        r.reset.store(RESET_REQUESTED, Ordering::Relaxed);
        pass(&img, &mut cursor);
        assert_eq!(img.take_ring_figures(2).corrupt, 1);
        assert_eq!(img.ring_corruption(2), Some((Corruption::Tail, 1 << 62, 0)));
        assert_eq!(r.reset.load(Ordering::Relaxed), 0);
        // The ring works again from the scan thread's read position.
        assert_eq!(img.journal_push_to(2, Table::IntMem, 1, 0, 9), JOURNAL_OK);
        assert_eq!(pass(&img, &mut cursor), 1);
        assert_eq!(img.read(Table::IntMem, 1, 0), Some(9));
        // A tail behind the read position is just as impossible.
        r.tail.store(0, Ordering::Relaxed);
        pass(&img, &mut cursor);
        assert_eq!(img.take_ring_figures(2).corrupt, 1);
    }

    #[test]
    fn forged_sequence_numbers_cost_at_most_one_ring_of_applies_per_pass() {
        let img = image();
        let mut cursor = JournalCursor::default();
        let r = &img.header().rings[3];
        // Every slot "published" for the current lap, with a plausible tail:
        // a full ring, applied once, then seen to be garbage.
        for (k, slot) in r.slots.iter().enumerate() {
            slot.seq.store(k as u64 + 1, Ordering::Relaxed);
        }
        r.tail.store(JOURNAL_CAPACITY as u64, Ordering::Relaxed);
        assert_eq!(pass(&img, &mut cursor), JOURNAL_CAPACITY as u64);
        // A slot whose sequence number no producer can leave.
        let head = cursor.heads[3];
        r.tail.store(head + 1, Ordering::Relaxed);
        r.slots[(head % JOURNAL_CAPACITY as u64) as usize]
            .seq
            .store(head + 77, Ordering::Relaxed);
        assert_eq!(pass(&img, &mut cursor), 0);
        assert_eq!(
            img.ring_corruption(3),
            Some((Corruption::Seq, head + 77, head))
        );
        // Other rings are untouched by it.
        assert_eq!(img.journal_push_to(0, Table::IntMem, 2, 0, 5), JOURNAL_OK);
        assert_eq!(pass(&img, &mut cursor), 1);
        assert_eq!(img.take_ring_figures(0).corrupt, 0);
    }

    #[test]
    fn a_producer_on_a_written_over_ring_is_refused_not_spun() {
        let img = image();
        let mut cursor = JournalCursor::default();
        let r = &img.header().rings[0];
        // The tail's slot claims to be far ahead: the old claim loop re-read
        // the tail for ever.
        r.slots[0].seq.store(1 << 40, Ordering::Relaxed);
        assert_eq!(img.journal_push_to(0, Table::IntMem, 0, 0, 1), JOURNAL_FULL);
        // The scan thread finds the ring corrupt and resets it; writes flow.
        pass(&img, &mut cursor);
        assert_eq!(img.ring_corruption(0).map(|c| c.0), Some(Corruption::Seq));
        assert_eq!(img.journal_push_to(0, Table::IntMem, 0, 0, 4), JOURNAL_OK);
        assert_eq!(pass(&img, &mut cursor), 1);
        assert_eq!(img.read(Table::IntMem, 0, 0), Some(4));
    }

    #[test]
    fn a_forged_reset_flag_is_reported_and_never_waited_on_without_bound() {
        let img = image();
        let mut cursor = JournalCursor::default();
        let r = &img.header().rings[4];
        r.reset.store(RESET_RUNNING, Ordering::Relaxed);
        // The supervisor's wait gives up after its budget whatever the flag.
        let t = std::time::Instant::now();
        assert!(!img.await_ring_reset(4, std::time::Duration::from_millis(20)));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        pass(&img, &mut cursor);
        assert_eq!(img.ring_corruption(4).map(|c| c.0), Some(Corruption::Reset));
        assert!(img.await_ring_reset(4, std::time::Duration::ZERO));
    }

    #[test]
    fn a_write_returned_before_another_rings_write_started_loses_to_it() {
        // Thread 1 of a worker claims a slot and is descheduled before it
        // publishes; thread 2 of that worker writes X = 2 and returns; then
        // another process writes X = 3. X must end as 3.
        let img = image();
        let mut cursor = JournalCursor::default();
        let first = img.claim(1).unwrap();
        assert_eq!(img.journal_push_to(1, Table::IntMem, 0, 0, 2), JOURNAL_OK);
        assert_eq!(img.journal_push_to(2, Table::IntMem, 0, 0, 3), JOURNAL_OK);
        img.publish(first, Table::IntMem, 9, 0, 1);
        assert_eq!(pass(&img, &mut cursor), 3);
        assert_eq!(img.read(Table::IntMem, 0, 0), Some(3));
        assert_eq!(img.read(Table::IntMem, 9, 0), Some(1));
    }

    #[test]
    fn figures_count_applies_and_publish_to_apply_waits_per_ring() {
        let img = image();
        let mut cursor = JournalCursor::default();
        for v in 0..10 {
            assert_eq!(img.journal_push_to(5, Table::IntMem, 0, 0, v), JOURNAL_OK);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        pass(&img, &mut cursor);
        let f = img.take_ring_figures(5);
        assert_eq!(f.applied, 10);
        assert!(f.wait_max_ns >= 5_000_000, "{f:?}");
        assert!(f.wait_mean_ns >= 5_000_000 && f.wait_mean_ns <= f.wait_max_ns);
        assert_eq!(img.take_ring_figures(5).applied, 0);
        assert_eq!(img.ring_run_figures(5).applied, 10);
        assert_eq!(img.take_ring_figures(6), RingReport::default());
    }
}
