//! The OpenAI-compatible client (one endpoint in a pool) against an in-process stub:
//! retries, Retry-After, timeouts, resets, malformed replies, empty choices,
//! concurrency limits, the API key, `/v1/completions` with logprobs, rps pacing.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fake_openai::{Reply, start};
use gleaner::data::record::Message;
use gleaner::judge::client::{
    ChatRequest, CompletionRequest, Endpoint, EndpointConfig, EndpointStats, JudgeError,
    RetryPolicy,
};
use gleaner::judge::pool::Pool;

fn config(url: &str, concurrency: usize, timeout_s: f64) -> EndpointConfig {
    let mut c = EndpointConfig::new("judge", url, "stub-model");
    c.api_key_env = Some("GLEANER_TEST_KEY".into());
    c.concurrency = concurrency;
    c.timeout_s = timeout_s;
    c
}

fn endpoint(url: &str, concurrency: usize, timeout_s: f64) -> Pool {
    Pool::single(Endpoint::new(config(url, concurrency, timeout_s)).unwrap())
}

fn stats(pool: &Pool) -> &EndpointStats {
    &pool.endpoints().next().unwrap().stats
}

fn fast_retries(n: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: n,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn ask() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("user", "Rate this.")],
        temperature: Some(0.0),
        max_tokens: Some(64),
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn success_reports_text_tokens_and_sends_the_model() {
    let s = start(vec![], Reply::ok("{\"score\": 4}")).await;
    let e = endpoint(&s.url, 4, 5.0);
    let r = e.chat(&ask(), &fast_retries(3)).await.unwrap();
    assert_eq!(r.choices, vec!["{\"score\": 4}".to_string()]);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.attempts),
        (11, 7, 1)
    );
    let body: serde_json::Value = serde_json::from_str(&s.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body["model"], "stub-model");
    assert_eq!(body["messages"][0]["content"], "Rate this.");
    assert_eq!(body["max_tokens"], 64);
}

