//! What the bench reads of processes (Linux /proc) and how it pins them to
//! cores (`taskset`, from util-linux).

use std::process::Command;
use std::time::Duration;

/// User plus system CPU time of a process.
pub fn cpu_time(pid: u32) -> Duration {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system (kernel, the TCP stack included) CPU time of a process.
pub fn cpu_split(pid: u32) -> (Duration, Duration) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    // the fields after the command name, which is in parentheses
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on Linux
    (
        Duration::from_millis(tick(11) * 10),
        Duration::from_millis(tick(12) * 10),
    )
}

pub use llmpool_e2e::harness::rss_kib;

/// CPUs online on the machine. Not this process's affinity: the bench
/// pins itself to one core first, and must still pin the others.
pub fn cores() -> usize {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let counted: usize = online
        .trim()
        .split(',')
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?),
            None => range.parse::<usize>().ok().map(|_| 1),
        })
        .sum();
    if counted > 0 {
        counted
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
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
