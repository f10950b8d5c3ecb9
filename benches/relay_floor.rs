//! The floor under the load goals: what it costs just to carry each model token from one
//! loopback TCP socket to another, with nothing else (no HTTP, JSON, database or engine).
//! Same cadence as `benches/load.rs`: streams start over 1 s, the model waits 30 ms, then
//! sends 122 tokens 20 ms apart; a relay process reads each and writes it to its client.
//! Reports the relay's CPU per stream and the token → client delay.
//!
//!     cargo bench --bench relay_floor               # 2,000 streams
//!     FLOOR_STREAMS=300 cargo bench --bench relay_floor
//!     BENCH_PIN=1 cargo bench --bench relay_floor   # the relay on a core of its own
//!
//! If this alone comes near 2 ms per stream on a machine, no server can relay a debate's
//! tokens there for less, and the load bench's numbers should be read against it.

mod measure;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use measure::{cpu_times, env_or, percentile_ms, pin};

/// Tokens in a debate of the load bench (244,000 over 2,000 debates).
const TOKENS: usize = 122;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, listen, model] = &args[..]
        && role == "relay"
    {
        return relay(listen.parse().unwrap(), model.parse().unwrap()).await;
    }
    let streams = env_or("FLOOR_STREAMS", 2000) as usize;
    let epoch = Instant::now();
    let model = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let model_addr = model.local_addr().unwrap();
    tokio::spawn(serve_model(model, epoch));

    // The relay runs in a process of its own so that its CPU time is its alone.
    let relay_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut relay = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["relay", &relay_addr.to_string(), &model_addr.to_string()])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = relay.id().unwrap();
    pin(pid);
    while TcpStream::connect(relay_addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start = Instant::now();
    let clients: Vec<_> = (0..streams)
        .map(|k| {
            let at = start + Duration::from_millis(1000) * k as u32 / streams as u32;
            tokio::spawn(client(relay_addr, at, epoch))
        })
        .collect();
    let mut delays = Vec::new();
    for client in clients {
        delays.extend(client.await.unwrap());
    }
    let (user, system) = cpu_times(pid);
    let _ = relay.kill().await;

    let mut delays: Vec<u64> = delays
        .iter()
        .map(|d: &Duration| d.as_micros() as u64)
        .collect();
    delays.sort_unstable();
    let at = |q: f64| percentile_ms(&delays, q);
    println!(
        "{streams} streams relayed over loopback TCP, fake model 30 ms TTFT + 20 ms/token, {TOKENS} tokens a stream"
    );
    println!(
        "  token → client delay over {} tokens: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        delays.len(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
    println!(
        "  relay CPU: {:.2} s ({user:.2} user, {system:.2} system), {:.2} ms per stream",
        user + system,
        (user + system) * 1e3 / streams as f64
    );
    let (user, system) = cpu_times(std::process::id());
    println!(
        "  generator CPU (fake model + clients, this process): {:.2} s",
        user + system
    );
}

/// The fake model: after a request line, 30 ms, then one SSE chunk per token, each
/// stamped with the microsecond it was sent.
async fn serve_model(listener: TcpListener, epoch: Instant) {
    while let Ok((mut socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true); // as the load bench's fake model does
        tokio::spawn(async move {
            let mut request = [0u8; 64];
            let _ = socket.read(&mut request).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for i in 0..TOKENS {
                tick.tick().await;
                let chunk = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}}}}],\"sent\":{:>12}}}\n\n",
                    epoch.elapsed().as_micros()
                );
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One reader: asks the relay for a stream and returns each token's delay.
async fn client(relay: SocketAddr, at: Instant, epoch: Instant) -> Vec<Duration> {
    tokio::time::sleep_until(at.into()).await;
    let mut socket = TcpStream::connect(relay).await.unwrap();
    socket.write_all(b"GO\n").await.unwrap();
    let (mut buf, mut pending, mut delays) = (vec![0u8; 65536], Vec::new(), Vec::new());
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        if n == 0 {
            return delays;
        }
        let now = epoch.elapsed();
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            // The stamp is the 12 characters before the chunk's closing brace.
            let stamp = std::str::from_utf8(&pending[end - 13..end - 1]).unwrap();
            let sent = Duration::from_micros(stamp.trim().parse().unwrap());
            delays.push(now.saturating_sub(sent));
            pending.drain(..end + 2);
        }
    }
}

/// The measured process: for each client, one connection to the model, and every read
/// from it written straight to the client.
async fn relay(listen: SocketAddr, model: SocketAddr) {
    let listener = TcpListener::bind(listen).await.unwrap();
    while let Ok((mut client, _)) = listener.accept().await {
        let _ = client.set_nodelay(true); // as `crossfire serve` does
        tokio::spawn(async move {
            let mut request = [0u8; 16];
            if client.read(&mut request).await.unwrap_or(0) == 0 {
                return; // the generator's readiness probe
            }
            let mut upstream = TcpStream::connect(model).await.unwrap();
            upstream.write_all(b"POST\n").await.unwrap();
            let mut buf = vec![0u8; 8192];
            while let Ok(n @ 1..) = upstream.read(&mut buf).await {
                if client.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
