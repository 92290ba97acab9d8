//! An in-process OpenAI-compatible stub for fault injection: replies are scripted in
//! order (then a default), or computed from the request body by a function; each has a
//! status, headers, body, delay, or a dropped connection. It counts requests, the most
//! it saw at once, and keeps every body and path.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
    /// Close the connection without answering (a reset).
    pub drop: bool,
}

impl Reply {
    pub fn ok(text: &str) -> Self {
        let body = serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7}
        });
        Self::raw(200, &body.to_string())
    }
    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.to_string(),
            delay: Duration::ZERO,
            drop: false,
        }
    }
    /// The same reply with another body (e.g. a `/completions` shape).
    pub fn then_body(mut self, body: &str) -> Self {
        self.body = body.to_string();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn reset() -> Self {
        Self {
            drop: true,
            ..Self::raw(200, "")
        }
    }
}

pub struct FakeServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    /// Replies written out in full.
    pub answered: Arc<AtomicUsize>,
    pub max_concurrent: Arc<AtomicUsize>,
    pub bodies: Arc<Mutex<Vec<String>>>,
    pub paths: Arc<Mutex<Vec<String>>>,
    pub auth: Arc<Mutex<Vec<Option<String>>>>,
}

type Responder = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Replies in `script` order, then `default` for every further request.
pub async fn start(script: Vec<Reply>, default: Reply) -> FakeServer {
    let script = Mutex::new(VecDeque::from(script));
    start_with(move |_| {
        script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(default.clone())
    })
    .await
}

/// Replies computed from each request's body (deterministic whatever the order).
pub async fn start_with(respond: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeServer {
    let respond: Responder = Arc::new(respond);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let max_concurrent = Arc::new(AtomicUsize::new(0));
    let current = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let auth = Arc::new(Mutex::new(Vec::new()));
    let server = FakeServer {
        paths: paths.clone(),
        answered: answered.clone(),
        url,
        requests: requests.clone(),
        max_concurrent: max_concurrent.clone(),
        bodies: bodies.clone(),
        auth: auth.clone(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let answered = answered.clone();
            let (respond, paths, requests, max_concurrent, current, bodies, auth) = (
                respond.clone(),
                paths.clone(),
                requests.clone(),
                max_concurrent.clone(),
                current.clone(),
                bodies.clone(),
                auth.clone(),
            );
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let header_end = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < header_end + length {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                max_concurrent.fetch_max(now, Ordering::SeqCst);
                requests.fetch_add(1, Ordering::SeqCst);
                bodies
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[header_end..]).to_string());
                auth.lock().unwrap().push(
                    head.lines()
                        .find_map(|l| {
                            l.strip_prefix("authorization: ")
                                .or_else(|| l.strip_prefix("Authorization: "))
                        })
                        .map(str::to_string),
                );
                paths.lock().unwrap().push(
                    head.split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string(),
                );
                let body = String::from_utf8_lossy(&buf[header_end..]).to_string();
                let reply = respond(&body);
                tokio::time::sleep(reply.delay).await;
                current.fetch_sub(1, Ordering::SeqCst);
                if reply.drop {
                    return; // dropping the socket resets the connection
                }
                let mut out = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&reply.body);
                if sock.write_all(out.as_bytes()).await.is_ok() {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    server
}
