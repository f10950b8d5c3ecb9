//! The model's threads: the thread that runs a forward pass and helpers that share its
//! parallel loops. A decode step is about 150 short loops (a few tens of microseconds each)
//! with a little serial work between them; a pool whose idle workers sleep is woken by the
//! kernel for most of them. The helpers here spin between loops instead, and park only when
//! no loop has come for a while (between steps, or when the model is idle).
//!
//! A loop is published as an epoch: one atomic word holds the epoch, the number of tasks and
//! the next task to claim, so a thread claims task `i` of epoch `e` only while `e` is the
//! current epoch; the loop's closure lives on the publishing thread's stack, which does not
//! return before every task has finished. A task that panics counts as finished; the panic
//! is raised again on the publishing thread once the loop is over.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle helper spins before it parks: longer than the serial work between the
/// loops of a step, shorter than what would keep a core from the rest of the process.
const SPIN: Duration = Duration::from_micros(200);

/// The model's threads; dropping it stops the helpers.
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// Epoch (high 24 bits), tasks (middle 20) and the next task to claim (low 20).
    claim: AtomicU64,
    /// Tasks of the current epoch that have finished.
    finished: AtomicUsize,
    /// The current epoch's closure: a `*const Job` on the publishing thread's stack.
    job: AtomicPtr<()>,
    /// Held by the thread whose loop is current: threads that share a team take turns.
    publisher: Mutex<()>,
    /// The first panic of the current loop's tasks, raised again by its publisher.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Helpers parked, and the lock and signal they park on.
    parked: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
}

const TASK_BITS: u32 = 20;
const TASK_MASK: u64 = (1 << TASK_BITS) - 1;

fn pack(epoch: u64, tasks: usize, next: usize) -> u64 {
    (epoch << (2 * TASK_BITS)) | ((tasks as u64) << TASK_BITS) | next as u64
}

fn unpack(claim: u64) -> (u64, usize, usize) {
    (
        claim >> (2 * TASK_BITS),
        ((claim >> TASK_BITS) & TASK_MASK) as usize,
        (claim & TASK_MASK) as usize,
    )
}

