//! The supervisor: binds, creates the run directory, forks the workers,
//! restarts the ones that die, and stops them all on SIGTERM or SIGINT.
//! It never starts a thread, so forking stays safe for its whole life.

use super::config::Prefork;
use super::worker::Worker;
use crate::server_metrics::ServerMetrics;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use std::io;
use std::time::{Duration, Instant};
use vitals::SharedRegion;

/// A worker that exits on its own (not killed) this soon after it started
/// is restarted only after a pause, so a crash at start-up cannot spin.
const CRASH_WINDOW: Duration = Duration::from_secs(1);
const CRASH_PAUSE: Duration = Duration::from_millis(500);
/// Longest wait for every worker to attach to its slot at start-up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One running worker.
struct Child {
    pid: Pid,
    started: Instant,
}

fn os(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Prefork {
    /// Runs the server: call it first in `main`, before any thread or
    /// runtime exists (it forks). `metrics` builds the server metrics on a
    /// registry (the supervisor's and, by the worker's own call, each
    /// worker's: the same function, so every process registers the same
    /// families); `serve` runs in each worker process and returns when it
    /// has shut down. Returns in the supervisor after a graceful stop;
    /// never returns in a worker (it exits with `serve`'s result).
    pub fn run<M, S>(self, metrics: M, serve: S) -> io::Result<()>
    where
        M: Fn(vitals::Registry) -> Result<ServerMetrics, vitals::Error>,
        S: Fn(Worker) -> io::Result<()>,
    {
        let began = Instant::now();
        let listener = std::net::TcpListener::bind(&self.listen)?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let dir = self
            .run_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("vitals-prefork-{port}")));
        let region = SharedRegion::create(&dir, self.workers + 1, self.slot_bytes)?;
        let own = metrics(region.registry(self.workers)?).map_err(io::Error::other)?;

        // Signals are taken with sigwait: block them before the first fork
        // (workers unblock what they need).
        let mut signals = SigSet::empty();
        for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
            signals.add(s);
        }
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut previous)).map_err(os)?;

        let start = |index: usize| -> io::Result<Child> {
            self.fork_worker(index, &listener, &region, &previous, &serve, &own)
        };
        let mut children: Vec<Option<Child>> = Vec::with_capacity(self.workers);
        for i in 0..self.workers {
            children.push(Some(start(i)?));
        }
        let ready = Instant::now() + READY_TIMEOUT;
        while Instant::now() < ready
            && !(0..self.workers).all(|i| region.slot_state(i).is_some_and(|s| s.live))
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        own.startup_finished(began);

        loop {
            let signal = signals.wait().map_err(os)?;
            if signal != Signal::SIGCHLD {
                break;
            }
            for (_, exit) in reap(&mut children, &region, &own) {
                if let Some(pause) = restart_pause(exit) {
                    std::thread::sleep(pause);
                }
            }
            for (i, slot) in children.iter_mut().enumerate() {
                if slot.is_none() {
                    *slot = Some(start(i)?);
                }
            }
        }

        own.shutdown_started();
        for c in children.iter().flatten() {
            let _ = kill(c.pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while children.iter().any(Option::is_some) {
            reap(&mut children, &region, &own);
            if Instant::now() >= deadline {
                for c in children.iter().flatten() {
                    let _ = kill(c.pid, Signal::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        own.shutdown_finished();
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
        Ok(())
    }

    /// Forks worker `index`; in the child, runs `serve` and exits.
    fn fork_worker<S>(
        &self,
        index: usize,
        listener: &std::net::TcpListener,
        region: &SharedRegion,
        mask: &SigSet,
        serve: &S,
        own: &ServerMetrics,
    ) -> io::Result<Child>
    where
        S: Fn(Worker) -> io::Result<()>,
    {
        // SAFETY: the supervisor never starts a thread (documented on
        // `run`, which must be called before any), so the child is a
        // faithful single-threaded copy.
        match unsafe { fork() }.map_err(os)? {
            ForkResult::Parent { child } => {
                own.worker_spawned(index as u32, Some(child.as_raw() as u32));
                Ok(Child {
                    pid: child,
                    started: Instant::now(),
                })
            }
            ForkResult::Child => {
                let code = worker_main(index, self.workers, listener, region, mask, serve);
                std::process::exit(code);
            }
        }
    }
}

/// The start of a worker process: its signals, its registry, `serve`.
fn worker_main<S>(
    index: usize,
    workers: usize,
    listener: &std::net::TcpListener,
    region: &SharedRegion,
    mask: &SigSet,
    serve: &S,
) -> i32
where
    S: Fn(Worker) -> io::Result<()>,
{
    // SIGINT goes to the whole process group on Ctrl-C; the supervisor
    // stops the workers in order, so a worker ignores it.
    // SAFETY: setting a signal to SIG_IGN runs no handler code.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn) };
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
    let run = || -> io::Result<()> {
        let worker = Worker {
            index,
            workers,
            listener: listener.try_clone()?,
            registry: region.registry(index)?,
        };
        serve(worker)
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vitals prefork: worker {index} failed: {e}");
            1
        }
    }
}

/// Reaps every exited worker: marks its slot dead, counts the exit, and
/// frees its place. Returns (worker, exit code) of each.
fn reap(
    children: &mut [Option<Child>],
    region: &SharedRegion,
    own: &ServerMetrics,
) -> Vec<(usize, Option<(i32, Duration)>)> {
    let mut out = Vec::new();
    loop {
        let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return out,
            Ok(s) => s,
        };
        let (pid, code) = match status {
            WaitStatus::Exited(pid, code) => (pid, Some(code)),
            WaitStatus::Signaled(pid, _, _) => (pid, None),
            _ => continue,
        };
        let Some(index) = children
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.pid == pid))
        else {
            continue;
        };
        let age = children[index]
            .as_ref()
            .map_or(Duration::ZERO, |c| c.started.elapsed());
        children[index] = None;
        region.mark_dead(index);
        own.worker_exited(index as u32, Some(pid.as_raw() as u32), code);
        out.push((index, code.map(|c| (c, age))));
    }
}

/// The pause before restarting a worker that exited on its own soon after
/// it started; none for one that was killed or ran a while.
fn restart_pause(exit: Option<(i32, Duration)>) -> Option<Duration> {
    match exit {
        Some((_, age)) if age < CRASH_WINDOW => Some(CRASH_PAUSE),
        _ => None,
    }
}
