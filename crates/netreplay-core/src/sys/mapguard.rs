//! Survive files that shrink under a memory map (DESIGN.md: "A mapped file
//! that shrinks while being read must not kill the process").
//!
//! Touching a page of a shared file mapping that lies wholly past the file's
//! (new) end raises `SIGBUS`, whose default action kills the process. This
//! module installs, once per process, a `SIGBUS` handler that looks the
//! faulting address up in a lock-free registry of every live mapping made
//! by [`GuardedMap`] (it grows as needed: no number of live mappings leaves
//! one unguarded). When the address belongs to one of them,
//! the handler maps anonymous zero-filled pages over the rest of that mapping
//! (from the faulting page to its end), sets the mapping's `truncated` flag and
//! returns: the faulting load runs again and reads zeros. The reader checks
//! the flag (one atomic load) after each line and reports an error instead of
//! using what it read.
//!
//! Any other `SIGBUS` (an address outside our mappings, a signal sent by
//! `kill`) goes to the handler that was installed before ours (Node.js, V8 or
//! the Rust runtime may have one); if there was none, the default action is
//! restored and the signal raised again, so the process dies as it would have
//! without us.
//!
//! The handler only uses atomics, `mmap`, `sigaction`, `raise` and errno
//! save/restore. `mmap` is not on POSIX's async-signal-safe list, but on the
//! supported systems (Linux, macOS, FreeBSD) it is a plain system call that
//! takes no user-space lock; errno is saved and restored around it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

use libc::{c_int, c_void, siginfo_t};
use memmap2::Mmap;

/// Slots per block of the registry. The registry grows block by block, so
/// any number of mappings is guarded; this only sets the growth step.
const SLOTS_PER_BLOCK: usize = 256;

// ------------------------------------------------------------------ registry

/// One registered mapping. `seq` is a sequence lock around `start`/`len`:
/// odd while the owner rewrites them, so that the signal handler never uses
/// a torn (start, len) pair.
pub(crate) struct Slot {
    /// Owned by a live registration (allocation, not visibility).
    claimed: AtomicBool,
    seq: AtomicUsize,
    start: AtomicUsize,
    /// 0 when the slot holds no mapping.
    len: AtomicUsize,
    /// Set by the signal handler when a page of the mapping was found gone.
    truncated: AtomicBool,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            claimed: AtomicBool::new(false),
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            truncated: AtomicBool::new(false),
        }
    }

    /// Publish (start, len) to the handler (seqlock writer side). Only the
    /// slot's owner calls this, so there is a single writer.
    fn publish(&self, start: usize, len: usize) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.start.store(start, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
        self.truncated.store(false, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Consistent (start, len), or `None` while the slot is being rewritten
    /// (seqlock reader side; async-signal-safe: loads only).
    fn read(&self) -> Option<(usize, usize)> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let s2 = self.seq.load(Ordering::Relaxed);
        (s1 == s2 && len != 0).then_some((start, len))
    }

    fn is_truncated(&self) -> bool {
        self.truncated.load(Ordering::Acquire)
    }

    fn mark_truncated(&self) {
        self.truncated.store(true, Ordering::Release);
    }
}

/// `N` slots and the link to the next block.
struct Block<const N: usize> {
    slots: [Slot; N],
    next: AtomicPtr<Block<N>>,
}

