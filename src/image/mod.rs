//! The PLC I/O image, the write journal, and the OpenPLC runtime-args struct
//! that plugins receive (Python: inside the `openplc_runtime_args` capsule;
//! native plugins: as `init`'s argument).
//!
//! All values, the image lock and the journal live in one shared-memory mapping
//! (a memfd) created once at start-up. One mapping per process, so the C
//! callbacks (`image_lock()`, `journal_write_int(...)`, which carry no context
//! pointer in OpenPLC's ABI) find it through a process-global. The mapping is
//! shareable so that worker processes can map the same image; the pointer
//! tables that the struct points at are per process, because they hold
//! addresses.
//!
//! This module owns the mapping, its layout and the values' storage; its
//! parts own the rest:
//! - `lock`: the image lock (process-shared, robust);
//! - `journal`: the write queue plugins fill and the scan thread applies;
//! - `figures`: what the scan thread saw of each ring (in this process only);
//! - `abi`: the runtime-args struct (OpenPLC's C layout) and how it is filled;
//! - `callbacks`: the `extern "C"` functions the struct points at.
//!
//! The image and `python` hold all of the crate's `unsafe` (with `native`'s
//! `dlopen` code and `sys`'s few libc calls).

mod abi;
mod callbacks;
mod figures;
mod journal;
mod lock;

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use abi::{
    ABI_MAGIC, ABI_VERSION, CAPSULE_NAME, CONFIG_PATH_BUF, LogFn, LogStyle, RuntimeArgs,
    STATE_DIR_BUF,
};
pub use callbacks::{LogPrintf, on_stop_request, set_slot_name, slot_name};
use figures::RingFigures;
pub use figures::RingReport;
use journal::Ring;
pub use journal::{
    Corruption, JOURNAL_CAPACITY, JOURNAL_FULL, JOURNAL_OK, JOURNAL_REJECTED, JOURNAL_RINGS,
    JournalCursor, RING_STALL_PASSES,
};
pub use lock::{LockBlock, LockOwner};

/// Slots per image table. OpenPLC v4 uses 1024; plugins read it from the
/// struct, so it can be changed with `--buffer-size`.
pub const DEFAULT_BUFFER_SIZE: usize = 1024;
/// Largest accepted `--buffer-size`: 16 384 slots keep the pointer tables of one
/// process under 4 MiB, which a 256 MB board can afford.
pub const MAX_BUFFER_SIZE: usize = 16384;
/// OpenPLC's `bits_per_buffer`: one bool slot is 8 bits.
pub const BITS_PER_BUFFER: usize = 8;
/// The 14 image tables; the discriminant is OpenPLC's journal type code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    BoolIn = 0,
    BoolOut = 1,
    BoolMem = 2,
    ByteIn = 3,
    ByteOut = 4,
    IntIn = 5,
    IntOut = 6,
    IntMem = 7,
    DintIn = 8,
    DintOut = 9,
    DintMem = 10,
    LintIn = 11,
    LintOut = 12,
    LintMem = 13,
}

/// Number of tables.
pub const TABLES: usize = 14;

impl Table {
    /// All tables, by type code.
    pub const ALL: [Table; TABLES] = [
        Table::BoolIn,
        Table::BoolOut,
        Table::BoolMem,
        Table::ByteIn,
        Table::ByteOut,
        Table::IntIn,
        Table::IntOut,
        Table::IntMem,
        Table::DintIn,
        Table::DintOut,
        Table::DintMem,
        Table::LintIn,
        Table::LintOut,
        Table::LintMem,
    ];

    /// The table for a journal type code.
    pub fn from_code(code: c_int) -> Option<Table> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Table::ALL.get(i).copied())
    }

    /// Bytes per value.
    pub fn elem_size(self) -> usize {
        match self as u8 {
            0..=4 => 1,
            5..=7 => 2,
            8..=10 => 4,
            _ => 8,
        }
    }

    /// Values per slot: 8 for bool tables (one per bit), else 1.
    pub fn values_per_slot(self) -> usize {
        if (self as u8) < 3 { BITS_PER_BUFFER } else { 1 }
    }
}

