//! What the benchmarks share: their settings from the environment, and a process's CPU time.

/// A number from the environment, or the default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User and system CPU seconds of a process so far.
pub fn cpu_times(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let seconds = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0 // USER_HZ
    };
    (seconds(11), seconds(12))
}

/// With `BENCH_PIN` set, puts `server` (every thread) on CPU 0 and this process, the load
/// generator with the fake model, on CPU 1, with `taskset`: on two shared cores the
/// generator takes the CPU the server needs, and the tail latency measures the generator.
pub fn pin(server: u32) {
    if std::env::var_os("BENCH_PIN").is_none() {
        return;
    }
    for (pid, cpu) in [(server, "0"), (std::process::id(), "1")] {
        let pinned = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpu, &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status();
        assert!(
            pinned.is_ok_and(|s| s.success()),
            "taskset could not pin process {pid} to CPU {cpu}"
        );
    }
    println!("pinned (BENCH_PIN): the server on CPU 0; the generator and fake model on CPU 1");
}

/// The `q` quantile of sorted µs, in ms (0 if there are none).
pub fn percentile_ms(sorted: &[u64], q: f64) -> f64 {
    let at = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(at).copied().unwrap_or(0) as f64 / 1000.0
}
