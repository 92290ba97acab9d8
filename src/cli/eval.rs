//! `gleaner eval …`: blinded human evaluation sessions from the command line.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::LoadArgs;
use crate::error::UserError;
use crate::eval::report;
use crate::eval::session::{self, DEFAULT_ASPECTS, SessionConfig, TiePolicy};
use crate::eval::sources;
use crate::eval::votes;

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Create a session: pair two versions of the same items, sample, blind, assign
    #[command(
        after_help = "Examples:\n  gleaner eval new -w data.gleaner --name aido-200 --sample 200 --seed 1\n  gleaner eval new -w data.gleaner --name final --a-stage snapshot --b-stage aido.merge\n  gleaner eval new -w data.gleaner --name v2 --a raw.jsonl --b curated.jsonl \\\n      --annotators ana,bo,cy --adjudicators lead --stratify category --sample 150\n\nWithout --a/--b the versions are a refine run's originals (A) and revisions (B)."
    )]
    New(NewArgs),
    /// Vote on a session's items (blinded: Left/Right, one key per aspect)
    #[command(
        after_help = "Keys: 1 left better · 2 tie · 3 right better (on the marked aspect; tab moves)\n      enter submit · c comment · s skip · d word diff · g guidelines · ? help\nEach submitted item is saved before the next one shows. An adjudicator gets the\ndisputed items with everyone's votes.\n\nExample:\n  gleaner eval annotate -w data.gleaner --session aido-200 --annotator ana"
    )]
    Annotate(AnnotateArgs),
    /// Win/tie/lose per aspect with 95% Wilson intervals, AIDO rates, agreement, time
    #[command(
        after_help = "Examples:\n  gleaner eval report -w data.gleaner --session aido-200\n  gleaner eval report -w data.gleaner --session aido-200 --json\n  gleaner eval report -w data.gleaner --session aido-200 --out report/   # markdown + SVG + PNG\n  gleaner eval report -w data.gleaner --session aido-200 --tui"
    )]
    Report(ReportArgs),
    /// Write a session's votes to a file (to merge votes cast on other machines)
    ExportVotes(ExportVotesArgs),
    /// Read a votes file; idempotent, refuses conflicting votes with a report
    ImportVotes(ImportVotesArgs),
    /// List the sessions of a workspace
    List,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    #[arg(long)]
    name: String,
    /// Version A (e.g. the raw data); with --b. Items are matched by id.
    #[arg(long, requires = "b")]
    a: Option<PathBuf>,
    /// Version B (e.g. the curated data)
    #[arg(long, requires = "a")]
    b: Option<PathBuf>,
    /// Without --a/--b: the refine stage whose originals (A) and revisions (B) to compare
    #[arg(long, default_value = "aido.refine")]
    refine_stage: String,
    /// Compare two versions inside the workspace instead: `snapshot`, or a stage that
    /// wrote instruction/input/output columns (e.g. aido.merge); with --b-stage
    #[arg(long, requires = "b_stage", conflicts_with = "a")]
    a_stage: Option<String>,
    #[arg(long, requires = "a_stage")]
    b_stage: Option<String>,
    /// Items to sample (default: all)
    #[arg(long)]
    sample: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sample proportionally within the values of this column
    #[arg(long)]
    stratify: Option<String>,
    /// Comma-separated annotator ids
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "annotator1,annotator2,annotator3"
    )]
    annotators: Vec<String>,
    /// Comma-separated adjudicator ids (they resolve items without a majority)
    #[arg(long, value_delimiter = ',', default_value = "adjudicator")]
    adjudicators: Vec<String>,
    /// Comma-separated aspects
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_ASPECTS.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    aspects: Vec<String>,
    /// Guidelines shown to annotators: text, or a file to read
    #[arg(long, default_value = "")]
    guidelines: String,
    /// Items or aspects without a majority: `dispute` (to the adjudicator) or `tie`
    #[arg(long, value_parser = ["dispute", "tie"], default_value = "dispute")]
    tie_policy: String,
}

#[derive(Args, Debug)]
pub struct AnnotateArgs {
    #[arg(long)]
    session: String,
    #[arg(long)]
    annotator: String,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[arg(long)]
    session: String,
    #[arg(long)]
    json: bool,
    /// Write report.md, report.svg and report.png into this folder
    #[arg(long)]
    out: Option<PathBuf>,
    /// Show the report in the terminal UI
    #[arg(long)]
    tui: bool,
}

