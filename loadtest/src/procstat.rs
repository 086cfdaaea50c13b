//! CPU time and resident memory of a process, from /proc (Linux).

use anyhow::{Context, Result};

/// Clock ticks per second of /proc/PID/stat times (USER_HZ, fixed at 100 in the Linux ABI).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// utime + stime of all threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in KiB.
    pub rss_kb: u64,
    /// Seconds its threads were runnable but waited for a CPU (sum of the second field of
    /// /proc/PID/task/*/schedstat). Growing fast means the machine is oversubscribed and
    /// latency and CPU figures measure the contention, not the server.
    pub runqueue_wait_seconds: f64,
}

/// Run-queue wait in nanoseconds from the text of a schedstat file
/// (`run_ns wait_ns timeslices`).
pub fn parse_schedstat_wait_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Sum of run-queue waits of every thread under `dir` (/proc/PID), seconds; 0 when the kernel
/// has no schedstats.
fn runqueue_wait_seconds(dir: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("{dir}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += parse_schedstat_wait_ns(&text).unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// utime + stime in ticks from the text of /proc/PID/stat. The command name may contain
/// spaces and parentheses, so fields are counted after the last ')'.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ')': state(3) ... utime is field 14 and stime 15 of the whole line, i.e. the
    // 12th and 13th after the command.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in KiB from the text of /proc/PID/status.
pub fn parse_status_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Reads process `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Result<ProcSample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))
        .with_context(|| format!("reading {dir}/stat (is the process alive?)"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))
        .with_context(|| format!("reading {dir}/status"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("parsing {dir}/stat"))?;
    Ok(ProcSample {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        rss_kb: parse_status_rss_kb(&status).unwrap_or(0),
        runqueue_wait_seconds: runqueue_wait_seconds(&dir),
    })
}

/// Warns when the open-files limit is below what the scenario needs.
pub fn warn_if_fd_limit_low(connections: u64) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(soft) = soft {
        if soft < connections + 32 {
            eprintln!(
                "rtmp-load: WARNING: open files limit is {soft} but the scenario opens \
                 {connections} connections: run `ulimit -n {}` first",
                connections + 1024
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_found_after_a_command_with_spaces_and_parens() {
        let line = "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    1 0 12345 1000000 300 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(300));
    }

    #[test]
    fn truncated_stat_yields_none() {
        assert_eq!(parse_stat_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tnginx\nVmPeak:\t  9000 kB\nVmRSS:\t    4312 kB\nThreads:\t1\n";
        assert_eq!(parse_status_rss_kb(status), Some(4312));
        assert_eq!(parse_status_rss_kb("Name: x\n"), None);
    }

    #[test]
    fn schedstat_wait_is_the_second_field() {
        assert_eq!(
            parse_schedstat_wait_ns("4962404721 13088168222 15053\n"),
            Some(13_088_168_222)
        );
        assert_eq!(parse_schedstat_wait_ns("12"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(None).unwrap();
        assert!(s.rss_kb > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
