//! What the bench reads of processes (Linux /proc) and how it pins them to
//! cores (`taskset`, from util-linux).

use std::process::Command;
use std::time::Duration;

/// User plus system CPU time of a process.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // the fields after the command name, which is in parentheses
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on Linux
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

pub use llmpool_e2e::harness::rss_kib;

/// CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins every thread of `pid` to `core`; false when that cannot be done
/// (one core, or no taskset).
pub fn pin(pid: u32, core: usize) -> bool {
    cores() >= 2
        && Command::new("taskset")
            .args(["-a", "-cp", &core.to_string(), &pid.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
}
