//! rtmp-load: the bundled RTMP load generator.
//!
//! One thread, one mio event loop, thousands of connections: publishers loop real (FLV) or
//! synthetic H.264 + AAC at real-time pace with a latency stamp in every video frame; players
//! (RTMP, or HTTP-FLV with `--player-proto http-flv`; plus optional HLS pollers) measure
//! connect-to-play, time to first frame, throughput, end-to-end latency (HDR histogram),
//! stalls, disconnects and errors. With `--server-pid` it also reports the server's
//! CPU-seconds per delivered GB and RSS per connection.
//!
//! Modules: [`scenario`] (flags + TOML), [`source`] (FLV / synthetic media loop), [`sei`]
//! (latency stamps), [`engine`] (the event loop), [`stats`], [`procstat`] (/proc sampling),
//! [`report`] (table, JSON), [`plot`] (SVG).

mod engine;
mod plot;
mod procstat;
mod report;
mod scenario;
mod sei;
mod source;
mod stats;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::engine::RunOptions;
use crate::scenario::{Knobs, Scenario, SourceSpec};
use crate::source::MediaSource;

/// Load generator for RTMP servers.
#[derive(Debug, Parser)]
#[command(name = "rtmp-load", version, about)]
struct Cli {
    /// TOML file with any of the scenario flags (flags given on the command line win).
    #[arg(long)]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: Knobs,
    /// Server process to sample for CPU time and RSS (/proc/PID).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write SVG plots into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let file = match &cli.scenario {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Knobs::from_toml(&text).with_context(|| format!("in {}", p.display()))?
        }
        None => Knobs::default(),
    };
    let sc = Scenario::from_knobs(cli.knobs.or(file))?;
    let src = match &sc.source {
        SourceSpec::Flv(path) => MediaSource::from_flv_file(path)?,
        SourceSpec::Synthetic {
            video_bps,
            fps,
            gop,
        } => MediaSource::synthetic(*video_bps, *fps, *gop)?,
    };
    let opts = RunOptions {
        server_pid: cli.server_pid,
        progress: !cli.quiet,
    };

    let runs: Vec<Scenario> = if sc.sweep.is_empty() {
        vec![sc.clone()]
    } else {
        sc.sweep.iter().map(|&m| sc.with_players(m)).collect()
    };
    let mut reports = Vec::new();
    for run in &runs {
        if runs.len() > 1 && !cli.quiet {
            eprintln!(
                "rtmp-load: sweep step: {} players per stream",
                run.players_per_stream
            );
        }
        let out = engine::run(run, &src, &opts)?;
        if let Some(dir) = &cli.plot {
            let sub = if runs.len() > 1 {
                dir.join(format!("players-{}", run.players_per_stream))
            } else {
                dir.clone()
            };
            if let Err(e) = plot::latency_plots(&sub, &out.latency_us, &run.url.tc_url) {
                eprintln!("rtmp-load: no latency plot: {e:#}");
            }
        }
        if !cli.json {
            println!("{}", out.report.table());
        }
        reports.push(out.report);
    }
    if runs.len() > 1 {
        if let Some(dir) = &cli.plot {
            plot::sweep_plots(dir, &reports)?;
        }
        if !cli.json {
            println!("{}", report::sweep_table(&reports));
        }
    }
    if cli.json {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&reports)?
        };
        println!("{json}");
    }
    Ok(())
}
