//! containerd-shim-runrs-v2: the containerd shim v2 for runrs. containerd starts it
//! (`start`), talks to its daemon over ttrpc (the Task API), and cleans up with
//! `delete`; containers are created in-process by runtime-core, no runtime binary runs.

mod bundle;
mod console;
mod container;
mod criu;
mod daemon;
mod delete;
mod error;
mod events;
mod flags;
#[cfg(test)]
mod fuzz;
mod info;
mod logger;
mod logging;
mod monitor;
mod options;
mod pidns;
mod process;
mod reaper;
mod service;
mod start;
mod stats;
mod stdio;
mod sys;
mod task;
mod translate;

fn main() {
    // A container's init is this binary re-executed: it must branch off before any
    // thread or runtime exists.
    runtime_core::maybe_run();
    let args: Vec<String> = std::env::args().collect();
    if args
        .iter()
        .skip(1)
        .any(|a| a == "-v" || a == "--version" || a == "-version")
    {
        println!(
            "{}:\n  Version:  {}\n  Runtime:  io.containerd.runrs.v2",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    if args.iter().skip(1).any(|a| a == "-info" || a == "--info") {
        if let Err(e) = info::run() {
            eprintln!("containerd-shim-runrs-v2 -info: {e}");
            std::process::exit(1);
        }
        return;
    }
    let flags = match flags::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-runrs-v2: {e}");
            std::process::exit(1);
        }
    };
    match flags.action.as_str() {
        "start" => match start::run(&flags) {
            Ok(addr) => start::print(&addr),
            Err(e) => {
                eprintln!("containerd-shim-runrs-v2 start: {e}");
                std::process::exit(1);
            }
        },
        "delete" => delete::run(&flags),
        "" => {
            if let Err(e) = daemon::run(flags) {
                eprintln!("containerd-shim-runrs-v2: {e}");
                std::process::exit(1);
            }
        }
        other => {
            eprintln!("containerd-shim-runrs-v2: unknown action {other:?}");
            std::process::exit(1);
        }
    }
}