impl<const N: usize> Block<N> {
    const fn new() -> Self {
        Block {
            slots: [const { Slot::new() }; N],
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

/// A lock-free table of live mappings with no fixed size: a list of blocks
/// of `N` slots that only grows (a block, once linked, lives as long as the
/// registry). Registration claims a free slot with one compare-exchange per
/// slot, linking a new block when all are taken; lookup (in the signal
/// handler) only loads atomics and never allocates or locks. Memory is
/// bounded by the most mappings alive at once.
pub(crate) struct Registry<const N: usize> {
    first: Block<N>,
}

impl<const N: usize> Registry<N> {
    pub(crate) const fn new() -> Self {
        Registry {
            first: Block::new(),
        }
    }

    fn blocks(&self) -> impl Iterator<Item = &Block<N>> {
        std::iter::successors(Some(&self.first), |block| {
            // SAFETY: a non-null `next` points to a block leaked by
            // `register`, freed only when the registry is dropped, which
            // `&self` rules out.
            unsafe { block.next.load(Ordering::Acquire).as_ref() }
        })
    }

    /// Register `[start, start + len)`; its slot, or `None` when `len` is 0.
    pub(crate) fn register(&self, start: usize, len: usize) -> Option<&Slot> {
        if len == 0 {
            return None;
        }
        let mut block = &self.first;
        loop {
            for slot in &block.slots {
                if slot
                    .claimed
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    slot.publish(start, len);
                    return Some(slot);
                }
            }
            let mut next = block.next.load(Ordering::Acquire);
            if next.is_null() {
                // Every slot is taken: link a fresh block, its first slot
                // already ours. Another thread may link one first; then ours
                // was never visible and is freed, and we go on in theirs.
                let fresh = Box::new(Block::<N>::new());
                fresh.slots[0].claimed.store(true, Ordering::Relaxed);
                fresh.slots[0].publish(start, len);
                let fresh = Box::into_raw(fresh);
                match block.next.compare_exchange(
                    std::ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // SAFETY: just linked; it lives as long as the registry.
                    Ok(_) => return Some(unsafe { &(*fresh).slots[0] }),
                    Err(theirs) => {
                        // SAFETY: `fresh` came from Box::into_raw above and was
                        // never published.
                        drop(unsafe { Box::from_raw(fresh) });
                        next = theirs;
                    }
                }
            }
            // SAFETY: non-null, linked, and kept while the registry lives.
            block = unsafe { &*next };
        }
    }

    /// Forget a registration. Must happen before the memory is unmapped, so
    /// that the handler never claims an address that now belongs to someone
    /// else's mapping.
    pub(crate) fn unregister(&self, slot: &Slot) {
        slot.publish(0, 0);
        slot.claimed.store(false, Ordering::Release);
    }

    /// The registration that contains `addr`: (slot, start, len).
    /// Async-signal-safe: atomic loads only, no panics.
    pub(crate) fn find(&self, addr: usize) -> Option<(&Slot, usize, usize)> {
        self.blocks().flat_map(|b| &b.slots).find_map(|slot| {
            let (start, len) = slot.read()?;
            (addr >= start && addr - start < len).then_some((slot, start, len))
        })
    }

    /// Blocks linked so far (the first included).
    #[cfg(test)]
    fn block_count(&self) -> usize {
        self.blocks().count()
    }
}

impl<const N: usize> Drop for Registry<N> {
    fn drop(&mut self) {
        let mut next = *self.first.next.get_mut();
        while !next.is_null() {
            // SAFETY: every linked block came from Box::into_raw in
            // `register`, and `&mut self` means no one else sees them.
            let mut block = unsafe { Box::from_raw(next) };
            next = *block.next.get_mut();
        }
    }
}

static REGISTRY: Registry<SLOTS_PER_BLOCK> = Registry::new();

// ------------------------------------------------------------ signal handler

/// The `SIGBUS` action in place before ours. Written once, inside
/// `INSTALL`, before our handler is installed; only read afterwards.
struct PrevAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: the cell is written exactly once, inside `INSTALL.call_once`, before
// `PREV_READY` is set and before our handler can run; every later access is a
// read (from the handler), so there is never a concurrent write.
unsafe impl Sync for PrevAction {}

static PREV: PrevAction = PrevAction(UnsafeCell::new(MaybeUninit::uninit()));
static PREV_READY: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// Install the process-wide `SIGBUS` handler (once). `false` if it could not
/// be installed, in which case mappings stay unguarded.
pub fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions; the page size is cached here
        // because the handler should not call sysconf.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page <= 0 || !(page as usize).is_power_of_two() {
            return;
        }
        PAGE_SIZE.store(page as usize, Ordering::Relaxed);

