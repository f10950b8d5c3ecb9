//! `crossfire serve` as its own process, on a random port, for tests and benchmarks that need
//! a real process: to signal it, kill it, restart it, or measure it.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// A running `crossfire serve`.
pub struct Instance {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub child: tokio::process::Child,
}

impl Instance {
    /// Starts `binary` (the test's `CARGO_BIN_EXE_crossfire`) as `serve`, with `args` (global
    /// flags, then `--`, then `serve`'s) and `envs`, on a random port, and waits until it says
    /// where it listens.
    pub async fn start(binary: &str, args: &[&str], envs: &[(&str, &str)]) -> Instance {
        // Global flags (`--config FILE`) go before the command, `serve`'s own after a `--`.
        let (global, serve) = match args.iter().position(|a| *a == "--") {
            Some(at) => (&args[..at], &args[at + 1..]),
            None => (&[][..], args),
        };
        let mut command = tokio::process::Command::new(binary);
        command
            .args(global)
            .arg("serve")
            .args(serve)
            .env("CROSSFIRE_ADDR", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn,crossfire_server=info,crossfire=info")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("crossfire serve starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("the instance starts")
                .unwrap()
                .expect("the instance logs where it listens");
            if let Some(at) = line.find("listening on http://") {
                let url = &line[at + "listening on ".len()..];
                break url.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe; with `INSTANCE_LOG` set,
        // its warnings and its endpoints' switches go to stderr.
        let echo = std::env::var_os("INSTANCE_LOG").is_some();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if echo && (line.contains("WARN") || line.contains("llm::endpoint")) {
                    eprintln!("{line}");
                }
            }
        });
        Instance { base, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends a signal by name (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }
}
