//! Stopping a run: the handle that asks for it, and the deadline every
//! retry loop gives up at once it is asked.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::error::RunError;
use crate::retry::Deadline;

/// Asks a running pipeline to stop; clones share one signal.
#[derive(Clone)]
pub struct StopHandle(Sender<()>);

impl StopHandle {
    pub fn new() -> (Self, Receiver<()>) {
        let (tx, rx) = bounded(1);
        (Self(tx), rx)
    }

    pub fn stop(&self) {
        let _ = self.0.try_send(());
    }
}

/// Sets the run's deadline the moment a stop is asked for, then passes the
/// stop on to the coordinator: a coordinator stuck in a retry learns of it
/// through the deadline.
pub(super) fn forward_stop(
    stop: Receiver<()>,
    deadline: Deadline,
    timeout: Duration,
) -> Result<Receiver<()>, RunError> {
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name("lineage-stop".into())
        .spawn(move || {
            if stop.recv().is_ok() {
                deadline.set(Instant::now() + timeout);
                let _ = tx.send(());
            }
        })
        .map_err(RunError::spawn("the stop thread"))?;
    Ok(rx)
}
