//! `dynrt`: dynrt's command-line tool.
//!
//! - `dynrt demo`: a whole cluster in this process, no external service (workers, a load
//!   generator, live progress, a summary table);
//! - `dynrt serve [dyn://ns.comp.ep]`: an example worker on the configured discovery backend;
//! - `dynrt call dyn://ns.comp.ep '<json>'`: one request, its streamed items printed as they
//!   arrive;
//! - `dynrt ls [dyn://ns[.comp[.ep]]]` and `dynrt watch [...]`: the registered instances;
//! - `dynrt publish dyn://ns[.comp[.ep]] TOPIC '<json>'` and `dynrt subscribe dyn://… TOPIC`:
//!   the event plane, one event out, or every event in as `publisher sequence payload`.
//! - `dynrt broker [--xsub …] [--xpub …]`: a ZMQ broker for the event plane's broker mode.
//!
//! Exit codes: 0 success; 1 a request failed; 2 the tool could not do what was asked (a bad
//! setting or argument, discovery unreachable, no instance to call); and for `serve`, how its
//! shutdown went (`dynrt_core::shutdown`): 3 the drain was cut off by its time limit, 4 the
//! discovery lease was lost, 5 a second signal cut the drain short with requests running, 6
//! the drain finished but requests were reset during it.

mod broker;
mod call;
mod demo;
mod events;
mod logging;
mod ls;
mod progress;
mod serve;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dynrt's command-line tool. Settings come from the environment (DYN_DISCOVERY_BACKEND,
/// DYN_FILE_KV, ETCD_ENDPOINTS, DYN_TCP_RPC_PORT, ...), as for any dynrt process. Logs go to
/// stderr, filtered by RUST_LOG (default info).
#[derive(Parser)]
#[command(
    name = "dynrt",
    version,
    after_help = "Exit codes: 0 success, 1 a request failed, 2 the command could not run (a bad \
                  argument or setting, discovery unreachable, no instance to call). `serve` \
                  drains on SIGINT/SIGTERM (a second signal ends the drain at once) and exits \
                  3 if the drain was cut off by its time limit \
                  (DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS, default 25 s), 4 if it stopped \
                  because its discovery lease was lost, 5 if a second signal cut the drain \
                  short with requests running, 6 if the drain finished but requests were reset \
                  during it (a caller stopped reading, a connection failed)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster in this process under load (no external service needed)
    Demo(demo::DemoArgs),
    /// Serve an example token generator on the configured discovery backend
    Serve(serve::ServeArgs),
    /// Send one JSON request to an endpoint and print the streamed items
    Call(call::CallArgs),
    /// List registered instances
    Ls(ls::LsArgs),
    /// Print instances as they register and leave, until Ctrl-C
    Watch(ls::LsArgs),
    /// Publish one JSON event on a scope's topic (MessagePack on the wire, as Dynamo's)
    Publish(events::PublishArgs),
    /// Print a scope's events on a topic as they arrive (publisher, sequence, payload)
    Subscribe(events::SubscribeArgs),
    /// Run a ZMQ event-plane broker (XSUB for publishers, XPUB for subscribers) until Ctrl-C
    Broker(broker::BrokerArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Call(args) => call::run(args).await,
        Command::Ls(args) => ls::list(args).await,
        Command::Watch(args) => ls::watch(args).await,
        Command::Publish(args) => events::publish(args).await,
        Command::Subscribe(args) => events::subscribe(args).await,
        Command::Broker(args) => broker::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dynrt: {error}");
            error.exit_code()
        }
    }
}