        // SAFETY: querying the current action (null new action) only writes
        // the old action into PREV, which nobody reads before PREV_READY is
        // set; PREV lives for the whole program.
        let rc = unsafe {
            libc::sigaction(libc::SIGBUS, std::ptr::null(), (*PREV.0.get()).as_mut_ptr())
        };
        if rc != 0 {
            return;
        }
        PREV_READY.store(true, Ordering::Release);

        // SAFETY: an all-zero `sigaction` is a valid value of this plain C
        // struct; every field we rely on is set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction =
            on_sigbus as extern "C" fn(c_int, *mut siginfo_t, *mut c_void) as libc::sighandler_t;
        // SA_SIGINFO: we need si_addr. SA_ONSTACK: run on the alternate stack
        // when the thread has one. SA_NODEFER: SIGBUS stays deliverable inside
        // the handler, so that `die` can re-raise it with the default action.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        // SAFETY: `action.sa_mask` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised and `on_sigbus` has the
        // SA_SIGINFO signature; the old action was saved above.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) };
        INSTALLED.store(rc == 0, Ordering::Release);
    });
    INSTALLED.load(Ordering::Acquire)
}

#[cfg(target_os = "linux")]
fn errno_location() -> Option<*mut c_int> {
    // SAFETY: returns the calling thread's errno slot; no preconditions.
    Some(unsafe { libc::__errno_location() })
}

#[cfg(target_os = "android")]
fn errno_location() -> Option<*mut c_int> {
    // SAFETY: returns the calling thread's errno slot; no preconditions.
    Some(unsafe { libc::__errno() })
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn errno_location() -> Option<*mut c_int> {
    // SAFETY: returns the calling thread's errno slot; no preconditions.
    Some(unsafe { libc::__error() })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
fn errno_location() -> Option<*mut c_int> {
    None
}

/// The fault address of a kernel-generated SIGBUS, or `None` for a SIGBUS
/// that is not an address fault (e.g. sent with `kill`).
///
/// # Safety
/// `info` must be the siginfo the kernel passed to a SA_SIGINFO handler.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn fault_address(info: *const siginfo_t) -> Option<usize> {
    // SAFETY: the caller guarantees `info` is valid; si_code is always set.
    let code = unsafe { (*info).si_code };
    // A mapped file's page past EOF gives BUS_ADRERR; only then is si_addr
    // the meaningful member of the siginfo union.
    if code != libc::BUS_ADRERR {
        return None;
    }
    // SAFETY: for BUS_ADRERR the kernel fills the fault member of the union.
    Some(unsafe { (*info).si_addr() } as usize)
}

/// # Safety
/// `info` must be the siginfo the kernel passed to a SA_SIGINFO handler.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn fault_address(info: *const siginfo_t) -> Option<usize> {
    // SAFETY: the caller guarantees `info` is valid. On the BSDs si_addr is a
    // plain field; signals sent by `kill` leave it null, which matches no
    // registered mapping.
    let addr = unsafe { (*info).si_addr } as usize;
    (addr != 0).then_some(addr)
}

/// Whether the signal was raised by the kernel for a faulting access (as
/// opposed to sent with `kill`/`raise`): such a fault recurs when the handler
/// returns without fixing it.
///
/// # Safety
/// `info` must be the siginfo the kernel passed to a SA_SIGINFO handler.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn is_kernel_fault(info: *const siginfo_t) -> bool {
    // SAFETY: the caller guarantees `info` is valid; si_code is always set,
    // and is positive exactly for kernel-generated signals on Linux.
    unsafe { (*info).si_code > 0 }
}

/// # Safety
/// `info` must be the siginfo the kernel passed to a SA_SIGINFO handler.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn is_kernel_fault(info: *const siginfo_t) -> bool {
    // SAFETY: forwarded from the caller. (The BSDs' SI_USER is positive, so
    // si_code cannot tell; a non-null fault address can.)
    unsafe { fault_address(info) }.is_some()
}

