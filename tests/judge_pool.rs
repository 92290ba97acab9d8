//! Several endpoints behind one role: weighted spread, failover when one dies, probing
//! it back in, and the concurrency limit of each replica holding under load.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fake_openai::{Reply, start};
use gleaner::data::record::Message;
use gleaner::judge::client::{ChatRequest, Endpoint, EndpointConfig, RetryPolicy};
use gleaner::judge::pool::{HealthPolicy, Pool};

fn replica(name: &str, url: &str, weight: f64, concurrency: usize) -> Endpoint {
    let mut c = EndpointConfig::new(name, url, "stub-model");
    c.weight = weight;
    c.concurrency = concurrency;
    c.timeout_s = 5.0;
    Endpoint::new(c).unwrap()
}

fn retries(n: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: n,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn quick_probe() -> HealthPolicy {
    HealthPolicy {
        eject_after: 2,
        probe_after: Duration::from_millis(150),
        max_probe_after: Duration::from_millis(600),
    }
}

fn ask() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("user", "Rate this.")],
        ..ChatRequest::default()
    }
}

async fn burst(pool: &Arc<Pool>, n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.chat(&ask(), &retries(4)).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap().is_ok());
    }
    ok
}

#[tokio::test]
async fn requests_spread_by_weight_and_each_replica_keeps_its_limit() {
    let slow = || Reply::ok("x").delayed(Duration::from_millis(25));
    let (a, b) = (start(vec![], slow()).await, start(vec![], slow()).await);
    let pool = Arc::new(
        Pool::new(
            "rater",
            vec![replica("a", &a.url, 3.0, 6), replica("b", &b.url, 1.0, 6)],
            HealthPolicy::default(),
        )
        .unwrap(),
    );
    assert_eq!(burst(&pool, 80).await, 80);
    let (na, nb) = (
        a.requests.load(Ordering::SeqCst),
        b.requests.load(Ordering::SeqCst),
    );
    assert_eq!(na + nb, 80);
    let ratio = na as f64 / nb as f64;
    assert!((2.0..=4.5).contains(&ratio), "a {na}, b {nb}");
    assert!(a.max_concurrent.load(Ordering::SeqCst) <= 6);
    assert!(b.max_concurrent.load(Ordering::SeqCst) <= 6);
    let usage = pool.usage();
    assert_eq!(usage[0].requests as usize, na);
    assert_eq!(usage[1].prompt_tokens as usize, nb * 11);
}

#[tokio::test]
async fn a_dead_replica_is_taken_out_and_its_rows_go_to_the_other() {
    let alive = start(vec![], Reply::ok("fine")).await;
    // Nothing listens here: connections are refused.
    let dead_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let pool = Arc::new(
        Pool::new(
            "rater",
            vec![
                replica("dead", &dead_url, 1.0, 4),
                replica("alive", &alive.url, 1.0, 4),
            ],
            HealthPolicy::default(),
        )
        .unwrap(),
    );
    assert_eq!(burst(&pool, 30).await, 30, "every request succeeds");
    assert_eq!(alive.requests.load(Ordering::SeqCst), 30);
    let usage = pool.usage();
    assert!(usage[0].ejections >= 1);
    assert!(
        usage[0].requests <= 4,
        "the dead replica is not hammered: {} attempts",
        usage[0].requests
    );
    assert!(pool.is_out(0));
}

#[tokio::test]
async fn a_replica_that_recovers_is_probed_back_in() {
    // Two 503s take `flaky` out; after the probe delay it answers again.
    let flaky = start(
        vec![Reply::raw(503, "warming up"), Reply::raw(503, "warming up")],
        Reply::ok("flaky ok"),
    )
    .await;
    let steady = start(vec![], Reply::ok("steady ok")).await;
    let pool = Pool::new(
        "rater",
        vec![
            replica("flaky", &flaky.url, 1.0, 1),
            replica("steady", &steady.url, 1.0, 1),
        ],
        quick_probe(),
    )
    .unwrap();
    // Sequential requests rotate between replicas; the two failures eject `flaky`.
    for _ in 0..6 {
        pool.chat(&ask(), &retries(3)).await.unwrap();
    }
    assert!(pool.is_out(0), "flaky is out after two 503s in a row");
    let before = flaky.requests.load(Ordering::SeqCst);
    for _ in 0..4 {
        pool.chat(&ask(), &retries(3)).await.unwrap();
    }
    assert_eq!(
        flaky.requests.load(Ordering::SeqCst),
        before,
        "no traffic while out"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..6 {
        pool.chat(&ask(), &retries(3)).await.unwrap();
    }
    assert!(!pool.is_out(0), "the probe succeeded");
    assert!(
        flaky.requests.load(Ordering::SeqCst) >= before + 3,
        "flaky takes its share again"
    );
    assert_eq!(pool.usage()[0].ejections, 1);
}

#[tokio::test]
async fn when_every_replica_fails_the_request_fails_with_the_last_error() {
    let a = start(vec![], Reply::raw(500, "a down")).await;
    let b = start(vec![], Reply::raw(502, "b down")).await;
    let pool = Pool::new(
        "rater",
        vec![replica("a", &a.url, 1.0, 2), replica("b", &b.url, 1.0, 2)],
        quick_probe(),
    )
    .unwrap();
    let err = pool.chat(&ask(), &retries(3)).await.unwrap_err();
    assert!(err.to_string().starts_with("HTTP 50"), "{err}");
    assert!(err.raw().unwrap().ends_with("down"));
    assert_eq!(
        a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst),
        3
    );
}
