//! A private tmux server for driving the real binary in a real terminal: start
//! sessions by name, send keys, read the screen as the user sees it, find the pid.
//! tmux itself is installed by `make test`.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Default for Tmux {
    fn default() -> Self {
        Self::new()
    }
}

impl Tmux {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self {
            socket: format!("gleaner-test-{}-{nanos}", std::process::id()),
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed by `make test`");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A 120×30 terminal named `name` running `command`.
    pub fn start(&self, name: &str, command: &str) {
        // A session that outlives the others keeps the server up: when a test kills
        // its only session's program, the server would otherwise exit while the next
        // `start` connects to it ("server exited unexpectedly").
        if !self.has("keepalive") {
            let _ = Command::new("tmux")
                .args(["-L", &self.socket, "new-session", "-d", "-s", "keepalive"])
                .arg("sleep 3600")
                .status();
        }
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "new-session", "-d", "-s", name])
            .args(["-x", "120", "-y", "30", command])
            .status()
            .expect("tmux is installed by `make test`");
        assert!(status.success());
    }

    fn has(&self, name: &str) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", name])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn screen(&self, name: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", name])
    }

    pub fn keys(&self, name: &str, keys: &str) {
        self.run(&["send-keys", "-t", name, keys]);
    }

    /// Whether `what` shows on `name`'s screen within 30 s.
    pub fn wait(&self, name: &str, what: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.screen(name).contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self, name: &str) -> String {
        self.run(&["list-panes", "-t", name, "-F", "#{pane_pid}"])
            .trim()
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
