//! Managed local judges: gleaner starts the recipe's `command` on a free port, waits
//! for `/v1/models`, uses it, and stops it at the end, also when gleaner is killed.
//! The server here is a small Python HTTP server (a real process on a real port); the
//! llama.cpp one is exercised by tests/real_judge.rs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const SERVER: &str = r#"
import http.server, json, os, sys, time
port, pid_file, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
open(pid_file, "w").write(str(os.getpid()))
REPLY = {"choices": [{"index": 0, "message": {"role": "assistant", "content":
    "{\"Rarity\": 5, \"Complexity\": 6, \"Informativeness\": 7, \"Overall rating\": 8}"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
class H(http.server.BaseHTTPRequestHandler):
    def send(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.send({"data": [{"id": "fake"}]})
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(delay)
        self.send(REPLY)
print("fake judge listening on", port, file=sys.stderr, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn recipe(dir: &Path, delay: f64, limit: usize) -> std::path::PathBuf {
    write(dir, "fake_judge.py", SERVER);
    write(
        dir,
        "managed.toml",
        format!(
            "[llm.rater]\nmodel = \"fake\"\ncommand = [\"python3\", \"fake_judge.py\", \"{{port}}\", \"{{recipe_dir}}/server.pid\", \"{delay}\"]\nstartup_timeout_s = 30\nconcurrency = 2\n\n\
             [[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = {limit}\n"
        ),
    )
}

fn alive(pid: &str) -> bool {
    // A zombie still has /proc/<pid>; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split_whitespace().nth(2).is_some_and(|st| st == "Z"))
        .unwrap_or(false)
}

#[test]
fn the_recipe_command_is_started_used_and_stopped() {
    let (dir, ws) = demo_workspace();
    let r = recipe(dir.path(), 0.0, 10);
    let (summary, stderr) = run_recipe_json(&ws.dir, &r);
    assert_eq!(summary["ok"], 10);
    assert!(
        stderr.contains("local judge `rater` is up at http://127.0.0.1:"),
        "{stderr}"
    );
    let pid = std::fs::read_to_string(dir.path().join("server.pid")).unwrap();
    assert!(!alive(&pid), "the server is stopped when the run ends");
    let log = std::fs::read_to_string(ws.dir.join("logs/judge-rater-0.log")).unwrap();
    assert!(log.contains("fake judge listening"), "{log}");
    assert_eq!(log.matches("\"POST /v1/chat/completions").count(), 10);
}

#[test]
fn a_command_that_dies_at_start_is_reported_with_its_output() {
    let (dir, ws) = demo_workspace();
    let r = write(
        dir.path(),
        "broken.toml",
        "[llm.rater]\nmodel = \"m\"\ncommand = [\"python3\", \"-c\", \"import sys; print('cannot open model.gguf', file=sys.stderr); sys.exit(3)\"]\n\n\
         [[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\n",
    );
    let out = assert_cmd::Command::cargo_bin("gleaner")
        .unwrap()
        .args(["run", r.to_str().unwrap(), "-w", ws.dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("exited"), "{stderr}");
    assert!(stderr.contains("cannot open model.gguf"), "{stderr}");
    assert!(!ws.dir.join("sidecars/ds2.rate.parquet").exists());
}

#[test]
fn killing_gleaner_stops_its_judge_too() {
    let (dir, ws) = demo_workspace();
    let r = recipe(dir.path(), 0.5, 40);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gleaner"))
        .args(["run", r.to_str().unwrap(), "-w", ws.dir.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("server.pid");
    let log = ws.dir.join("logs/judge-rater-0.log");
    let t = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("/v1/models")) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the judge never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(alive(&pid));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let t = Instant::now();
    while alive(&pid) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the judge outlived gleaner"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
