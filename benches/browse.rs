//! Browser benchmark on a prepared workspace (see benches/run.sh):
//! time from open to first frame, p99 frame render while scrolling, peak RSS.
//! Usage: cargo bench --bench browse -- WORKSPACE

use std::time::{Duration, Instant};

use gleaner::store::Workspace;
use gleaner::tui::action::Action;
use gleaner::tui::app::App;
use gleaner::tui::keymap::Keymap;
use gleaner::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with('-')) else {
        eprintln!("usage: cargo bench --bench browse -- WORKSPACE");
        return;
    };
    let (w, h) = (200u16, 50u16);
    let t0 = Instant::now();
    let ws = Workspace::open(std::path::Path::new(&dir)).expect("workspace");
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).expect("app");
    app.dispatch(Action::Resize {
        width: w,
        height: h,
    });
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.draw(&mut term).unwrap();
    let first_frame = t0.elapsed();
    assert!(app.wait_idle(Duration::from_secs(600)), "load finished");
    let loaded = t0.elapsed();

    let mut times = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    for i in 0..3000 {
        let action = match i % 10 {
            0 => Action::PageDown,
            5 => Action::ColumnRight,
            _ => Action::Down,
        };
        app.dispatch(action);
        app.pump();
        let t = Instant::now();
        app.draw(&mut term).unwrap();
        let kind = match i % 10 {
            0 => "page",
            5 => "column",
            _ => "row",
        };
        let kind = if app.state.reader.record.is_some() {
            kind
        } else {
            "loading"
        };
        by_kind.entry(kind).or_default().push(t.elapsed());
        times.push(t.elapsed());
    }
    for (k, v) in &mut by_kind {
        v.sort();
        let p99 = v[((v.len() - 1) as f64 * 0.99) as usize];
        eprintln!(
            "  {k:<8} n={:<5} p99 {:.2} ms",
            v.len(),
            p99.as_secs_f64() * 1000.0
        );
    }
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    let parquet_mb = std::fs::metadata(ws.snapshot_path())
        .map(|m| m.len())
        .unwrap_or(0) as f64
        / 1e6;
    let rss = peak_rss_mb();
    let rss_limit = 1.5 * parquet_mb + 200.0;
    println!("rows                       {}", app.state.total_rows);
    println!(
        "open → first frame         {:.0} ms   (target ≤ 300 ms)",
        first_frame.as_secs_f64() * 1000.0
    );
    println!(
        "open → all rows loaded     {:.0} ms",
        loaded.as_secs_f64() * 1000.0
    );
    println!(
        "frame render p50/p99/max   {:.2} / {:.2} / {:.2} ms   (target p99 ≤ 5 ms)",
        p(0.5),
        p(0.99),
        p(1.0)
    );
    println!(
        "peak RSS                   {rss:.0} MB   (target ≤ 1.5 × {parquet_mb:.0} MB snapshot + 200 MB = {rss_limit:.0} MB; ratio {:.2})",
        rss / rss_limit
    );
}