/// The start of the shared mapping.
#[repr(C)]
struct Header {
    magic: u64,
    buffer_size: u64,
    lock: UnsafeCell<libc::pthread_mutex_t>,
    /// Times the lock was found abandoned by a dead owner and recovered.
    lock_recoveries: AtomicU64,
    /// 1 when the lock is priority-inheriting.
    lock_pi: AtomicU64,
    /// The plugin holding the lock: its callback slot + 1, or `HOLDER_NONE`.
    lock_holder: AtomicU64,
    /// When that plugin took it (`CLOCK_MONOTONIC` ns).
    lock_since_ns: AtomicU64,
    /// Next journal stamp: the global order of writes across the rings.
    journal_stamp: AtomicU64,
    journal_overflows: AtomicU64,
    journal_rejected: AtomicU64,
    journal_applied: AtomicU64,
    journal_lost: AtomicU64,
    /// One ring per producer process (see `journal`).
    rings: [Ring; JOURNAL_RINGS],
    /// Longest wait for, and hold of, the lock by a plugin's `image_lock()`
    /// in any process since the supervisor last took them (ns). Figures
    /// only: a worker can write them.
    plugin_lock_wait_max_ns: AtomicU64,
    plugin_lock_hold_max_ns: AtomicU64,
    /// Writes refused for a full journal, per ring, since the supervisor
    /// last took them (figures only, like the two above).
    ring_overflows: [AtomicU64; JOURNAL_RINGS],
    /// 1 while a PLC program answers the debugger callbacks in the process
    /// that runs it (`program::debug`); other processes then refuse them.
    /// Last, so the rings keep their offset (test fixtures compute it).
    program_debug: AtomicU64,
}

const HEADER_MAGIC: u64 = 0x4F50_4C43_494D_4703; // "OPLCIMG" + layout 3

/// The I/O image of this process.
pub struct Image {
    base: *mut u8,
    len: usize,
    fd: OwnedFd,
    buffer_size: usize,
    /// Byte offset of each table's values inside the mapping.
    offsets: [usize; TABLES],
    /// Per table, `buffer_size × values_per_slot` pointers into the mapping: what
    /// the struct's table fields point at.
    pointers: [Box<[*mut c_void]>; TABLES],
    /// The journal ring this process writes into: 0 for the supervisor, the
    /// plugin's callback slot + 1 for a worker.
    ring: usize,
    /// What the scan thread saw of each ring (this process's memory).
    figures: [RingFigures; JOURNAL_RINGS],
    /// Longest apply pass since the supervisor last took it, and of the run.
    apply_max_ns: AtomicU64,
    apply_max_run_ns: AtomicU64,
    /// The image lock as the scan thread last found it (see `lock`).
    lock_state: lock::LockState,
}

// SAFETY: the mapping is only written through atomics, under the image lock, or
// through raw pointers handed to plugins (C semantics: they take the lock). The
// pointer tables are immutable after construction.
unsafe impl Sync for Image {}
// SAFETY: as above; nothing in `Image` is tied to the creating thread.
unsafe impl Send for Image {}

static IMAGE: OnceLock<Image> = OnceLock::new();

/// Creates this process's image (once), or returns the existing one when it has
/// the same `buffer_size`.
pub fn install(buffer_size: usize) -> Result<&'static Image, String> {
    if let Some(img) = IMAGE.get() {
        return if img.buffer_size == buffer_size {
            Ok(img)
        } else {
            Err(format!(
                "the image already exists with buffer size {}, cannot make one of {buffer_size}",
                img.buffer_size
            ))
        };
    }
    let img = Image::create(buffer_size)?;
    // A racing second install would lose here; only the supervisor installs.
    let _ = IMAGE.set(img);
    IMAGE.get().ok_or_else(|| "image install raced".to_string())
}

/// This process's image, if installed.
pub fn get() -> Option<&'static Image> {
    IMAGE.get()
}