/// Replace the gone pages of a registered mapping with zeros. `true` if the
/// faulting access can simply be retried.
fn zero_fill(addr: usize) -> bool {
    let Some((slot, start, len)) = REGISTRY.find(addr) else {
        return false;
    };
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    if page == 0 {
        return false;
    }
    let fault_page = addr & !(page - 1);
    let Some(end) = start
        .checked_add(len)
        .and_then(|e| e.checked_add(page - 1))
        .map(|e| e & !(page - 1))
    else {
        return false;
    };
    if end <= fault_page {
        return false;
    }
    // Everything from the faulting page to the end of the mapping: the file
    // ends before this page, so every later page would fault as well.
    // [fault_page, end) lies inside a live mapping registered by a
    // `GuardedMap` (registrations are removed before the memory is unmapped,
    // and the owner, whose read faulted, still holds it). The new pages are
    // read-only zeros, which is what the reader expects past the end of a
    // file, and `munmap` on drop removes them with the rest.
    // SAFETY: MAP_FIXED replaces pages of *our* live, registered mapping
    // only (see above): nothing else can live there.
    let rc = unsafe {
        libc::mmap(
            fault_page as *mut c_void,
            end - fault_page,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if rc == libc::MAP_FAILED {
        return false;
    }
    slot.mark_truncated();
    true
}

/// Restore the default action and raise SIGBUS again: the process ends as it
/// would have without our handler.
fn die(sig: c_int) {
    // With SA_NODEFER the raised signal is delivered at once; were it not,
    // returning re-runs the faulting access, which then meets the default action.
    // SAFETY: zeroed sigaction = SIG_DFL, empty mask, no flags; sigaction and
    // raise are async-signal-safe.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Hand a SIGBUS that is not ours to whoever had SIGBUS before us.
///
/// # Safety
/// Must only be called from the SIGBUS handler with the arguments it got.
unsafe fn chain(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void, is_fault: bool) {
    if !PREV_READY.load(Ordering::Acquire) {
        die(sig);
        return;
    }
    // SAFETY: PREV_READY means PREV was written (once, before our handler was
    // installed) and is never written again: this is a plain read.
    let prev = unsafe { (*PREV.0.get()).assume_init_ref() };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL {
        die(sig);
    } else if handler == libc::SIG_IGN {
        // An ignored SIGBUS cannot stop a real fault from recurring forever
        // (and the kernel would not have ignored a forced fault signal
        // either): die. A SIGBUS sent with kill is ignored, as asked.
        if is_fault {
            die(sig);
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        type SigInfoHandler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);
        // SAFETY: with SA_SIGINFO the previous owner registered a three-argument
        // handler at this address; we pass it the kernel's own arguments.
        let f: SigInfoHandler = unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler is a one-argument
        // `void (*)(int)` at this address.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

extern "C" fn on_sigbus(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let errno = errno_location();
    // SAFETY: the errno location of this thread is valid for its lifetime.
    let saved = errno.map(|p| unsafe { *p });
    let (addr, is_fault) = if info.is_null() {
        (None, false)
    } else {
        // SAFETY: `info` is the non-null siginfo the kernel passed to this
        // SA_SIGINFO handler.
        unsafe { (fault_address(info), is_kernel_fault(info)) }
    };
    let handled = addr.is_some_and(zero_fill);
    if let (Some(p), Some(v)) = (errno, saved) {
        // SAFETY: as above; restores what the interrupted code saw.
        unsafe { *p = v };
    }
    if !handled {
        // SAFETY: called from the SIGBUS handler with its own arguments.
        unsafe { chain(sig, info, ctx, is_fault) };
    }
}

// --------------------------------------------------------------- GuardedMap

/// A read-only file mapping registered with the SIGBUS guard: reading it after
/// the file shrank gives zeros (and sets [`GuardedMap::truncated`]) instead
/// of killing the process.
pub struct GuardedMap {
    /// Registry slot; `None` when the guard is unavailable (the handler
    /// could not be installed).
    slot: Option<&'static Slot>,
    /// Dropped (unmapped) after `Drop::drop` has unregistered the slot.
    map: Mmap,
}

impl GuardedMap {
    pub fn new(map: Mmap) -> Self {
        let slot = if install() {
            REGISTRY.register(map.as_ptr() as usize, map.len())
        } else {
            None
        };
        GuardedMap { slot, map }
    }

    /// Whether a shrinking file is survived: always, unless the SIGBUS
    /// handler could not be installed.
    pub fn is_guarded(&self) -> bool {
        self.slot.is_some()
    }

    /// Some page of the mapping was found gone (the file shrank) and now
    /// reads as zeros. Sticky. One atomic load.
    pub fn truncated(&self) -> bool {
        self.slot.is_some_and(Slot::is_truncated)
    }

    /// The mapping itself, for access advice (`madvise`) by its reader.
    pub(crate) fn mmap(&self) -> &Mmap {
        &self.map
    }
}

impl Deref for GuardedMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for GuardedMap {
    fn drop(&mut self) {
        // Unregister first: `self.map` is unmapped only after this returns,
        // so the handler never matches memory that is no longer ours.
        if let Some(slot) = self.slot.take() {
            REGISTRY.unregister(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicU64;

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "netreplay-mapguard-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            File::create(&path).unwrap().write_all(contents).unwrap();
            TempFile(path)
        }
        fn path(&self) -> &Path {
            &self.0
        }
        fn truncate(&self, len: u64) {
            OpenOptions::new()
                .write(true)
                .open(&self.0)
                .unwrap()
                .set_len(len)
                .unwrap();
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn page() -> usize {
        // SAFETY: no preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
    }

    fn map(path: &Path) -> Mmap {
        let file = File::open(path).unwrap();
        // SAFETY: test file, private to this test; truncating it is the point
        // and is what the guard makes survivable.
        unsafe { Mmap::map(&file) }.unwrap()
    }

    #[test]
    fn registry_registers_finds_and_frees_slots() {
        let reg: Registry<3> = Registry::new();
        assert!(
            reg.register(0x1000, 0).is_none(),
            "empty ranges are refused"
        );
        let a = reg.register(0x10_000, 0x3000).unwrap();
        let b = reg.register(0x20_000, 0x1001).unwrap();
        let c = reg.register(0x30_000, 0x10).unwrap();
        assert!(!std::ptr::eq(a, b));
        let found = |addr| {
            reg.find(addr)
                .map(|(s, start, len)| (s as *const Slot, start, len))
        };
        assert_eq!(found(0x10_000), Some((a as *const _, 0x10_000, 0x3000)));
        assert_eq!(found(0x12_fff), Some((a as *const _, 0x10_000, 0x3000)));
        assert_eq!(found(0x13_000), None, "one past the end");
        assert_eq!(found(0x0f_fff), None);
        assert_eq!(found(0x21_000), Some((b as *const _, 0x20_000, 0x1001)));
        assert_eq!(found(0x30_00f), Some((c as *const _, 0x30_000, 0x10)));
        assert_eq!(found(usize::MAX), None);

        assert!(!b.is_truncated());
        b.mark_truncated();
        assert!(b.is_truncated());
        assert!(!a.is_truncated());

        reg.unregister(b);
        assert_eq!(found(0x20_000), None, "gone after unregister");
        // The freed slot is reused, with a clean truncated flag.
        let d = reg.register(0x50_000, 0x100).unwrap();
        assert!(std::ptr::eq(d, b));
        assert!(!d.is_truncated());
        assert_eq!(found(0x50_080), Some((d as *const _, 0x50_000, 0x100)));
        assert_eq!(reg.block_count(), 1);
    }

    #[test]
    fn registry_grows_past_any_block_and_finds_every_mapping() {
        // 1,100 live mappings in blocks of 3 (the old fixed table had 1,024).
        let reg: Registry<3> = Registry::new();
        let start = |i: usize| 0x1_0000_0000 + i * 0x10_000;
        let slots: Vec<&Slot> = (0..1100)
            .map(|i| reg.register(start(i), 0x1000).unwrap())
            .collect();
        assert_eq!(reg.block_count(), 1100usize.div_ceil(3));
        for (i, slot) in slots.iter().enumerate() {
            let (found, s, len) = reg.find(start(i) + 0xfff).unwrap();
            assert!(std::ptr::eq(found, *slot) && s == start(i) && len == 0x1000);
        }
        // Freed slots anywhere are reused before the list grows again.
        reg.unregister(slots[1099]);
        reg.unregister(slots[5]);
        let again = reg.register(0x42_0000_0000, 0x1000).unwrap();
        assert!(std::ptr::eq(again, slots[5]));
        let again = reg.register(0x43_0000_0000, 0x1000).unwrap();
        assert!(std::ptr::eq(again, slots[1099]));
        assert_eq!(reg.block_count(), 1100usize.div_ceil(3));
    }

    #[test]
    fn registry_is_consistent_under_concurrent_use() {
        // Blocks of 2 for 4 threads: registrations race to link new blocks.
        static REG: Registry<2> = Registry::new();
        let threads: Vec<_> = (0..4usize)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..2000usize {
                        let start = (t + 1) << 32 | i << 12;
                        let slot = REG.register(start, 0x1000).unwrap();
                        // Our own range is found, and maps to our slot.
                        let (found, s, _) = REG.find(start + 5).unwrap();
                        assert!(std::ptr::eq(found, slot) && s == start);
                        // Keep a few alive at once so that blocks fill up.
                        held.push(slot);
                        if held.len() > 3 {
                            REG.unregister(held.remove(0));
                        }
                    }
                    for slot in held {
                        REG.unregister(slot);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(REG.find((1 << 32) + 5).is_none());
        assert!(REG.block_count() >= 2);
    }

    #[test]
    fn more_live_maps_than_the_old_table_are_all_guarded_and_survive_a_cut() {
        // The fixed table had 1,024 slots: map 1,100 files, then cut the last.
        let files: Vec<TempFile> = (0..1100)
            .map(|i| TempFile::new(&format!("many-{i}"), &vec![b'x'; 2 * page()]))
            .collect();
        let maps: Vec<GuardedMap> = files
            .iter()
            .map(|f| GuardedMap::new(map(f.path())))
            .collect();
        assert!(maps.iter().all(GuardedMap::is_guarded));
        files[1099].truncate(0);
        // Without a guard on this map the read is a SIGBUS.
        let last = &maps[1099];
        assert_eq!(last.iter().map(|&b| u64::from(b)).sum::<u64>(), 0);
        assert!(last.truncated());
        assert!(!maps[1098].truncated());
    }

    #[test]
    fn guarded_map_reads_zeros_after_truncation_to_zero() {
        let page = page();
        let file = TempFile::new("zero", &vec![b'x'; 4 * page + 100]);
        let map = GuardedMap::new(map(file.path()));
        assert!(map.is_guarded());
        assert_eq!(map.len(), 4 * page + 100);
        assert!(map[..page].iter().all(|&b| b == b'x'));
        assert!(!map.truncated());

        file.truncate(0);
        // Without the guard this read is a SIGBUS.
        let sum: u64 = map.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(sum, 0, "every page past the end reads as zeros");
        assert!(map.truncated());
        // Still readable, still zeros, still flagged.
        assert_eq!(map[map.len() - 1], 0);
        assert!(map.truncated());
    }

    #[test]
    fn guarded_map_keeps_data_before_an_unaligned_truncation() {
        let page = page();
        let contents: Vec<u8> = (0..5 * page + 7).map(|i| b'a' + (i % 26) as u8).collect();
        let file = TempFile::new("unaligned", &contents);
        let map = GuardedMap::new(map(file.path()));
        assert_eq!(&map[..10], &contents[..10]);

        let cut = page + 123;
        file.truncate(cut as u64);
        let copy: Vec<u8> = map.to_vec();
        assert_eq!(&copy[..cut], &contents[..cut], "data before the cut");
        assert!(copy[cut..].iter().all(|&b| b == 0), "zeros after the cut");
        assert!(map.truncated());
    }

    #[test]
    fn untouched_maps_are_not_flagged_and_slots_are_freed() {
        let file = TempFile::new("plain", b"hello\n");
        let maps: Vec<GuardedMap> = (0..8).map(|_| GuardedMap::new(map(file.path()))).collect();
        assert!(maps.iter().all(|m| m.is_guarded() && !m.truncated()));
        assert!(maps.iter().all(|m| &m[..] == b"hello\n"));
        let slots: Vec<*const Slot> = maps
            .iter()
            .map(|m| m.slot.unwrap() as *const Slot)
            .collect();
        let addr = maps[0].as_ptr() as usize;
        drop(maps);
        for s in slots {
            // Freed (or reused by a concurrent test for another mapping).
            assert!(REGISTRY
                .find(addr)
                .is_none_or(|(slot, start, _)| !std::ptr::eq(slot, s) || start != addr));
        }
    }

    /// The MCL reader on a file that shrinks mid-read, to 0 and to an
    /// unaligned length, with and without skipping malformed lines: an Io
    /// error, never a crash or a garbage record.
    #[test]
    fn mcl_reader_reports_a_file_that_shrinks_mid_read() {
        use crate::engine::open_file;
        use crate::format::mcl::ReadOptions;
        use crate::format::{OnError, RecordSource};
        use crate::Error;

        let log = |size: usize| {
            let mut text = String::from(
                "#---\n# MCL_LOG\n#     -- created     1970-01-01 00:00:00\n#      >>> T\n",
            );
            let mut k = 0u32;
            while text.len() < size {
                text.push_str(&format!(
                    "{:>12.5}    ''    c406{:08x}abab\n",
                    f64::from(k) / 1e3,
                    k
                ));
                k += 1;
            }
            text
        };
        let big = log(64 * page());
        // Less than a page: truncation zeroes the tail in place, no page is
        // lost and no SIGBUS happens; the reader must notice anyway.
        let small = log(page() / 2);
        let unaligned = 3 * page() as u64 + 17;
        let cases = [
            (&big, 0u64, OnError::Fail),
            (&big, 0, OnError::Skip),
            (&big, unaligned, OnError::Fail),
            (&big, unaligned, OnError::Skip),
            (&big, 700, OnError::Fail),
            (&big, 700, OnError::Skip),
            (&small, 700, OnError::Fail),
            (&small, 700, OnError::Skip),
            (&small, 0, OnError::Fail),
        ];
        for (text, cut, on_error) in cases {
            let file = TempFile::new("mcl.log", text.as_bytes());
            let options = ReadOptions {
                on_error,
                ..ReadOptions::default()
            };
            let mut reader = open_file(file.path(), &options).unwrap();
            for i in 0..5u32 {
                let r = reader.next_record().unwrap().unwrap();
                assert_eq!(r.payload[2..6], i.to_be_bytes());
            }
            file.truncate(cut);
            let mut next = 5u32;
            let err = loop {
                match reader.next_record() {
                    Ok(Some(r)) => {
                        // Only intact records may come out.
                        assert_eq!(r.payload[2..6], next.to_be_bytes(), "cut {cut}");
                        assert_eq!(r.payload[6..], [0xab, 0xab], "cut {cut}");
                        next += 1;
                    }
                    Ok(None) => panic!("cut {cut} {on_error:?}: end without an error"),
                    Err(e) => break e,
                }
            };
            match &err {
                Error::Io { path, message } => {
                    assert_eq!(path, file.path());
                    assert!(message.contains("shrank"), "{message}");
                }
                other => panic!("cut {cut} {on_error:?}: expected Io, got {other:?}"),
            }
            // That file is done with; the stream ends.
            assert_eq!(reader.next_record().unwrap(), None);
        }
    }

    const CHAIN_ENV: &str = "NETREPLAY_TEST_MAPGUARD_CHAIN";

    static PREV_CALLS: AtomicUsize = AtomicUsize::new(0);
    static PREV_FIXED: AtomicUsize = AtomicUsize::new(0);

    /// A "foreign" SIGBUS handler (think V8's) installed before ours: counts
    /// its calls and, for a real fault, maps a zero page so the load can
    /// proceed.
    extern "C" fn foreign_handler(_sig: c_int, info: *mut siginfo_t, _ctx: *mut c_void) {
        PREV_CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: kernel-provided siginfo of a SA_SIGINFO handler.
        if let Some(addr) = unsafe { fault_address(info) } {
            let page = PAGE_SIZE.load(Ordering::Relaxed);
            // SAFETY: test only: the address is a page of the test's own
            // (truncated) file mapping.
            unsafe {
                libc::mmap(
                    (addr & !(page - 1)) as *mut c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
            }
            PREV_FIXED.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Run in a child process by `sigbus_not_ours_goes_to_the_previous_handler`
    /// (a fresh process, so that our handler is installed after the foreign
    /// one). Does nothing when run directly.
    #[test]
    #[ignore = "helper: run in a child process"]
    fn chain_child() {
        let Ok(mode) = std::env::var(CHAIN_ENV) else {
            return;
        };
        let page = page();
        if mode == "foreign" {
            // SAFETY: installs a valid SA_SIGINFO handler for SIGBUS.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = foreign_handler
                    as extern "C" fn(c_int, *mut siginfo_t, *mut c_void)
                    as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
                libc::sigemptyset(&mut action.sa_mask);
                assert_eq!(
                    libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()),
                    0
                );
            }
        }
        assert!(install());

        // An unguarded map of a truncated file: not ours.
        let file = TempFile::new("chain", &vec![b'x'; 3 * page]);
        let plain = map(file.path());
        let guarded = GuardedMap::new(map(file.path()));
        file.truncate(0);
        if mode == "foreign" {
            // A SIGBUS sent by kill/raise goes to the foreign handler.
            // SAFETY: raising a signal whose handler returns.
            unsafe { libc::raise(libc::SIGBUS) };
            assert_eq!(PREV_CALLS.load(Ordering::SeqCst), 1);
            assert_eq!(PREV_FIXED.load(Ordering::SeqCst), 0);
        }
        // Our own mapping: handled here, the foreign handler is not involved.
        assert!(guarded.iter().all(|&b| b == 0));
        assert!(guarded.truncated());
        let before = PREV_CALLS.load(Ordering::SeqCst);
        assert_eq!(before, usize::from(mode == "foreign"));
        eprintln!("child: reading the unguarded map");
        // A fault outside our mappings: the foreign handler fixes it, or the
        // process dies of SIGBUS when there is none.
        let first = std::hint::black_box(&plain[..])[page + 1];
        assert_eq!(first, 0);
        assert_eq!(PREV_CALLS.load(Ordering::SeqCst), before + 1);
        assert_eq!(PREV_FIXED.load(Ordering::SeqCst), 1);
        println!("CHAIN-CHILD-OK");
    }

    fn run_chain_child(mode: &str) -> std::process::Output {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sys::mapguard::tests::chain_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHAIN_ENV, mode)
            .output()
            .unwrap()
    }

    #[test]
    fn sigbus_not_ours_goes_to_the_previous_handler() {
        let out = run_chain_child("foreign");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHAIN-CHILD-OK"),
            "{}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn sigbus_not_ours_still_kills_without_a_previous_handler() {
        use std::os::unix::process::ExitStatusExt;
        // The Rust test runtime's own SIGBUS handler (stack overflow
        // detection) is the previous one here: it restores the default
        // action, so the process must die of SIGBUS as before.
        let out = run_chain_child("default");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("child: reading the unguarded map"),
            "{stderr}"
        );
    }
}
