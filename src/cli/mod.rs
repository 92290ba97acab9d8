//! `cli`: argument parsing and the commands. Each command calls the core and prints.

mod eval;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::data::export::{ExportFormat, export_frame};
use crate::data::filter;
use crate::data::{LoadOptions, MappingFile};
use crate::error::UserError;
use crate::store::{Workspace, open_or_import};

const EXAMPLES: &str = "\
Examples:
  gleaner data.jsonl                         open (importing on first use) in the TUI
  gleaner import data.jsonl -w work/data.gleaner --skip-bad-rows
  gleaner stats data.gleaner --json
  gleaner export data.gleaner -o out/train.jsonl --format alpaca --filter 'len(output) > 20'";

#[derive(Parser, Debug)]
#[command(
    name = "gleaner",
    version,
    about = "Curate LLM instruction-tuning data: browse, score, refine, review.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A dataset or workspace to open in the TUI (same as `gleaner open PATH`)
    path: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// Theme for the browser: dark, light, high-contrast, or a theme TOML path
    #[arg(long, global = true)]
    theme: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open a dataset or workspace in the terminal UI (imports a dataset on first use)
    #[command(
        after_help = "Examples:\n  gleaner open data.jsonl\n  gleaner open data.gleaner --theme light"
    )]
    Open(OpenArgs),
    /// Import a dataset into a workspace directory (default: <name>.gleaner/ beside it)
    #[command(
        after_help = "Examples:\n  gleaner import alpaca.json\n  gleaner import chats.jsonl.zst -w /data/chats.gleaner --skip-bad-rows\n  gleaner import custom.jsonl --map custom_map.toml"
    )]
    Import(ImportArgs),
    /// Print rows, format, fields, length statistics and a describe of numeric columns
    #[command(
        after_help = "Examples:\n  gleaner stats data.jsonl\n  gleaner stats data.gleaner --json | jq .lengths"
    )]
    Stats(StatsArgs),
    /// Write a workspace's records (optionally filtered) in another format
    #[command(
        after_help = "Examples:\n  gleaner export data.gleaner -o train.jsonl\n  gleaner export data.gleaner -o sft/train.json --format sharegpt\n  gleaner export data.gleaner -o short.parquet --format parquet --filter 'len(output) < 20'"
    )]
    Export(ExportArgs),
    /// Run a recipe's stages (LLM judges) on a workspace; reruns resume from the cache
    #[command(
        after_help = "Examples:\n  gleaner run rate.toml -w data.gleaner\n  gleaner run rate.toml -w data.gleaner --dry-run\n\nRecipe:\n  [llm.rater]\n  base_url = \"http://127.0.0.1:8000/v1\"\n  model = \"meta-llama/Llama-3.1-8B-Instruct\"\n  concurrency = 16\n\n  [[stage]]\n  id = \"ds2.rate\"\n  endpoint = \"rater\"\n  preset = \"paper\"          # or \"compat\"\n  rows = \"n_turns == 1\"     # optional filter\n  limit = 1000               # optional"
    )]
    Run(RunArgs),
    /// Fold the sidecars of `gleaner run --shard i/n` jobs into each stage's sidecar
    #[command(
        after_help = "Copy each machine's workspace/sidecars/shards/<stage>/*.parquet into this\nworkspace's sidecars/shards/<stage>/ first.\n\nExample:\n  gleaner merge-shards -w data.gleaner"
    )]
    MergeShards,
    /// Show (or clear) the judge reply cache of a workspace
    #[command(
        after_help = "Examples:\n  gleaner cache -w data.gleaner\n  gleaner cache -w data.gleaner --clear --model smollm2"
    )]
    Cache(CacheArgs),
    /// Review the revisions of an aido.refine run: compare, approve, reject, edit
    #[command(
        after_help = "Keys: a approve · x reject · e edit in $EDITOR · u undo · n/p next/previous\n      d word diff · t round trace · f filter · A/X approve/reject the whole filter · ? help\nEvery decision is saved in the workspace database before the screen shows it.\n\nExamples:\n  gleaner review data.gleaner\n  gleaner review data.gleaner --stage aido.refine --as alice"
    )]
    Review(ReviewArgs),
    /// Blinded human evaluation: sessions, voting, reports, moving votes between machines
    #[command(subcommand)]
    Eval(eval::EvalCommand),
}