#[tokio::test]
async fn server_errors_and_resets_are_retried() {
    let s = start(
        vec![
            Reply::raw(500, "boom"),
            Reply::reset(),
            Reply::raw(503, "busy"),
        ],
        Reply::ok("fine"),
    )
    .await;
    let e = endpoint(&s.url, 1, 5.0);
    let r = e.chat(&ask(), &fast_retries(5)).await.unwrap();
    assert_eq!(r.choices[0], "fine");
    assert_eq!(r.attempts, 4);
    assert_eq!(stats(&e).retries.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let s = start(
        vec![Reply::raw(429, "slow down").header("retry-after", "1")],
        Reply::ok("ok"),
    )
    .await;
    let e = endpoint(&s.url, 1, 5.0);
    let t = Instant::now();
    let r = e.chat(&ask(), &fast_retries(3)).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.attempts, 2);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_keep_the_body() {
    let s = start(vec![], Reply::raw(400, "{\"error\":\"bad request\"}")).await;
    let e = endpoint(&s.url, 1, 5.0);
    let err = e.chat(&ask(), &fast_retries(5)).await.unwrap_err();
    assert_eq!(
        err,
        JudgeError::Http {
            status: 400,
            body: "{\"error\":\"bad request\"}".into()
        }
    );
    assert_eq!(s.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn timeouts_give_up_after_the_attempts() {
    let s = start(
        vec![],
        Reply::ok("late").delayed(Duration::from_millis(800)),
    )
    .await;
    let e = endpoint(&s.url, 1, 0.2);
    let err = e.chat(&ask(), &fast_retries(2)).await.unwrap_err();
    assert!(matches!(err, JudgeError::Timeout(_)), "{err:?}");
    assert_eq!(s.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn malformed_truncated_and_empty_replies_keep_the_raw_text() {
    let s = start(
        vec![],
        Reply::raw(200, "{\"choices\": [{\"message\": {\"content\": \"cut"),
    )
    .await;
    let err = endpoint(&s.url, 1, 5.0)
        .chat(&ask(), &fast_retries(2))
        .await
        .unwrap_err();
    assert!(matches!(err, JudgeError::Malformed { .. }), "{err:?}");
    assert!(err.raw().unwrap().contains("\"cut"));
    let s = start(vec![], Reply::raw(200, "{\"choices\": []}")).await;
    let err = endpoint(&s.url, 1, 5.0)
        .chat(&ask(), &fast_retries(3))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        JudgeError::EmptyChoices {
            raw: "{\"choices\": []}".into()
        }
    );
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        1,
        "empty choices are not retried"
    );
    let s = start(vec![], Reply::raw(200, "{\"result\": \"wrong schema\"}")).await;
    let err = endpoint(&s.url, 1, 5.0)
        .chat(&ask(), &fast_retries(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no `choices`"), "{err}");
}

#[tokio::test]
async fn concurrency_never_exceeds_the_limit() {
    let s = start(vec![], Reply::ok("x").delayed(Duration::from_millis(30))).await;
    let e = std::sync::Arc::new(endpoint(&s.url, 3, 5.0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            e.chat(&ask(), &fast_retries(1)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.requests.load(Ordering::SeqCst), 20);
    assert_eq!(
        s.max_concurrent.load(Ordering::SeqCst),
        3,
        "the server saw at most 3 at once"
    );
    assert_eq!(stats(&e).max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn api_key_comes_from_the_named_variable() {
    // SAFETY: tests in this file do not read this variable concurrently elsewhere.
    unsafe { std::env::set_var("GLEANER_TEST_KEY", "sk-test-123") };
    let s = start(vec![], Reply::ok("ok")).await;
    endpoint(&s.url, 1, 5.0)
        .chat(&ask(), &fast_retries(1))
        .await
        .unwrap();
    assert_eq!(
        s.auth.lock().unwrap()[0].as_deref(),
        Some("Bearer sk-test-123")
    );
}

#[tokio::test]
async fn completions_send_echo_and_logprobs_and_read_them_back() {
    let body = serde_json::json!({
        "choices": [
            {"index": 0, "text": "The sky is blue.", "logprobs": {
                "tokens": ["The", " sky", " is", " blue", "."],
                "token_logprobs": [null, -2.5, -0.5, -1.25, -0.125],
                "text_offset": [0, 3, 7, 10, 15]}},
            {"index": 1, "text": "The sky is grey.", "logprobs": null}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 0}
    });
    let s = start(vec![], Reply::raw(200, &body.to_string())).await;
    let e = endpoint(&s.url, 1, 5.0);
    let req = CompletionRequest {
        prompt: "The sky is blue.".into(),
        max_tokens: Some(0),
        n: Some(2),
        echo: true,
        logprobs: Some(0),
        ..CompletionRequest::default()
    };
    let r = e.complete(&req, &fast_retries(1)).await.unwrap();
    assert_eq!(r.choices.len(), 2);
    let lp = r.logprobs[0].as_ref().unwrap();
    assert_eq!(lp.tokens[1], " sky");
    assert_eq!(
        lp.logprobs,
        vec![None, Some(-2.5), Some(-0.5), Some(-1.25), Some(-0.125)]
    );
    assert_eq!(lp.offsets[3], 10);
    assert_eq!(r.logprobs[1], None);
    let sent: serde_json::Value = serde_json::from_str(&s.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(sent["prompt"], "The sky is blue.");
    assert_eq!(
        (
            sent["echo"].as_bool(),
            sent["logprobs"].as_u64(),
            sent["n"].as_u64()
        ),
        (Some(true), Some(0), Some(2))
    );
    assert_eq!(sent["model"], "stub-model");
    assert!(s.paths.lock().unwrap()[0].ends_with("/v1/completions"));
}

#[tokio::test]
async fn requests_per_second_are_paced() {
    let s = start(vec![], Reply::ok("ok")).await;
    let mut c = config(&s.url, 8, 5.0);
    c.rps = Some(20.0);
    let e = std::sync::Arc::new(Pool::single(Endpoint::new(c).unwrap()));
    let t = Instant::now();
    let tasks: Vec<_> = (0..11)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.chat(&ask(), &fast_retries(1)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // 11 requests at 20/s: the last may start no sooner than 10 × 50 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(480),
        "{:?}",
        t.elapsed()
    );
}