/// Byte offsets of the tables and the mapping's length for `buffer_size`: the
/// supervisor and its workers compute the same layout.
fn layout(buffer_size: usize) -> ([usize; TABLES], usize) {
    let mut offsets = [0usize; TABLES];
    let mut len = size_of::<Header>().next_multiple_of(64);
    for t in Table::ALL {
        offsets[t as usize] = len;
        len += (buffer_size * t.values_per_slot() * t.elem_size()).next_multiple_of(64);
    }
    (offsets, len)
}

/// Maps `len` bytes of `fd` shared, read-write.
fn map_shared(fd: &OwnedFd, len: usize) -> Result<*mut u8, String> {
    // SAFETY: a new shared mapping of a descriptor we own, of its full length;
    // nothing else refers to the returned address yet.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!(
            "cannot map the shared image: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(base.cast::<u8>())
}

/// The journal ring of the worker process running the plugin in callback
/// slot `slot`.
pub fn worker_ring(slot: usize) -> usize {
    slot + 1
}

/// Attaches this process (a worker) to the supervisor's image, passed as the
/// inherited memfd `fd`, writing into journal ring `ring`. Installs it as this
/// process's image.
pub fn attach(fd: OwnedFd, buffer_size: usize, ring: usize) -> Result<&'static Image, String> {
    if IMAGE.get().is_some() {
        return Err("this process already has an image".into());
    }
    if ring == 0 || ring >= JOURNAL_RINGS {
        return Err(format!(
            "journal ring {ring} is not a worker's (1..{JOURNAL_RINGS})"
        ));
    }
    let mut img = Image::attach(fd, buffer_size)?;
    img.ring = ring;
    let _ = IMAGE.set(img);
    IMAGE.get().ok_or_else(|| "image install raced".to_string())
}