#[derive(Args, Debug)]
struct CacheArgs {
    /// Delete cached replies (all, or of --model)
    #[arg(long)]
    clear: bool,
    /// Only this model's replies
    #[arg(long)]
    model: Option<String>,
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Recipe TOML
    recipe: PathBuf,
    /// Ignore cached replies (new replies are still stored)
    #[arg(long)]
    no_cache: bool,
    /// Show the rows and the first prompt of each stage; send nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the run summary as JSON
    #[arg(long)]
    json: bool,
    /// Run only shard i of n (1-based), to split a recipe over n jobs; see merge-shards
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct LoadArgs {
    /// Workspace directory (default: <dataset name>.gleaner beside the dataset)
    #[arg(short = 'w', long = "workspace", global = true)]
    workspace: Option<PathBuf>,
    /// Column/tag map (TOML, LLaMA-Factory dataset_info style) overriding detection
    #[arg(long = "map", global = true)]
    map: Option<PathBuf>,
    /// Import the good rows and write a rejects report instead of failing
    #[arg(long, global = true)]
    skip_bad_rows: bool,
    /// Ignore the dataset's id column and use content hashes as ids
    #[arg(long, global = true)]
    hash_ids: bool,
}

impl LoadArgs {
    pub(crate) fn options(&self) -> Result<LoadOptions, UserError> {
        let mapping = match &self.map {
            Some(p) => Some(MappingFile::load(p)?),
            None => None,
        };
        Ok(LoadOptions {
            mapping,
            skip_bad_rows: self.skip_bad_rows,
            hash_ids: self.hash_ids,
            ..LoadOptions::default()
        })
    }
}

#[derive(Args, Debug)]
struct OpenArgs {
    /// Dataset file or workspace directory
    path: PathBuf,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// Dataset file: .jsonl, .json, .csv, .parquet (.gz/.zst compressed JSONL too)
    dataset: PathBuf,
    /// Replace the snapshot of an existing workspace (its database is kept)
    #[arg(long)]
    force: bool,
    /// Print the import report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct StatsArgs {
    /// Dataset file or workspace directory
    path: PathBuf,
    /// Print machine-readable JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Workspace directory (or a dataset with a workspace beside it)
    workspace: PathBuf,
    /// Output file
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// Only rows matching this filter, e.g. 'len(output) < 20 and category == "open_qa"'
    #[arg(long)]
    filter: Option<String>,
    /// Export the final dataset of an `aido.merge` stage (its name; default aido.merge):
    /// its rows only, with approved or edited revisions in place of the originals
    #[arg(long, value_name = "STAGE", num_args = 0..=1, default_missing_value = "aido.merge")]
    merged: Option<String>,
    /// With --merged: add a `provenance` field (original / revised / edited)
    #[arg(long, requires = "merged")]
    provenance: bool,
    /// Print the export report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ReviewArgs {
    /// Workspace directory
    workspace: PathBuf,
    /// The refine stage whose revisions to review
    #[arg(long, default_value = "aido.refine")]
    stage: String,
    /// Record decisions as this reviewer (default: the login name)
    #[arg(long = "as", value_name = "NAME")]
    who: Option<String>,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    crate::logging::init(None);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            if let Some(hint) = &e.hint {
                eprintln!("  hint: {hint}");
            }
            tracing::error!("{}", e.message);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), UserError> {
    let load = cli.load.clone();
    match cli.command {
        Some(Command::Open(args)) => open(&args.path, &load, cli.theme.as_deref()),
        Some(Command::Import(args)) => import(&args, &load),
        Some(Command::Stats(args)) => stats::run(&args.path, args.json, &load),
        Some(Command::Export(args)) => export(&args),
        Some(Command::Run(args)) => run_recipe(&args, &load),
        Some(Command::MergeShards) => merge_shards(&load),
        Some(Command::Cache(args)) => cache(&args, &load),
        Some(Command::Eval(cmd)) => eval::run(cmd, &load, cli.theme.as_deref()),
        Some(Command::Review(args)) => {
            let ws = Workspace::open(&args.workspace)?;
            crate::tui::app::run_terminal(
                ws,
                cli.theme.as_deref(),
                crate::tui::app::StartScreen::Review {
                    stage: args.stage,
                    who: args.who,
                },
            )
        }
        None => match cli.path {
            Some(path) => open(&path, &load, cli.theme.as_deref()),
            None => Err(UserError::new("no dataset given")
                .with_hint("run `gleaner DATASET`, or `gleaner --help` for the commands")),
        },
    }
}

fn open(path: &Path, load: &LoadArgs, theme: Option<&str>) -> Result<(), UserError> {
    let (ws, report) = open_or_import(path, load.workspace.as_deref(), &load.options()?)?;
    if let Some(r) = report {
        eprintln!("{}", import_summary(&r));
    }
    crate::tui::run(ws, theme)
}

fn import_summary(r: &crate::store::ImportReport) -> String {
    let mut s = format!(
        "imported {} of {} rows ({} format, {}) into {}",
        r.imported,
        r.rows,
        r.format,
        r.file_kind,
        r.workspace.display()
    );
    if let Some(rejects) = &r.rejects_file {
        s.push_str(&format!(
            "\nskipped {} bad rows; see {}",
            r.rejected,
            rejects.display()
        ));
    }
    s
}

fn import(args: &ImportArgs, load: &LoadArgs) -> Result<(), UserError> {
    let (_, report) = Workspace::import(
        &args.dataset,
        load.workspace.as_deref(),
        &load.options()?,
        args.force,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        println!("{}", import_summary(&report));
    }
    Ok(())
}

pub(crate) fn workspace_arg(load: &LoadArgs) -> Result<Workspace, UserError> {
    let Some(dir) = load.workspace.as_deref() else {
        return Err(UserError::new("no workspace given")
            .with_hint("pass -w WORKSPACE (create one with `gleaner import DATASET`)"));
    };
    Workspace::open(dir)
}

fn merge_shards(load: &LoadArgs) -> Result<(), UserError> {
    let ws = workspace_arg(load)?;
    let merged = crate::stages::runner::merge_shards(&ws)?;
    if merged.is_empty() {
        return Err(UserError::new(format!(
            "no shard sidecars in {}",
            ws.sidecar_dir().join("shards").display()
        ))
        .with_hint("run `gleaner run RECIPE -w WS --shard i/n`, or copy the shard files here"));
    }
    for (stage, rows) in merged {
        println!(
            "{stage}: merged {rows} rows into {}",
            ws.sidecar_path(&stage).display()
        );
    }
    Ok(())
}

fn cache(args: &CacheArgs, load: &LoadArgs) -> Result<(), UserError> {
    use crate::judge::cache::{cache_report, clear_cache};
    let ws = workspace_arg(load)?;
    let db = ws.db()?;
    let sql = |e: rusqlite::Error| UserError::new(format!("cache: {e}"));
    if args.clear {
        let n = clear_cache(&db, args.model.as_deref()).map_err(sql)?;
        println!("deleted {n} cached replies");
        return Ok(());
    }
    let mut report = cache_report(&db).map_err(sql)?;
    if let Some(m) = &args.model {
        report.retain(|r| &r.model == m);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        return Ok(());
    }
    if report.is_empty() {
        println!("the cache is empty");
    }
    for r in &report {
        println!(
            "{}: {} replies, {} prompt + {} completion tokens saved on rerun, {:.1} KiB, {} … {}",
            r.model,
            r.entries,
            r.prompt_tokens,
            r.completion_tokens,
            r.reply_bytes as f64 / 1024.0,
            r.oldest,
            r.newest
        );
    }
    Ok(())
}

fn run_recipe(args: &RunArgs, load: &LoadArgs) -> Result<(), UserError> {
    use crate::stages::recipe::Recipe;
    use crate::stages::runner::{RunOptions, Shard, run_recipe};
    let recipe = Recipe::load(&args.recipe)?;
    let ws = workspace_arg(load)?;
    let opts = RunOptions {
        no_cache: args.no_cache,
        dry_run: args.dry_run,
        shard: args
            .shard
            .as_deref()
            .map(Shard::parse)
            .transpose()
            .map_err(UserError::new)?,
    };
    let summaries = run_recipe(&ws, &recipe, &opts)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summaries).expect("json")
        );
    } else if !args.dry_run {
        for s in &summaries {
            println!(
                "{}{}: {} rows: {} ok, {} unparsed, {} failed; {} from cache, {} requests, {} tokens, {:.1}s{}",
                s.name,
                s.shard
                    .as_deref()
                    .map(|l| format!(" (shard {l})"))
                    .unwrap_or_default(),
                s.rows,
                s.ok,
                s.unparsed,
                s.failed,
                s.cached,
                s.requests,
                s.tokens,
                s.seconds,
                if s.interrupted {
                    " (interrupted: rerun to resume)"
                } else {
                    ""
                }
            );
        }
    }
    if summaries.iter().any(|s| s.interrupted) {
        return Err(UserError::new("run interrupted")
            .with_hint("rerun the same command to resume; cached replies are reused"));
    }
    Ok(())
}

