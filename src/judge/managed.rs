//! Managed local judges: an endpoint whose recipe table carries a `command` is started by
//! gleaner on a free loopback port, health-checked on `GET /v1/models`, and stopped when
//! the run ends (also when gleaner dies: the server gets SIGTERM from the kernel).
//!
//! In the command, `{port}` becomes the chosen port and `{recipe_dir}` the folder of the
//! recipe; the server's output goes to `logs/judge-<role>.log` in the workspace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{UserError, io_context};

pub struct ManagedServer {
    pub role: String,
    pub base_url: String,
    pub log: PathBuf,
    child: Child,
}

/// A port nobody listens on right now (the OS picks it; a race is possible but rare,
/// and a server that cannot bind fails the health check with its log shown).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl ManagedServer {
    /// Start `command` and wait until it answers `/v1/models`.
    pub fn start(
        role: &str,
        command: &[String],
        recipe_dir: &Path,
        log: PathBuf,
        startup_timeout: Duration,
    ) -> Result<Self, UserError> {
        let Some((program, args)) = command.split_first() else {
            return Err(UserError::new(format!("[llm.{role}] command is empty")));
        };
        let port = free_port().map_err(|e| UserError::new(format!("no free port: {e}")))?;
        let fill = |s: &str| {
            s.replace("{port}", &port.to_string())
                .replace("{recipe_dir}", &recipe_dir.to_string_lossy())
        };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_context(dir, e))?;
        }
        let out = std::fs::File::create(&log).map_err(|e| io_context(&log, e))?;
        let err = out.try_clone().map_err(|e| io_context(&log, e))?;
        let mut cmd = Command::new(fill(program));
        cmd.args(args.iter().map(|a| fill(a)))
            .current_dir(recipe_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    // Own process group, so stopping it stops the whole server.
                    libc::setpgid(0, 0);
                    // If gleaner is killed (even with -9), the kernel stops the server.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| {
            UserError::new(format!(
                "[llm.{role}] cannot start `{}`: {e}",
                fill(program)
            ))
            .with_hint("check the command in the recipe; paths are relative to the recipe's folder")
        })?;
        let mut server = Self {
            role: role.to_string(),
            base_url: format!("http://127.0.0.1:{port}/v1"),
            log,
            child,
        };
        server.wait_healthy(startup_timeout)?;
        Ok(server)
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), UserError> {
        let started = Instant::now();
        let url = format!("{}/models", self.base_url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(UserError::new(format!(
                    "the local judge `{}` exited ({status}) before answering:\n{}",
                    self.role,
                    self.log_tail(20)
                ))
                .with_hint(format!("full log: {}", self.log.display())));
            }
            if answers_ok(&url) {
                tracing::info!(role = %self.role, url = %self.base_url, secs = started.elapsed().as_secs_f64(), "local judge is up");
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(UserError::new(format!(
                    "the local judge `{}` did not answer {url} within {:.0} s:\n{}",
                    self.role,
                    timeout.as_secs_f64(),
                    self.log_tail(20)
                ))
                .with_hint("raise startup_timeout_s in the recipe if the model loads slowly"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop the server: SIGTERM to its group, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id() as i32;
        #[cfg(unix)]
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        #[cfg(unix)]
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP/1.1 GET on loopback that reports whether the answer was 2xx. The
/// health check runs before any async runtime exists, so it does not use one.
fn answers_ok(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut sock) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if sock.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let n = sock.read(&mut head).unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..n]);
    line.starts_with("HTTP/1.") && line.get(9..10) == Some("2")
}
