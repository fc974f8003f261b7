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
//! This module and `python` hold all of the crate's `unsafe`.

use std::cell::UnsafeCell;
use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong, c_void};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{MAX_NAME_LEN, MAX_PLUGINS, PluginName};

/// Slots per image table. OpenPLC v4 uses 1024; plugins read it from the
/// struct, so it can be changed with `--buffer-size`.
pub const DEFAULT_BUFFER_SIZE: usize = 1024;
/// Largest accepted `--buffer-size`: 16 384 slots keep the pointer tables of one
/// process under 4 MiB, which a 256 MB board can afford.
pub const MAX_BUFFER_SIZE: usize = 16384;
/// OpenPLC's `bits_per_buffer`: one bool slot is 8 bits.
pub const BITS_PER_BUFFER: usize = 8;
/// Journal depth. At a 20 ms scan, 8 plugins can each queue 256 writes per
/// cycle before a write is refused; 2048 entries × 24 bytes = 48 KiB.
pub const JOURNAL_CAPACITY: usize = 2048;
/// The capsule name Python plugins pass to `PyCapsule_GetPointer`.
pub const CAPSULE_NAME: &CStr = c"openplc_runtime_args";
/// `ext_magic`: marks the fields appended after OpenPLC's layout ("OPLC").
pub const ABI_MAGIC: u32 = 0x4F50_4C43;
/// `ext_version`: bumped whenever fields are appended (never reordered).
/// 2: `plugin_state_dir` appended.
pub const ABI_VERSION: u32 = 2;
/// Size of the plugin config path buffer in the struct (255 bytes + NUL).
pub const CONFIG_PATH_BUF: usize = 256;
/// Size of the plugin state directory buffer in the extension block (255
/// bytes + NUL, like the config path).
pub const STATE_DIR_BUF: usize = 256;

/// `journal_write_*` return: accepted.
pub const JOURNAL_OK: c_int = 0;
/// `journal_write_*` return: wrong type code for that function, index out of
/// range or bit > 7. Counted in `rejected`.
pub const JOURNAL_REJECTED: c_int = -1;
/// `journal_write_*` return: the journal is full this cycle; the write is dropped
/// and counted, the caller is never blocked.
pub const JOURNAL_FULL: c_int = -2;

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

/// One queued write. Data fields are written by the producer that claimed the
/// slot, then published by `seq` (release); the scan thread reads them after an
/// acquire load of `seq`.
#[repr(C)]
struct JournalSlot {
    seq: AtomicU64,
    table: UnsafeCell<u8>,
    bit: UnsafeCell<u8>,
    index: UnsafeCell<u32>,
    value: UnsafeCell<u64>,
}

/// The start of the shared mapping.
#[repr(C)]
struct Header {
    magic: u64,
    buffer_size: u64,
    lock: UnsafeCell<libc::pthread_mutex_t>,
    /// Times the lock was found abandoned by a dead owner and recovered.
    lock_recoveries: AtomicU64,
    /// Next journal position a producer claims (a bounded MPSC queue with a
    /// sequence number per slot: lock-free, never blocks a producer).
    journal_tail: AtomicU64,
    journal_overflows: AtomicU64,
    journal_rejected: AtomicU64,
    journal_applied: AtomicU64,
    slots: [JournalSlot; JOURNAL_CAPACITY],
}

const HEADER_MAGIC: u64 = 0x4F50_4C43_494D_4701; // "OPLCIMG" + layout 1

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