/// The source dataset and the workspace's own files are never export targets.
fn refuse_to_overwrite(ws: &Workspace, out: &Path) -> Result<(), UserError> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let Some(target) = canon(out) else {
        return Ok(()); // a new file
    };
    if Some(&target) == canon(&ws.config.source.path).as_ref() {
        return Err(UserError::new(format!(
            "refusing to overwrite the source dataset {}",
            out.display()
        ))
        .with_hint("gleaner never modifies its source; export to another file"));
    }
    if let Some(dir) = canon(&ws.dir)
        && target.starts_with(&dir)
        && !target.starts_with(dir.join("exports"))
    {
        return Err(UserError::new(format!(
            "refusing to overwrite {}: it belongs to the workspace",
            out.display()
        ))
        .with_hint("export outside the workspace, or into its exports/ folder"));
    }
    Ok(())
}

/// A merge that review decisions have moved on from would export yesterday's choices.
fn refuse_stale_merge(ws: &Workspace, stage: &str) -> Result<(), UserError> {
    let db = ws.db()?;
    let err = |e: rusqlite::Error| UserError::new(e.to_string());
    let merged: Option<i64> = db
        .meta(&crate::store::decisions::merged_at_key(stage))
        .map_err(err)?
        .and_then(|v| v.parse().ok());
    let now = crate::store::decisions::last_id(&db).map_err(err)?;
    match merged {
        Some(seen) if seen >= now => Ok(()),
        _ => Err(UserError::new(format!(
            "review decisions changed after `{stage}` last ran; its result is out of date"
        ))
        .with_hint("run the recipe with the aido.merge stage again, then export")),
    }
}

