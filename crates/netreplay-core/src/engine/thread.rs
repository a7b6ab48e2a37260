//! The one way the engine runs a native thread: a state is handed to the
//! thread, which gives it back when it ends, so that it outlives the run
//! (the producer's reader, the scheduler's sinks). Used by `BufferData`
//! and the `Scheduler`.

use std::thread::JoinHandle;

use crate::{Error, Result};

pub(crate) struct StateThread<T> {
    /// The thread's name, and what is lost if it panics (for the error).
    name: &'static str,
    holds: &'static str,
    idle: Option<T>,
    running: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> StateThread<T> {
    pub fn new(name: &'static str, holds: &'static str, state: T) -> Self {
        StateThread {
            name,
            holds,
            idle: Some(state),
            running: None,
        }
    }

    /// True while the thread runs (a thread that ended by itself is not).
    pub fn is_alive(&self) -> bool {
        self.running.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Wait for the thread to end and take its state back.
    pub fn join(&mut self) -> Result<()> {
        if let Some(handle) = self.running.take() {
            // Only a bug can make the thread panic; its state is lost with it.
            self.idle = Some(handle.join().map_err(|_| self.lost())?);
        }
        Ok(())
    }

    fn lost(&self) -> Error {
        Error::State(format!(
            "the {} thread failed; {} lost",
            self.name, self.holds
        ))
    }

    /// The state, once the thread has been joined.
    pub fn idle_mut(&mut self) -> Result<&mut T> {
        self.join()?;
        let lost = self.lost();
        self.idle.as_mut().ok_or(lost)
    }

    /// Join, then hand the state to `run` on a new thread.
    pub fn spawn(&mut self, run: impl FnOnce(T) -> T + Send + 'static) -> Result<()> {
        self.join()?;
        let state = self.idle.take().ok_or_else(|| self.lost())?;
        match std::thread::Builder::new()
            .name(format!("netreplay-{}", self.name))
            .spawn(move || run(state))
        {
            Ok(handle) => {
                self.running = Some(handle);
                Ok(())
            }
            Err(err) => Err(Error::State(format!(
                "cannot start the {} thread: {err}",
                self.name
            ))),
        }
    }

    /// Wake the thread if it sleeps in `park`.
    pub fn unpark(&self) {
        if let Some(handle) = &self.running {
            handle.thread().unpark();
        }
    }

    /// Join and drop the state (its resources are released now).
    pub fn release(&mut self) -> Result<bool> {
        self.join()?;
        Ok(self.idle.take().is_some())
    }

    /// The idle state, if any (no join).
    pub fn idle(&self) -> Option<&T> {
        self.idle.as_ref()
    }
}
