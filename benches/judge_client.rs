//! Judge client overhead (issue: judge gateway, performance). One run measures, side by
//! side against the same local stub process:
//!  1. requests/s and client CPU µs/request of gleaner's pool at concurrency 64 against
//!     a zero-latency stub, and of Python's `openai.AsyncOpenAI` (benches/openai_peer.py);
//!  2. that during a long run against a stub with latency the in-flight count stays at
//!     the configured concurrency (the server, not gleaner, is the bottleneck).
//!
//! `cargo bench --bench judge_client` (PEER_PYTHON names a python with `openai`; without
//! it the peer is skipped and said so). N=20000 by default.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gleaner::data::record::Message;
use gleaner::judge::client::{ChatRequest, Endpoint, EndpointConfig, RetryPolicy};
use gleaner::judge::pool::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REPLY: &str = r#"{"id":"x","object":"chat.completion","created":0,"model":"stub","choices":[{"index":0,"message":{"role":"assistant","content":"{\"score\": 4}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

/// A keep-alive HTTP/1.1 server answering every request with `REPLY` after `delay`.
async fn stub(port: u16, delay: Duration) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        REPLY.len()
    );
    let response: Arc<[u8]> = format!("{head}{REPLY}").into_bytes().into();
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let response = response.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            let mut buf = Vec::with_capacity(8192);
            let mut chunk = [0u8; 8192];
            loop {
                // One request: headers, then content-length bytes of body.
                let (end, len) = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                while buf.len() < end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..end + len);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if sock.write_all(&response).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn cpu_seconds() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we own.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

struct Measured {
    rps: f64,
    cpu_us: f64,
    mean_in_flight: f64,
    max_in_flight: usize,
}

fn gleaner_client(url: &str, n: usize, concurrency: usize) -> Measured {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = EndpointConfig::new("bench", url, "stub");
    config.concurrency = concurrency;
    let pool = Arc::new(Pool::single(Endpoint::new(config).unwrap()));
    let retry = RetryPolicy::default();
    let ask = |i: usize| ChatRequest {
        messages: vec![Message::new("user", format!("Rate sample {i}."))],
        max_tokens: Some(16),
        temperature: Some(0.0),
        ..ChatRequest::default()
    };
    let run = |count: usize| {
        let pool = pool.clone();
        let retry = retry.clone();
        rt.block_on(async move {
            // The runner's pattern: a bounded window of tasks over the pool.
            let mut tasks = tokio::task::JoinSet::new();
            let mut next = 0;
            let window = concurrency * 2 + 4;
            let mut done = 0;
            while done < count {
                while tasks.len() < window && next < count {
                    let (p, r, q) = (pool.clone(), retry.clone(), ask(next));
                    tasks.spawn(async move { p.chat(&q, &r).await });
                    next += 1;
                }
                let reply = tasks.join_next().await.unwrap().unwrap().unwrap();
                assert_eq!(reply.choices[0], "{\"score\": 4}");
                done += 1;
            }
        })
    };
    run(concurrency); // warm the connection pool
    let stats = &pool.endpoints().next().unwrap().stats;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, pool) = (sampling.clone(), pool.clone());
        std::thread::spawn(move || {
            let stats = &pool.endpoints().next().unwrap().stats;
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                samples.push(stats.in_flight());
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        })
    };
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    run(n);
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    // Skip the ramp-up and drain tails: the steady state is what the target is about.
    let k = samples.len() / 10;
    let steady = &samples[k..samples.len() - k];
    Measured {
        rps: n as f64 / wall,
        cpu_us: cpu / n as f64 * 1e6,
        mean_in_flight: steady.iter().sum::<usize>() as f64 / steady.len().max(1) as f64,
        max_in_flight: stats.max_in_flight.load(Ordering::Relaxed),
    }
}

fn spawn_stub(delay_ms: u64) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["stub", &port.to_string(), &delay_ms.to_string()])
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "stub did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, format!("http://127.0.0.1:{port}/v1"))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("stub") {
        let port: u16 = args[1].parse().unwrap();
        let delay = Duration::from_millis(args[2].parse().unwrap());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(stub(port, delay));
        return;
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let conc = 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "== judge client: {n} chat requests, concurrency {conc}, zero-latency stub, {cores} cores"
    );
    let (mut stub0, url) = spawn_stub(0);
    let ours = gleaner_client(&url, n, conc);
    println!(
        "gleaner pool               {:8.0} req/s   {:6.1} µs CPU/request (target ≤ 50)",
        ours.rps, ours.cpu_us
    );
    std::io::stdout().flush().unwrap();
    match std::env::var("PEER_PYTHON") {
        Ok(py) => {
            let peer_n = (n / 4).max(1000).to_string();
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/openai_peer.py");
            let out = std::process::Command::new(py)
                .args([script, &url, &peer_n, &conc.to_string()])
                .output()
                .unwrap();
            if !out.status.success() {
                println!(
                    "python peer failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            } else {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let (rps, cpu) = (
                    v["rps"].as_f64().unwrap(),
                    v["cpu_us_per_req"].as_f64().unwrap(),
                );
                println!("openai.AsyncOpenAI (python) {rps:7.0} req/s   {cpu:6.1} µs CPU/request");
                println!(
                    "ratio                      {:8.1}×  throughput (target ≥ 10×), {:.1}× less CPU per request",
                    ours.rps / rps,
                    cpu / ours.cpu_us
                );
            }
        }
        Err(_) => println!(
            "python peer skipped: set PEER_PYTHON to a python with `openai` (make bench does)"
        ),
    }
    let _ = stub0.kill();
    let delay = 20;
    let long = (n / 4).max(2000);
    println!("== in flight: {long} requests, concurrency {conc}, stub answering after {delay} ms");
    let (mut stub1, url) = spawn_stub(delay);
    let sat = gleaner_client(&url, long, conc);
    let bound = conc as f64 * 1000.0 / delay as f64;
    println!(
        "in flight: mean {:.1} of {conc} in steady state (max {}); {:.0} req/s of the server-bound {:.0}",
        sat.mean_in_flight, sat.max_in_flight, sat.rps, bound
    );
    let _ = stub1.kill();
}