/// The rows an `aido.merge` stage kept, with its final texts (and provenance).
fn merged_frame(
    frame: &polars::prelude::DataFrame,
    sidecar_cols: &[String],
    stage: &str,
    provenance: bool,
) -> Result<polars::prelude::DataFrame, UserError> {
    let col = |name: &str| {
        frame.column(&format!("{stage}.{name}")).map_err(|_| {
            UserError::new(format!("no `{stage}` results in this workspace"))
                .with_hint("run a recipe with an aido.merge stage first")
        })
    };
    let included = col("included")?
        .bool()
        .map_err(|e| UserError::new(e.to_string()))?
        .clone();
    let texts: Vec<_> = ["provenance", "instruction", "input", "output"]
        .iter()
        .map(|n| col(n).and_then(|c| c.str().cloned().map_err(|e| UserError::new(e.to_string()))))
        .collect::<Result<_, _>>()?;
    let mask: polars::prelude::BooleanChunked =
        included.iter().map(|v| Some(v == Some(true))).collect();
    let kept = frame
        .filter(&mask)
        .map_err(|e| UserError::new(e.to_string()))?;
    let texts: Vec<_> = texts
        .iter()
        .map(|c| {
            polars::prelude::ChunkFilter::filter(c, &mask)
                .map_err(|e| UserError::new(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let mut records = crate::data::frame::frame_to_records(&kept.drop_many(sidecar_cols.to_vec()))
        .map_err(|e| UserError::new(e.to_string()))?;
    for (i, r) in records.iter_mut().enumerate() {
        let origin = texts[0].get(i).unwrap_or("original").to_string();
        if origin != "original" {
            r.set_single_turn(
                texts[1].get(i).unwrap_or_default(),
                texts[2].get(i).unwrap_or_default(),
                texts[3].get(i).unwrap_or_default(),
            );
        }
        if provenance {
            r.extras.retain(|(k, _)| k != "provenance");
            r.extras
                .push(("provenance".into(), serde_json::Value::String(origin)));
        }
    }
    let specs = crate::data::frame::extra_specs(&records);
    crate::data::frame::records_to_frame_with(&records, &specs)
        .map_err(|e| UserError::new(e.to_string()))
}

fn export(args: &ExportArgs) -> Result<(), UserError> {
    let dir = if Workspace::is_workspace(&args.workspace) {
        args.workspace.clone()
    } else {
        Workspace::default_dir_for(&args.workspace)
    };
    if !Workspace::is_workspace(&dir) {
        return Err(UserError::new(format!(
            "{} is not a gleaner workspace",
            args.workspace.display()
        ))
        .with_hint("create one first with `gleaner import DATASET`"));
    }
    let ws = Workspace::open(&dir)?;
    refuse_to_overwrite(&ws, &args.output)?;
    // Filters may name stage columns (sidecars); the export carries the records only.
    let mut frame = ws.read_frame_with_sidecars(None)?;
    let sidecar_cols: Vec<String> = ws
        .sidecar_schema()?
        .iter_names()
        .map(|n| n.to_string())
        .collect();
    if let Some(expr) = &args.filter {
        let f = filter::compile(expr, &frame.schema())
            .map_err(|e| UserError::new(format!("--filter: {e}")))?;
        let rows = filter::matching_rows(&frame, &f)
            .map_err(|e| UserError::new(format!("--filter: {e}")))?;
        let idx = polars::prelude::IdxCa::from_vec("idx".into(), rows);
        frame = frame
            .take(&idx)
            .map_err(|e| UserError::new(format!("--filter: {e}")))?;
    }
    let frame = match &args.merged {
        Some(stage) => {
            refuse_stale_merge(&ws, stage)?;
            merged_frame(&frame, &sidecar_cols, stage, args.provenance)?
        }
        None => frame.drop_many(sidecar_cols),
    };
    let report = export_frame(&frame, &args.output, args.format)?;
    if let Ok(db) = ws.db() {
        let detail = serde_json::json!({
            "output": report.output, "format": args.format, "rows": report.rows,
            "filter": args.filter,
        });
        let _ = db.audit(&crate::util::current_user(), "export", &detail.to_string());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        println!("wrote {} rows to {}", report.rows, report.output.display());
        if let Some(info) = &report.dataset_info {
            println!("LLaMA-Factory entry in {}", info.display());
        }
        if report.lossy_rows > 0 {
            println!(
                "note: {} rows have turns the {:?} format cannot hold exactly (tool turns or a trailing user turn)",
                report.lossy_rows, args.format
            );
        }
    }
    Ok(())
}