thread_local! {
    /// The team the current thread runs loops on (see [`Team::install`]).
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
    /// Whether the current thread is running a task: a loop inside a task runs on its own.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

impl Team {
    /// A team of `threads` threads in all: the caller of [`Team::install`] and
    /// `threads - 1` helpers named `{name}-{i}`.
    pub fn new(threads: usize, name: &str) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            publisher: Mutex::new(()),
            panic: Mutex::new(None),
            parked: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let helpers = (1..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || help(&shared))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Team { shared, helpers })
    }

    /// Threads in the team, the caller included.
    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `f` with this team as the current thread's: [`for_each`] inside it shares its
    /// loops with the helpers. Threads that install one team at once take turns loop by
    /// loop.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(*const Team);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(self)));
        f()
    }

    fn run(&self, tasks: usize, f: Job) {
        let shared = &*self.shared;
        let _turn = shared.publisher.lock().unwrap_or_else(|e| e.into_inner());
        let job: *const Job = &f;
        shared.job.store(job.cast_mut().cast(), Ordering::Release);
        shared.finished.store(0, Ordering::Relaxed);
        let (epoch, _, _) = unpack(shared.claim.load(Ordering::Relaxed));
        let epoch = (epoch + 1) & ((1 << (64 - 2 * TASK_BITS)) - 1);
        shared.claim.store(pack(epoch, tasks, 0), Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst) > 0 {
            let _guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        while let Some(i) = shared.claim_in(epoch) {
            shared.task(f, i);
        }
        let mut spins = 0u32;
        while shared.finished.load(Ordering::Acquire) < tasks {
            // A helper the kernel has preempted holds a task: let it have the core.
            spins += 1;
            match spins < 1 << 14 {
                true => std::hint::spin_loop(),
                false => std::thread::yield_now(),
            }
        }
        let panic = shared
            .panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(panic) = panic {
            resume_unwind(panic);
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

impl Shared {
    /// Runs task `i` of the current loop and counts it finished, whether it returns or
    /// panics (the first panic is kept for the publisher).
    fn task(&self, f: Job, i: usize) {
        IN_TASK.with(|t| t.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| f(i)));
        IN_TASK.with(|t| t.set(false));
        if let Err(panic) = result {
            self.panic
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(panic);
        }
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// Claims the next task of `epoch`, if it is still the current epoch and has one left.
    fn claim_in(&self, epoch: u64) -> Option<usize> {
        let mut claim = self.claim.load(Ordering::Acquire);
        loop {
            let (current, tasks, next) = unpack(claim);
            if current != epoch || next >= tasks {
                return None;
            }
            match self.claim.compare_exchange_weak(
                claim,
                pack(current, tasks, next + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(seen) => claim = seen,
            }
        }
    }

    /// Whether the current epoch has a task left to claim.
    fn has_work(&self) -> Option<u64> {
        let (epoch, tasks, next) = unpack(self.claim.load(Ordering::SeqCst));
        (next < tasks).then_some(epoch)
    }
}

/// A helper's life: claim tasks while there are any, spin a while when there are none, then
/// park until a loop is published.
fn help(shared: &Shared) {
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(epoch) = shared.has_work() {
            while let Some(i) = shared.claim_in(epoch) {
                // SAFETY: task `i` of `epoch` is claimed, so its publisher is still waiting
                // in `Team::run` for it to finish, with the job on its stack.
                let job = unsafe { *shared.job.load(Ordering::Acquire).cast::<Job>() };
                shared.task(job, i);
            }
            idle_since = Instant::now();
            continue;
        }
        spins += 1;
        if !spins.is_multiple_of(64) || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        let guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        shared.parked.fetch_add(1, Ordering::SeqCst);
        // Checked after saying so: a publisher either sees this helper parked or this
        // helper sees its loop.
        if shared.has_work().is_none() && !shared.stop.load(Ordering::SeqCst) {
            drop(shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner()));
        }
        shared.parked.fetch_sub(1, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}

/// Runs `f(0)`, …, `f(tasks - 1)`, each once, on the current thread's team (see
/// [`Team::install`]), or one after another on this thread when it has none.
pub fn for_each(tasks: usize, f: impl Fn(usize) + Sync) {
    assert!(tasks as u64 <= TASK_MASK, "too many tasks in one loop");
    let team = CURRENT.with(Cell::get);
    // SAFETY: a team is current only inside its own `install`, which borrows it.
    match unsafe { team.as_ref() } {
        Some(team) if tasks > 1 && !team.helpers.is_empty() && !IN_TASK.with(Cell::get) => {
            team.run(tasks, &f)
        }
        _ => (0..tasks).for_each(f),
    }
}

/// Runs `f(k, chunk)` for each `size`-long chunk of `data` in turn (the last may be shorter),
/// as [`for_each`] runs its tasks.
pub fn for_each_chunk<T: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    struct Base<T>(*mut T);
    // SAFETY: each task reaches a chunk of its own through it.
    unsafe impl<T: Send> Sync for Base<T> {}
    impl<T> Base<T> {
        fn at(&self, i: usize) -> *mut T {
            self.0.wrapping_add(i)
        }
    }
    let (len, size) = (data.len(), size.max(1));
    let base = Base(data.as_mut_ptr());
    for_each(len.div_ceil(size), |k| {
        let (start, end) = (k * size, ((k + 1) * size).min(len));
        // SAFETY: chunks are disjoint and inside `data`, which outlives the loop.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.at(start), end - start) };
        f(k, chunk)
    });
}

/// Threads in the current thread's team (1 when it has none).
pub fn threads() -> usize {
    let team = CURRENT.with(Cell::get);
    // SAFETY: as in `for_each`.
    unsafe { team.as_ref() }.map_or(1, Team::threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_in_loops_one_after_another() {
        let team = Team::new(3, "test-team").unwrap();
        team.install(|| {
            assert_eq!(threads(), 3);
            for tasks in [0, 1, 2, 7, 1000] {
                for _ in 0..50 {
                    let counts: Vec<AtomicUsize> =
                        (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                    for_each(tasks, |i| {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                }
            }
        });
        // Two threads running loops on one team at once each get all their own tasks.
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    team.install(|| {
                        for _ in 0..200 {
                            let sum = AtomicUsize::new(0);
                            for_each(100, |i| {
                                sum.fetch_add(i, Ordering::Relaxed);
                            });
                            assert_eq!(sum.load(Ordering::Relaxed), 4950);
                        }
                    })
                });
            }
        });
        // After the helpers have parked, a loop wakes them and still runs every task.
        std::thread::sleep(SPIN * 20);
        let total = AtomicUsize::new(0);
        team.install(|| {
            for_each(64, |i| {
                total.fetch_add(i, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 64 * 63 / 2);
        assert_eq!(threads(), 1, "no team outside install");
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_after_the_loop_and_the_team_goes_on() {
        let team = Team::new(2, "test-team").unwrap();
        for bad in [0, 63] {
            let ran = AtomicUsize::new(0);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                team.install(|| {
                    for_each(64, |i| {
                        ran.fetch_add(1, Ordering::Relaxed);
                        assert_ne!(i, bad, "task {bad} fails");
                    })
                })
            }));
            let message = caught.unwrap_err();
            assert!(format!("{:?}", message.downcast_ref::<String>()).contains("fails"));
            // Every other task ran, and none after the caller had gone on.
            assert_eq!(ran.load(Ordering::Relaxed), 64);
            let sum = AtomicUsize::new(0);
            team.install(|| {
                for_each(10, |i| {
                    sum.fetch_add(i, Ordering::Relaxed);
                })
            });
            assert_eq!(sum.load(Ordering::Relaxed), 45);
        }
    }

    #[test]
    fn chunks_cover_the_slice_once_each() {
        let team = Team::new(2, "test-team").unwrap();
        for (len, size) in [(0, 4), (10, 3), (64, 64), (65, 8)] {
            let mut data = vec![0usize; len];
            team.install(|| {
                for_each_chunk(&mut data, size, |k, chunk| {
                    for (j, d) in chunk.iter_mut().enumerate() {
                        *d += k * size + j + 1;
                    }
                })
            });
            assert_eq!(data, (1..=len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_loop_inside_a_task_runs_on_its_own_thread() {
        let team = Team::new(2, "test-team").unwrap();
        let sum = AtomicUsize::new(0);
        team.install(|| {
            for_each(8, |_| {
                for_each(8, |j| {
                    sum.fetch_add(j, Ordering::Relaxed);
                })
            })
        });
        assert_eq!(sum.load(Ordering::Relaxed), 8 * 28);
    }
}