/// Attaches this process (a worker) to the supervisor's image, passed as the
/// inherited memfd `fd`. Installs it as this process's image.
pub fn attach(fd: OwnedFd, buffer_size: usize) -> Result<&'static Image, String> {
    if IMAGE.get().is_some() {
        return Err("this process already has an image".into());
    }
    let img = Image::attach(fd, buffer_size)?;
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
            init_shared_robust_mutex(h.lock.get())?;
            for (i, s) in h.slots.iter().enumerate() {
                s.seq.store(i as u64, Ordering::Relaxed);
            }
        }
        Ok(Image::with_pointers(base, len, fd, buffer_size, offsets))
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

    /// Slots per table.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Takes the image lock (process-shared, robust: a lock abandoned by a dead
    /// owner is recovered and counted).
    pub fn lock(&self) {
        let m = self.header().lock.get();
        // SAFETY: `m` is the initialised process-shared mutex in the mapping.
        let r = unsafe { libc::pthread_mutex_lock(m) };
        if r == libc::EOWNERDEAD {
            // SAFETY: we own the mutex now (EOWNERDEAD); marking it consistent
            // is the documented recovery.
            unsafe { libc::pthread_mutex_consistent(m) };
            self.header()
                .lock_recoveries
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Releases the image lock.
    pub fn unlock(&self) {
        // SAFETY: callers pair this with `lock` (C plugins are trusted to do so,
        // as in OpenPLC).
        unsafe { libc::pthread_mutex_unlock(self.header().lock.get()) };
    }

    /// Queues a write for the scan thread. Lock-free; never blocks.
    pub fn journal_push(&self, table: Table, index: usize, bit: usize, value: u64) -> c_int {
        let h = self.header();
        if index >= self.buffer_size || bit >= table.values_per_slot() {
            h.journal_rejected.fetch_add(1, Ordering::Relaxed);
            return JOURNAL_REJECTED;
        }
        let mut pos = h.journal_tail.load(Ordering::Relaxed);
        loop {
            let slot = &h.slots[(pos % JOURNAL_CAPACITY as u64) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == pos {
                match h.journal_tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `pos` gives this producer
                        // exclusive access to the slot's data until it publishes
                        // `seq = pos + 1`; the consumer reads only after that.
                        unsafe {
                            *slot.table.get() = table as u8;
                            *slot.bit.get() = bit as u8;
                            *slot.index.get() = index as u32;
                            *slot.value.get() = value;
                        }
                        slot.seq.store(pos + 1, Ordering::Release);
                        return JOURNAL_OK;
                    }
                    Err(actual) => pos = actual,
                }
            } else if seq < pos {
                // The slot still holds an entry from one lap ago: full.
                h.journal_overflows.fetch_add(1, Ordering::Relaxed);
                return JOURNAL_FULL;
            } else {
                pos = h.journal_tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Applies queued writes in order (last write wins), from `*head` on. Called
    /// by the scan thread only (single consumer), with the image lock held.
    /// Allocation-free. Returns the number applied.
    pub fn apply_journal(&self, head: &mut u64) -> u64 {
        let h = self.header();
        let mut applied = 0;
        loop {
            let slot = &h.slots[(*head % JOURNAL_CAPACITY as u64) as usize];
            if slot.seq.load(Ordering::Acquire) != *head + 1 {
                break;
            }
            // SAFETY: seq == head + 1 means a producer published this slot and
            // nobody writes it until we release it below.
            let (table, bit, index, value) = unsafe {
                (
                    *slot.table.get(),
                    *slot.bit.get(),
                    *slot.index.get(),
                    *slot.value.get(),
                )
            };
            slot.seq
                .store(*head + JOURNAL_CAPACITY as u64, Ordering::Release);
            *head += 1;
            if let Some(t) = Table::ALL.get(table as usize) {
                self.store(*t, index as usize, bit as usize, value);
            }
            applied += 1;
        }
        if applied > 0 {
            h.journal_applied.fetch_add(applied, Ordering::Relaxed);
        }
        applied
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

    /// Times an abandoned image lock was recovered.
    pub fn lock_recoveries(&self) -> u64 {
        self.header().lock_recoveries.load(Ordering::Relaxed)
    }

    /// Builds the args struct for the plugin in `slot` (0..MAX_PLUGINS): the
    /// slot selects the log and stop callbacks that know the plugin's name.
    pub fn runtime_args(
        &'static self,
        slot: usize,
        config_path: Option<&Path>,
        base_tick_ns: u64,
    ) -> Box<RuntimeArgs> {
        let p = |t: Table| self.pointers[t as usize].as_ptr() as *mut c_void;
        let mut path = [0 as c_char; CONFIG_PATH_BUF];
        if let Some(cp) = config_path {
            use std::os::unix::ffi::OsStrExt;
            // Lengths were checked when plugins.conf was parsed; `take` only
            // guards the NUL terminator.
            for (dst, src) in path
                .iter_mut()
                .zip(cp.as_os_str().as_bytes().iter().take(CONFIG_PATH_BUF - 1))
            {
                *dst = *src as c_char;
            }
        }
        let cb = &SLOT_CALLBACKS[slot % MAX_PLUGINS];
        Box::new(RuntimeArgs {
            bool_input: p(Table::BoolIn).cast(),
            bool_output: p(Table::BoolOut).cast(),
            byte_input: p(Table::ByteIn).cast(),
            byte_output: p(Table::ByteOut).cast(),
            int_input: p(Table::IntIn).cast(),
            int_output: p(Table::IntOut).cast(),
            dint_input: p(Table::DintIn).cast(),
            dint_output: p(Table::DintOut).cast(),
            lint_input: p(Table::LintIn).cast(),
            lint_output: p(Table::LintOut).cast(),
            int_memory: p(Table::IntMem).cast(),
            dint_memory: p(Table::DintMem).cast(),
            lint_memory: p(Table::LintMem).cast(),
            bool_memory: p(Table::BoolMem).cast(),
            image_lock: cb_image_lock,
            image_unlock: cb_image_unlock,
            debug_array_count: crate::debugger::debug_array_count,
            debug_elem_count: crate::debugger::debug_elem_count,
            debug_size: crate::debugger::debug_size,
            debug_read: crate::debugger::debug_read,
            debug_set: crate::debugger::debug_set,
            debug_write: crate::debugger::debug_write,
            plugin_specific_config_file_path: path,
            buffer_size: self.buffer_size as c_int,
            bits_per_buffer: BITS_PER_BUFFER as c_int,
            log_info: cb.log_info,
            log_debug: cb.log_debug,
            log_warn: cb.log_warn,
            log_error: cb.log_error,
            journal_write_bool: cb_journal_write_bool,
            journal_write_byte: cb_journal_write_byte,
            journal_write_int: cb_journal_write_int,
            journal_write_dint: cb_journal_write_dint,
            journal_write_lint: cb_journal_write_lint,
            request_plc_stop: cb.request_plc_stop,
            base_tick_ns,
            ext_magic: ABI_MAGIC,
            ext_version: ABI_VERSION,
            ext_size: size_of::<RuntimeArgs>() as u32,
            ext_reserved: 0,
            plugin_state_dir: [0; STATE_DIR_BUF],
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

/// Initialises a process-shared, robust mutex in place.
///
/// # Safety
/// `m` must point at writable, suitably aligned memory for a mutex that no one
/// uses yet.
unsafe fn init_shared_robust_mutex(m: *mut libc::pthread_mutex_t) -> Result<(), String> {
    // SAFETY: the attribute object lives on this stack frame and is destroyed
    // before returning; `m` is valid per the caller's contract.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        let mut rc = libc::pthread_mutexattr_init(&mut attr);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(m, &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "cannot initialise the image lock: {}",
                std::io::Error::from_raw_os_error(rc)
            ))
        }
    }
}

/// OpenPLC v4.1.4's runtime-args struct, field for field (natural C alignment),
/// followed by this runtime's extension. Fields are only ever appended.
#[repr(C)]
pub struct RuntimeArgs {
    pub bool_input: *mut [*mut u8; BITS_PER_BUFFER],
    pub bool_output: *mut [*mut u8; BITS_PER_BUFFER],
    pub byte_input: *mut *mut u8,
    pub byte_output: *mut *mut u8,
    pub int_input: *mut *mut u16,
    pub int_output: *mut *mut u16,
    pub dint_input: *mut *mut u32,
    pub dint_output: *mut *mut u32,
    pub lint_input: *mut *mut u64,
    pub lint_output: *mut *mut u64,
    pub int_memory: *mut *mut u16,
    pub dint_memory: *mut *mut u32,
    pub lint_memory: *mut *mut u64,
    pub bool_memory: *mut [*mut u8; BITS_PER_BUFFER],
    pub image_lock: extern "C" fn(),
    pub image_unlock: extern "C" fn(),
    pub debug_array_count: extern "C" fn() -> u8,
    pub debug_elem_count: extern "C" fn(u8) -> u16,
    pub debug_size: extern "C" fn(u8, u16) -> u16,
    pub debug_read: extern "C" fn(u8, u16, *mut u8) -> u16,
    pub debug_set: extern "C" fn(u8, u16, bool, *const u8, u16) -> u8,
    pub debug_write: extern "C" fn(u8, u16, *const u8, u16) -> u8,
    pub plugin_specific_config_file_path: [c_char; CONFIG_PATH_BUF],
    pub buffer_size: c_int,
    pub bits_per_buffer: c_int,
    pub log_info: extern "C" fn(*const c_char),
    pub log_debug: extern "C" fn(*const c_char),
    pub log_warn: extern "C" fn(*const c_char),
    pub log_error: extern "C" fn(*const c_char),
    pub journal_write_bool: extern "C" fn(c_int, c_int, c_int, c_int) -> c_int,
    pub journal_write_byte: extern "C" fn(c_int, c_int, c_int) -> c_int,
    pub journal_write_int: extern "C" fn(c_int, c_int, c_int) -> c_int,
    pub journal_write_dint: extern "C" fn(c_int, c_int, c_uint) -> c_int,
    pub journal_write_lint: extern "C" fn(c_int, c_int, c_ulonglong) -> c_int,
    pub request_plc_stop: extern "C" fn(*const c_char),
    pub base_tick_ns: c_ulonglong,
    // --- appended by this runtime (not in OpenPLC v4.1.4) ---
    /// [`ABI_MAGIC`].
    pub ext_magic: u32,
    /// [`ABI_VERSION`].
    pub ext_version: u32,
    /// `sizeof` this struct, so a plugin can tell which appended fields exist.
    pub ext_size: u32,
    pub ext_reserved: u32,
    /// ext_version 2: the plugin's writable directory (NUL-terminated; empty
    /// when the runtime has none to give), see `plugin_state`.
    pub plugin_state_dir: [c_char; STATE_DIR_BUF],
}

// The layout is an ABI shared with plugins written in C and with ctypes mirrors:
// pin it. 64-bit targets (x86_64, aarch64):
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(RuntimeArgs, bool_memory) == 104);
    assert!(offset_of!(RuntimeArgs, image_lock) == 112);
    assert!(offset_of!(RuntimeArgs, debug_array_count) == 128);
    assert!(offset_of!(RuntimeArgs, plugin_specific_config_file_path) == 176);
    assert!(offset_of!(RuntimeArgs, buffer_size) == 432);
    assert!(offset_of!(RuntimeArgs, bits_per_buffer) == 436);
    assert!(offset_of!(RuntimeArgs, log_info) == 440);
    assert!(offset_of!(RuntimeArgs, journal_write_bool) == 472);
    assert!(offset_of!(RuntimeArgs, request_plc_stop) == 512);
    assert!(offset_of!(RuntimeArgs, base_tick_ns) == 520);
    assert!(offset_of!(RuntimeArgs, ext_magic) == 528);
    assert!(offset_of!(RuntimeArgs, plugin_state_dir) == 544);
    assert!(size_of::<RuntimeArgs>() == 800);
};
// 32-bit ARM (armv7, EABI: 8-byte alignment for 64-bit integers):
#[cfg(all(target_pointer_width = "32", target_arch = "arm"))]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(RuntimeArgs, image_lock) == 56);
    assert!(offset_of!(RuntimeArgs, plugin_specific_config_file_path) == 88);
    assert!(offset_of!(RuntimeArgs, buffer_size) == 344);
    assert!(offset_of!(RuntimeArgs, log_info) == 352);
    assert!(offset_of!(RuntimeArgs, journal_write_bool) == 368);
    assert!(offset_of!(RuntimeArgs, request_plc_stop) == 388);
    assert!(offset_of!(RuntimeArgs, base_tick_ns) == 392);
    assert!(offset_of!(RuntimeArgs, ext_magic) == 400);
    assert!(offset_of!(RuntimeArgs, plugin_state_dir) == 416);
    assert!(size_of::<RuntimeArgs>() == 672);
};

// --- callbacks (C ABI) ---------------------------------------------------------

extern "C" fn cb_image_lock() {
    if let Some(img) = IMAGE.get() {
        img.lock();
    }
}

extern "C" fn cb_image_unlock() {
    if let Some(img) = IMAGE.get() {
        img.unlock();
    }
}

/// Validates the type code against the tables a `journal_write_*` function
/// serves, then queues.
fn journal(code: c_int, first: Table, index: c_int, bit: c_int, value: u64) -> c_int {
    let Some(img) = IMAGE.get() else {
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

extern "C" fn cb_journal_write_bool(t: c_int, index: c_int, bit: c_int, value: c_int) -> c_int {
    journal(t, Table::BoolIn, index, bit, u64::from(value != 0))
}
extern "C" fn cb_journal_write_byte(t: c_int, index: c_int, value: c_int) -> c_int {
    journal(t, Table::ByteIn, index, 0, u64::from(value as u8))
}
extern "C" fn cb_journal_write_int(t: c_int, index: c_int, value: c_int) -> c_int {
    journal(t, Table::IntIn, index, 0, u64::from(value as u16))
}
extern "C" fn cb_journal_write_dint(t: c_int, index: c_int, value: c_uint) -> c_int {
    journal(t, Table::DintIn, index, 0, u64::from(value))
}
extern "C" fn cb_journal_write_lint(t: c_int, index: c_int, value: c_ulonglong) -> c_int {
    journal(t, Table::LintIn, index, 0, value)
}

// --- per-plugin callbacks ------------------------------------------------------
//
// OpenPLC's log and stop callbacks carry no context, yet every log line must
// name its plugin. Each plugin slot gets its own monomorphised copy of the
// callbacks (`log_info::<3>` knows it serves slot 3), and the slot's name lives
// in a fixed table.

static SLOT_NAMES: [Mutex<PluginName>; MAX_PLUGINS] =
    [const { Mutex::new(heapless::String::new()) }; MAX_PLUGINS];

/// Names the plugin that owns callback slot `slot`.
pub fn set_slot_name(slot: usize, name: &str) {
    if let Some(m) = SLOT_NAMES.get(slot) {
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        n.clear();
        let _ = n.push_str(&name[..name.len().min(MAX_NAME_LEN)]);
    }
}

fn slot_name(slot: usize) -> PluginName {
    SLOT_NAMES
        .get(slot)
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .unwrap_or_default()
}

/// A message from a plugin, as text: never interpreted as a format string.
fn message(msg: *const c_char) -> String {
    if msg.is_null() {
        return String::new();
    }
    // SAFETY: plugins pass a NUL-terminated string (OpenPLC's contract); it is
    // only read for the duration of the call.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

fn plugin_log(slot: usize, level: log::Level, msg: *const c_char) {
    let name = slot_name(slot);
    log::log!(target: "plugin", level, "[{name}] {}", message(msg));
}

extern "C" fn log_info<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Info, msg);
}
extern "C" fn log_debug<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Debug, msg);
}
extern "C" fn log_warn<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Warn, msg);
}
extern "C" fn log_error<const N: usize>(msg: *const c_char) {
    plugin_log(N, log::Level::Error, msg);
}
extern "C" fn request_plc_stop<const N: usize>(reason: *const c_char) {
    let name = slot_name(N);
    log::warn!("[{name}] requested a PLC stop: {}", message(reason));
    crate::signals::request_stop();
}

struct SlotCallbacks {
    log_info: extern "C" fn(*const c_char),
    log_debug: extern "C" fn(*const c_char),
    log_warn: extern "C" fn(*const c_char),
    log_error: extern "C" fn(*const c_char),
    request_plc_stop: extern "C" fn(*const c_char),
}

macro_rules! slot_callbacks {
    ($($n:literal),*) => {
        [$(SlotCallbacks {
            log_info: log_info::<$n>,
            log_debug: log_debug::<$n>,
            log_warn: log_warn::<$n>,
            log_error: log_error::<$n>,
            request_plc_stop: request_plc_stop::<$n>,
        }),*]
    };
}

static SLOT_CALLBACKS: [SlotCallbacks; MAX_PLUGINS] =
    slot_callbacks!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

#[cfg(test)]
mod tests {
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
        let mut head = 0;
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
