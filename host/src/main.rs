use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use lineage::cli::{self, BenchCommand, Cli, Command, LogCommand, LogFormat, PluginCommand};
use lineage::error::Failure;
use tracing_subscriber::EnvFilter;

// Keeps freed memory for reuse instead of handing it back to the kernel and
// faulting it in again on every batch, which glibc did (measured: a fifth of
// the plugin benchmark was page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    shorten_allocator_purge_delay();
    let cli = Cli::parse();
    // The demo talks to the terminal; its logs would drown the progress.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,wasmtime=warn,cranelift=warn",
        // sqlx (the SQL catalog) logs every statement and notice at info.
        _ => "info,wasmtime=warn,cranelift=warn,sqlx=warn",
    };
    init_logging(cli.log_format, default_filter);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let blame = e.blame();
            eprintln!("error: {}", lineage::error::render(&*e));
            eprintln!("  ({})", blame.advice());
            ExitCode::from(blame.exit_code())
        }
    }
}

/// Every command's error keeps its class up to here, where it decides the
/// exit code and the advice.
type Failed = Box<dyn Failure>;

fn failed(e: impl Failure) -> Failed {
    Box::new(e)
}

fn run(command: Command) -> Result<ExitCode, Failed> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Run(args) => {
            let summary = cli::run::run_until_signalled(*args).map_err(failed)?;
            tracing::info!(
                consumed = summary.consumed,
                kept = summary.kept,
                dropped = summary.dropped,
                checkpoints = summary.checkpoints,
                files = summary.files,
                early_seals = summary.early_seals,
                budget_pauses = summary.pauses,
                "stopped"
            );
        }
        Command::Demo(args) => {
            cli::demo::demo(&args, &mut out).map_err(failed)?;
        }
        Command::Generate(args) => {
            let (stop, stopped) = lineage::pipeline::StopHandle::new();
            cli::run::spawn_signal_handler(stop).map_err(failed)?;
            let done = cli::generate::generate(&args, Some(stopped), None).map_err(failed)?;
            eprintln!(
                "generate: {} records to {} ({} invalid, {} not delivered)",
                done.records, args.kafka.topic, done.invalid, done.failed
            );
            if done.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Plugin(PluginCommand::Inspect {
            component,
            json,
            plugin,
        }) => cli::plugin::inspect(&component, json, plugin, &mut out).map_err(failed)?,
        Command::Plugin(PluginCommand::Test {
            component,
            input,
            plugin,
        }) => {
            let summary =
                cli::plugin::test(&component, &input, plugin, &mut out).map_err(failed)?;
            out.flush()
                .map_err(cli::CommandError::Output)
                .map_err(failed)?;
            eprintln!(
                "plugin test: {} records, {} kept, {} dropped",
                summary.records, summary.kept, summary.dropped
            );
        }
        Command::Bench(BenchCommand::Plugin(args)) => {
            cli::bench::plugin(args, &mut out).map_err(failed)?
        }
        Command::Bench(BenchCommand::Pipeline(args)) => {
            cli::bench::pipeline(args, &mut out).map_err(failed)?
        }
        Command::Bench(BenchCommand::Kafka(args)) => {
            cli::bench::kafka(*args, &mut out).map_err(failed)?
        }
        Command::Trace(args) => cli::trace::trace(&args, &mut out).map_err(failed)?,
        Command::Status(args) => cli::status::status(&args, &mut out).map_err(failed)?,
        Command::Log(LogCommand::Verify(args)) => {
            if !cli::trace::verify(&args, &mut out).map_err(failed)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_env("LINEAGE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// mimalloc v3 keeps freed pages for a second before handing them back;
/// Parquet's buffers come and go faster than that, so the resident set held
/// a second's worth of them. Measured (`lineage bench kafka`, 2 M records,
/// 2 cores): peak RSS 208-245 MiB at 1000 ms, 174-197 MiB at 10 ms (v2's
/// default) with the same throughput; at 0 ms throughput fell 15 %.
fn shorten_allocator_purge_delay() {
    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e`.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // An explicit MIMALLOC_PURGE_DELAY still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on its
        // next purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    }
}

/// Transparent huge pages made the allocator clear 2 MiB pages over and
/// over as Parquet buffers came and went: measured, a quarter of the
/// pipeline's time and a third more resident memory.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with constant arguments; only affects this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