#[derive(Args, Debug)]
pub struct ExportVotesArgs {
    #[arg(long)]
    session: String,
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Only this annotator's votes
    #[arg(long)]
    annotator: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImportVotesArgs {
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

fn workspace(load: &LoadArgs) -> Result<crate::store::Workspace, UserError> {
    super::workspace_arg(load)
}

pub fn run(cmd: EvalCommand, load: &LoadArgs, theme: Option<&str>) -> Result<(), UserError> {
    let ws = workspace(load)?;
    let db = ws.db()?;
    let err = |e: String| UserError::new(e);
    match cmd {
        EvalCommand::New(a) => {
            let (items, source, a_label, b_label) = match (&a.a, &a.b, &a.a_stage, &a.b_stage) {
                (_, _, Some(sa), Some(sb)) => (
                    sources::from_columns(&ws, sa, sb, a.stratify.as_deref())?,
                    format!("workspace columns {sa} vs {sb}"),
                    sa.clone(),
                    sb.clone(),
                ),
                (Some(pa), Some(pb), _, _) => (
                    sources::from_files(pa, pb, &load.options()?, a.stratify.as_deref())?,
                    format!("files {} vs {}", pa.display(), pb.display()),
                    file_label(pa),
                    file_label(pb),
                ),
                _ => (
                    sources::from_refine(&ws, &db, &a.refine_stage, a.stratify.as_deref())?,
                    format!("refine stage {}", a.refine_stage),
                    "original".into(),
                    "revised".into(),
                ),
            };
            let guidelines = if Path::new(&a.guidelines).is_file() {
                std::fs::read_to_string(&a.guidelines)
                    .map_err(|e| UserError::new(format!("{}: {e}", a.guidelines)))?
            } else {
                a.guidelines.clone()
            };
            let config = SessionConfig {
                name: a.name.clone(),
                source,
                a_label,
                b_label,
                annotators: a.annotators.clone(),
                adjudicators: a.adjudicators.clone(),
                aspects: a.aspects.clone(),
                guidelines,
                sample_size: a.sample,
                seed: a.seed,
                stratify: a.stratify.clone(),
                tie_policy: if a.tie_policy == "tie" {
                    TiePolicy::Tie
                } else {
                    TiePolicy::Dispute
                },
            };
            let pool = items.len();
            let s = session::create(&db, config, items).map_err(err)?;
            let _ = db.audit(&crate::util::current_user(), "eval_new", &a.name);
            println!(
                "session {}: {} of {} items, annotators {}, aspects {}",
                a.name,
                s.items.len(),
                pool,
                s.config.annotators.join(", "),
                s.config.aspects.join(", ")
            );
            println!(
                "next: gleaner eval annotate -w {} --session {} --annotator {}",
                ws.dir.display(),
                a.name,
                s.config.annotators[0]
            );
            Ok(())
        }
        EvalCommand::Annotate(a) => crate::tui::app::run_terminal(
            ws,
            theme,
            crate::tui::app::StartScreen::Vote {
                session: a.session,
                who: a.annotator,
            },
        ),
        EvalCommand::Report(a) => {
            let r = report::build(&db, &a.session).map_err(err)?;
            if let Some(dir) = &a.out {
                let written = write_report(&r, dir)?;
                for p in written {
                    eprintln!("wrote {}", p.display());
                }
            }
            if a.tui {
                return crate::tui::app::run_terminal(
                    ws,
                    theme,
                    crate::tui::app::StartScreen::EvalReport(Box::new(r)),
                );
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).expect("json"));
            } else {
                print!("{}", report::text(&r));
            }
            Ok(())
        }
        EvalCommand::ExportVotes(a) => {
            let n = votes::export_votes(&db, &a.session, a.annotator.as_deref(), &a.output)
                .map_err(err)?;
            println!("wrote {n} votes to {}", a.output.display());
            Ok(())
        }
        EvalCommand::ImportVotes(a) => {
            let r = votes::import_votes(&db, &a.file).map_err(err)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).expect("json"));
            }
            if !r.conflicts.is_empty() {
                let mut msg = format!(
                    "{} conflicting vote(s) in {}; nothing imported:",
                    r.conflicts.len(),
                    a.file.display()
                );
                for (item, who, aspect, here, there) in r.conflicts.iter().take(20) {
                    msg.push_str(&format!(
                        "\n  item {item}, {who}, {aspect}: here {here}, in the file {there}"
                    ));
                }
                return Err(UserError::new(msg).with_hint(
                    "votes are final once submitted; resolve the duplicates at the source",
                ));
            }
            if !a.json {
                println!(
                    "imported {} votes ({} already here)",
                    r.imported, r.unchanged
                );
            }
            Ok(())
        }
        EvalCommand::List => {
            for name in session::list(&db).map_err(err)? {
                let s = session::load(&db, &name).map_err(err)?;
                println!(
                    "{name}: {} items, annotators {}, {}",
                    s.items.len(),
                    s.config.annotators.join(", "),
                    s.config.source
                );
            }
            Ok(())
        }
    }
}

fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// report.md, report.svg and report.png in `dir`.
pub fn write_report(r: &report::Report, dir: &Path) -> Result<Vec<PathBuf>, UserError> {
    std::fs::create_dir_all(dir).map_err(|e| crate::error::io_context(dir, e))?;
    let svg = report::svg(r);
    let (md, svg_path, png_path) = (
        dir.join("report.md"),
        dir.join("report.svg"),
        dir.join("report.png"),
    );
    std::fs::write(&svg_path, &svg).map_err(|e| crate::error::io_context(&svg_path, e))?;
    let png = crate::eval::chart_png::render(&svg)
        .map_err(|e| UserError::new(format!("cannot render the PNG chart: {e}")))?;
    std::fs::write(&png_path, png).map_err(|e| crate::error::io_context(&png_path, e))?;
    std::fs::write(&md, report::markdown(r, "report.svg", Some("report.png")))
        .map_err(|e| crate::error::io_context(&md, e))?;
    Ok(vec![md, svg_path, png_path])
}