impl Image {
    fn create(buffer_size: usize) -> Result<Image, String> {
        if buffer_size == 0 || buffer_size > MAX_BUFFER_SIZE {
            return Err(format!(
                "buffer size {buffer_size} is out of range 1..={MAX_BUFFER_SIZE}"
            ));
        }
        let (offsets, len) = layout(buffer_size);
        // SAFETY: the name is a valid C string; the flags are plain constants.
        let raw = unsafe { libc::memfd_create(c"openplc-image".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(format!(
                "cannot create the shared image (memfd_create): {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: valid descriptor; the length fits off_t for any accepted size.
        if unsafe { libc::ftruncate(raw, len as libc::off_t) } != 0 {
            return Err(format!(
                "cannot size the shared image to {len} bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
        let base = map_shared(&fd, len)?;
        // SAFETY: the mapping is zero-filled, page-aligned and larger than
        // `Header`; all-zero is a valid bit pattern for every header field except
        // the mutex and the slot sequence numbers, which are initialised here
        // before the image is shared with anyone.
        unsafe {
            let h = &mut *base.cast::<Header>();
            h.magic = HEADER_MAGIC;
            h.buffer_size = buffer_size as u64;
            let pi = lock::init_shared_robust_mutex(h.lock.get())?;
            h.lock_pi.store(u64::from(pi), Ordering::Relaxed);
            for r in &h.rings {
                r.init(0);
            }
        }
        let img = Image::with_pointers(base, len, fd, buffer_size, offsets);
        img.probe_monotonic_wait();
        Ok(img)
    }

    fn attach(fd: OwnedFd, buffer_size: usize) -> Result<Image, String> {
        let (offsets, len) = layout(buffer_size);
        let size = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?)
            .metadata()
            .map_err(|e| format!("cannot stat the shared image: {e}"))?
            .len();
        if size != len as u64 {
            return Err(format!(
                "the shared image is {size} bytes, expected {len} for buffer size {buffer_size}"
            ));
        }
        let base = map_shared(&fd, len)?;
        // SAFETY: the supervisor initialised the header before starting any
        // worker; reading two plain fields of it is fine.
        let (magic, size_in_header) = unsafe {
            let h = &*base.cast::<Header>();
            (h.magic, h.buffer_size)
        };
        if magic != HEADER_MAGIC || size_in_header != buffer_size as u64 {
            // SAFETY: unmapping the mapping just made, used by nothing.
            unsafe { libc::munmap(base.cast(), len) };
            return Err(
                "the inherited descriptor is not this runtime's image (bad magic or size)".into(),
            );
        }
        Ok(Image::with_pointers(base, len, fd, buffer_size, offsets))
    }

    fn with_pointers(
        base: *mut u8,
        len: usize,
        fd: OwnedFd,
        buffer_size: usize,
        offsets: [usize; TABLES],
    ) -> Image {
        let pointers = Table::ALL.map(|t| {
            let n = buffer_size * t.values_per_slot();
            (0..n)
                // SAFETY: offset + i * size stays inside the table's region of
                // the layout, which lies inside the mapping of `len` bytes.
                .map(|i| unsafe { base.add(offsets[t as usize] + i * t.elem_size()) }.cast())
                .collect::<Vec<*mut c_void>>()
                .into_boxed_slice()
        });
        Image {
            base,
            len,
            fd,
            buffer_size,
            offsets,
            pointers,
            ring: 0,
            figures: Default::default(),
            apply_max_ns: AtomicU64::new(0),
            apply_max_run_ns: AtomicU64::new(0),
            lock_state: lock::LockState::default(),
        }
    }

    /// The memfd behind the mapping, for handing to a worker process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn header(&self) -> &Header {
        // SAFETY: `base` points at an initialised `Header` for the image's life.
        unsafe { &*self.base.cast::<Header>() }
    }

    /// Tells every process mapping the image whether a PLC program answers
    /// the debugger callbacks (in the process that runs it).
    pub fn set_program_debug(&self, on: bool) {
        self.header()
            .program_debug
            .store(u64::from(on), Ordering::SeqCst);
    }

    /// Whether a PLC program answers the debugger callbacks somewhere.
    pub fn program_debug(&self) -> bool {
        self.header().program_debug.load(Ordering::SeqCst) != 0
    }

    /// Slots per table.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    fn value_ptr(&self, table: Table, index: usize, bit: usize) -> Option<*mut u8> {
        if index >= self.buffer_size || bit >= table.values_per_slot() {
            return None;
        }
        let off = self.offsets[table as usize]
            + (index * table.values_per_slot() + bit) * table.elem_size();
        // SAFETY: the bounds check above keeps the offset inside the table.
        Some(unsafe { self.base.add(off) })
    }

    /// Stores one value (bool tables: 1 for any non-zero value); out-of-range
    /// addresses are ignored. Take the lock around it: the scan thread applies
    /// the journal under it.
    pub fn store(&self, table: Table, index: usize, bit: usize, value: u64) {
        let Some(p) = self.value_ptr(table, index, bit) else {
            return;
        };
        // SAFETY: `p` is in bounds and aligned for the table's element type
        // (table offsets are 64-byte aligned, elements are naturally sized).
        unsafe {
            match table.elem_size() {
                1 => p.write(if table.values_per_slot() > 1 {
                    u8::from(value != 0)
                } else {
                    value as u8
                }),
                2 => p.cast::<u16>().write(value as u16),
                4 => p.cast::<u32>().write(value as u32),
                _ => p.cast::<u64>().write(value),
            }
        }
    }

    /// Reads one value (take the lock around it for a consistent view).
    pub fn read(&self, table: Table, index: usize, bit: usize) -> Option<u64> {
        let p = self.value_ptr(table, index, bit)?;
        // SAFETY: in bounds and aligned, as in `store`.
        Some(unsafe {
            match table.elem_size() {
                1 => u64::from(p.read()),
                2 => u64::from(p.cast::<u16>().read()),
                4 => u64::from(p.cast::<u32>().read()),
                _ => p.cast::<u64>().read(),
            }
        })
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `create`; no pointer into it
        // outlives the image (the image is a process-global in practice).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;
    use std::path::Path;

    use super::callbacks::*;
    use super::*;

    #[test]
    fn type_codes_are_openplcs() {
        assert_eq!(Table::from_code(5), Some(Table::IntIn));
        assert_eq!(Table::from_code(13), Some(Table::LintMem));
        assert_eq!(Table::from_code(14), None);
        assert_eq!(Table::from_code(-1), None);
        assert_eq!(Table::IntIn.elem_size(), 2);
        assert_eq!(Table::BoolMem.values_per_slot(), 8);
    }

    #[test]
    fn journal_round_trip_and_validation() {
        let img = install(64).unwrap();
        // Wrong function for the type code, out-of-range index and bit.
        assert_eq!(cb_journal_write_int(8, 0, 1), JOURNAL_REJECTED);
        assert_eq!(cb_journal_write_byte(5, 0, 1), JOURNAL_REJECTED);
        assert_eq!(cb_journal_write_int(5, 64, 1), JOURNAL_REJECTED);
        assert_eq!(cb_journal_write_bool(1, 0, 8, 1), JOURNAL_REJECTED);
        assert_eq!(cb_journal_write_int(5, -1, 1), JOURNAL_REJECTED);
        // Last write wins.
        assert_eq!(cb_journal_write_int(5, 3, 1), JOURNAL_OK);
        assert_eq!(cb_journal_write_int(5, 3, 1234), JOURNAL_OK);
        assert_eq!(cb_journal_write_bool(2, 1, 7, 5), JOURNAL_OK);
        assert_eq!(cb_journal_write_lint(13, 63, u64::MAX), JOURNAL_OK);
        assert_eq!(cb_journal_write_dint(9, 2, 0xDEAD_BEEF), JOURNAL_OK);
        assert_eq!(cb_journal_write_byte(4, 0, 0x1FF), JOURNAL_OK);
        let mut head = JournalCursor::default();
        img.lock();
        assert_eq!(img.apply_journal(&mut head), 6);
        img.unlock();
        assert_eq!(img.read(Table::IntIn, 3, 0), Some(1234));
        assert_eq!(img.read(Table::BoolMem, 1, 7), Some(1));
        assert_eq!(img.read(Table::LintMem, 63, 0), Some(u64::MAX));
        assert_eq!(img.read(Table::DintOut, 2, 0), Some(0xDEAD_BEEF));
        assert_eq!(img.read(Table::ByteOut, 0, 0), Some(0xFF));
        // The struct's pointer tables point at the same storage.
        let args = img.runtime_args(0, Some(Path::new("/etc/x.json")), 20_000_000);
        // The same content is the same struct: never a second allocation.
        assert_eq!(
            args,
            img.runtime_args(0, Some(Path::new("/etc/x.json")), 20_000_000)
        );
        // SAFETY: a struct from runtime_args is valid for the life of the
        // process and nobody writes it in this test.
        let args = unsafe { args.as_ref() };
        // SAFETY: index 3 < buffer_size; the pointer table and the value it
        // points at live in the installed image.
        let via_ptr = unsafe { **args.int_input.add(3) };
        assert_eq!(via_ptr, 1234);
        // SAFETY: as above, bool table slot 1, bit 7.
        let bit = unsafe { *(*args.bool_memory.add(1))[7] };
        assert_eq!(bit, 1);
        assert_eq!(args.buffer_size, 64);
        assert_eq!(args.ext_size as usize, size_of::<RuntimeArgs>());
        // SAFETY: the buffer is NUL-terminated by construction.
        let cp = unsafe { CStr::from_ptr(args.plugin_specific_config_file_path.as_ptr()) };
        assert_eq!(cp.to_str().unwrap(), "/etc/x.json");
        // Fill the journal: writes beyond capacity are refused, not blocked.
        for i in 0..JOURNAL_CAPACITY {
            assert_eq!(img.journal_push(Table::IntMem, i % 64, 0, 1), JOURNAL_OK);
        }
        let before = img.journal_overflows();
        assert_eq!(img.journal_push(Table::IntMem, 0, 0, 1), JOURNAL_FULL);
        assert_eq!(img.journal_overflows(), before + 1);
        img.lock();
        assert_eq!(img.apply_journal(&mut head), JOURNAL_CAPACITY as u64);
        img.unlock();
        assert_eq!(img.journal_push(Table::IntMem, 0, 0, 1), JOURNAL_OK);
        // A second install with another size is refused.
        assert!(install(128).is_err());
    }
}
