use clap::Parser;

/// Every query allocates and frees many small buffers across threads;
/// mimalloc does that with less contention and fragmentation than the
/// system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio_util::sync::CancellationToken;

use skein::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    // One line with the whole cause chain, whatever RUST_BACKTRACE says.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Keygen = cli.command {
        println!("{}", skein::cluster::keyring::generate_key());
        return Ok(());
    }
    skein::telemetry::init_logging(&cli.log_level, cli.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skein")
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        spawn_signal_task(shutdown.clone());
        match cli.command {
            Command::Query(args) => {
                skein::querier::run((*args).into_config()?, shutdown, |_| {}).await
            }
            Command::Sidecar(args) => {
                skein::sidecar::run(args.into_config()?, shutdown, |_| {}).await
            }
            Command::Synthetic(args) => {
                skein::synthetic::run(args.into_config()?, shutdown, |_| {}).await
            }
            Command::Store(args) => {
                skein::storegw::run(args.into_config()?, shutdown, |_| {}).await
            }
            Command::Frontend(args) => {
                skein::frontend::run((*args).into_config()?, shutdown, |_| {}).await
            }
            Command::Demo(args) => skein::demo::run(args.into_config()?, shutdown).await,
            Command::Keygen => Ok(()),
        }
    })
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
fn spawn_signal_task(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                },
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
