//! What a plugin instance sees of the world: nothing but a log.
//!
//! Rust's standard library on `wasm32-wasip2` imports WASI (clocks, random,
//! stdio, filesystem, sockets), so those imports are linked, but with
//! nothing behind them: no preopened directories, no network, no
//! environment or arguments, a clock stopped at the Unix epoch and a fixed
//! random sequence. A plugin therefore answers the same for the same record
//! on every replay. Its stdout, stderr and log calls go to the host log,
//! capped per call.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreContextMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult, subscribe};
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView,
    WasiView,
};

use super::bindings::{Level, lineage};
use super::schemas::WriterSchemas;

/// Per-store state: the WASI context behind the imports, the memory
/// limiter and the captured output.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub output: Arc<Mutex<GuestOutput>>,
    schemas: Arc<WriterSchemas>,
}

impl Sandbox {
    pub fn new(
        label: Arc<str>,
        memory_limit: u64,
        output_limit: u64,
        schemas: Arc<WriterSchemas>,
    ) -> Self {
        let output = Arc::new(Mutex::new(GuestOutput::new(label, output_limit as usize)));
        let wasi = WasiCtxBuilder::new()
            .stdout(CapturedStream {
                output: output.clone(),
                stream: Stream::Stdout,
            })
            .stderr(CapturedStream {
                output: output.clone(),
                stream: Stream::Stderr,
            })
            .wall_clock(StoppedClock)
            .monotonic_clock(StoppedClock)
            .secure_random(Deterministic::new(fixed_random_bytes()))
            .insecure_random(Deterministic::new(fixed_random_bytes()))
            .insecure_random_seed(0x6c69_6e65_6167_6521)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit as usize),
            output,
            schemas,
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl lineage::plugin::log::Host for Sandbox {
    fn log(&mut self, level: Level, message: String) {
        self.output
            .lock()
            .expect("guest output lock")
            .log(level, &message);
    }
}

impl lineage::plugin::types::Host for Sandbox {}

impl lineage::plugin::schemas::Host for Sandbox {
    fn writer_schema(&mut self, id: u32) -> Option<String> {
        self.schemas.get(id).map(|s| s.to_string())
    }
}

/// Records how far memory grew and whether the limit stopped it, so that a
/// trap can be reported as what it was.
pub struct MemoryLimiter {
    limit: usize,
    pub peak: usize,
    pub refused: Option<usize>,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            peak: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            // An error traps right at `memory.grow`, before the guest's
            // allocator can turn it into a panic with a less precise message.
            wasmtime::bail!("plugin memory limit of {} bytes reached", self.limit);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Guest output of the current call, bounded by `limit` bytes in all.
pub struct GuestOutput {
    label: Arc<str>,
    limit: usize,
    used: usize,
    discarded: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl GuestOutput {
    fn new(label: Arc<str>, limit: usize) -> Self {
        Self {
            label,
            limit,
            used: 0,
            discarded: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn admit(&mut self, len: usize) -> usize {
        let admitted = len.min(self.limit - self.used);
        self.used += admitted;
        self.discarded += len - admitted;
        admitted
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        let n = self.admit(bytes.len());
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(&bytes[..n]);
    }

    fn log(&mut self, level: Level, message: &str) {
        let n = self.admit(message.len());
        if n == 0 {
            return;
        }
        let message = truncate_utf8(message, n);
        let plugin = &*self.label;
        match level {
            Level::Trace => tracing::trace!(target: "lineage::guest", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "lineage::guest", plugin, "{message}"),
            Level::Info => tracing::info!(target: "lineage::guest", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "lineage::guest", plugin, "{message}"),
            Level::Error => tracing::error!(target: "lineage::guest", plugin, "{message}"),
        }
    }

    /// The message of a Rust panic printed during this call, if any: what a
    /// trap's drop reason should say.
    pub fn panic_message(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.stderr);
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(at) = line.find("panicked at ") {
                let location = line[at + "panicked at ".len()..].trim_end_matches(':');
                let message = lines.next().unwrap_or("").trim();
                return Some(format!("panicked at {location}: {message}"));
            }
        }
        None
    }

    /// Sends this call's stdout and stderr to the host log and starts over.
    pub fn flush(&mut self) {
        let plugin = &*self.label;
        for line in String::from_utf8_lossy(&self.stdout).lines() {
            tracing::info!(target: "lineage::guest", plugin, stream = "stdout", "{line}");
        }
        for line in String::from_utf8_lossy(&self.stderr).lines() {
            tracing::warn!(target: "lineage::guest", plugin, stream = "stderr", "{line}");
        }
        if self.discarded > 0 {
            tracing::warn!(
                target: "lineage::guest",
                plugin,
                discarded_bytes = self.discarded,
                "plugin output over --plugin-output-limit was discarded"
            );
        }
        self.stdout.clear();
        self.stderr.clear();
        self.used = 0;
        self.discarded = 0;
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Clone)]
struct CapturedStream {
    output: Arc<Mutex<GuestOutput>>,
    stream: Stream,
}

impl CapturedStream {
    fn write_bytes(&self, bytes: &[u8]) {
        self.output
            .lock()
            .expect("guest output lock")
            .write(self.stream, bytes);
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

// Writes never fail and never block: a guest whose `println!` failed would
// panic, and output past the cap is discarded rather than refused.
impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The WASI version whose monotonic clock [`add_stopped_timers`] replaces;
/// it must be the one `wasmtime_wasi::p2` links (a test sleeps to check).
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the monotonic clock's timers, which wasmtime-wasi backs with a
/// real sleep: a plugin that sleeps would block its worker for as long as
/// it asked, out of reach of fuel and of the epoch deadline, which only
/// interrupt WebAssembly code. On the stopped clock every timer has already
/// expired, so sleeping returns at once and waiting for time to pass spins
/// until fuel runs out, the same on every replay.
pub fn add_stopped_timers(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    fn expired(mut cx: StoreContextMut<'_, Sandbox>) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let table = &mut cx.data_mut().table;
        let timer = table.push(Expired)?;
        Ok((subscribe(table, timer)?,))
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance(WASI_CLOCKS)?;
    clock.func_wrap("subscribe-duration", |cx, (_,): (u64,)| expired(cx))?;
    clock.func_wrap("subscribe-instant", |cx, (_,): (u64,)| expired(cx))?;
    linker.allow_shadowing(false);
    Ok(())
}

struct Expired;

#[wasmtime_wasi::async_trait]
impl Pollable for Expired {
    async fn ready(&mut self) {}
}

/// Both clocks read zero: time-dependent logic would make replays differ.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}

/// A fixed pseudo-random sequence (splitmix64): plugins that hash with
/// random keys behave the same on every replay.
fn fixed_random_bytes() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(4096);
    while bytes.len() < 4096 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_across_streams() {
        let mut out = GuestOutput::new("p".into(), 10);
        out.write(Stream::Stdout, b"123456");
        out.write(Stream::Stderr, b"abcdef");
        assert_eq!(out.stdout, b"123456");
        assert_eq!(out.stderr, b"abcd");
        assert_eq!(out.discarded, 2);
        out.flush();
        out.write(Stream::Stdout, b"after");
        assert_eq!(out.stdout, b"after");
    }

    #[test]
    fn finds_the_panic_message() {
        let mut out = GuestOutput::new("p".into(), 1000);
        out.write(
            Stream::Stderr,
            b"\nthread '<unnamed>' panicked at src/lib.rs:7:9:\nboom on 3\nnote: run with `RUST_BACKTRACE=1`\n",
        );
        assert_eq!(
            out.panic_message().unwrap(),
            "panicked at src/lib.rs:7:9: boom on 3"
        );
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
    }
}
