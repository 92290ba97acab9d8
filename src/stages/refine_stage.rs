//! Running `aido.refine` and `aido.merge` from a recipe: pools for the strong and probe
//! roles, the cached loop, the optional consistency check, the sidecar, and the run's
//! summary. The method itself lives in `aido_refine` and `review::merge`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::aido_refine::asker::{Asker, Templates};
use super::aido_refine::{self, RefineOptions};
use super::judging::Progress;
use super::recipe::StageSpec;
use super::runner::{
    RunContext, RunEvent, StageSummary, build_pool, finish_run, start_run, write_stage_sidecar,
};
use crate::data::record::Record;
use crate::error::UserError;
use crate::review::merge;

/// The loop's options: the preset's, then the recipe's own values.
pub fn refine_options(spec: &StageSpec) -> RefineOptions {
    let mut o = RefineOptions::preset(spec.compat());
    o.max_rounds = spec.max_rounds.unwrap_or(o.max_rounds);
    o.swap_review_order = spec.swap_review_order.unwrap_or(o.swap_review_order);
    o.keep_original_if_all_lose = spec
        .keep_original_if_all_lose
        .unwrap_or(o.keep_original_if_all_lose);
    o.reference_bug_compat = spec.reference_bug_compat.unwrap_or(o.reference_bug_compat);
    o.accept_on_review_parse_failure = spec
        .accept_on_review_parse_failure
        .unwrap_or(o.accept_on_review_parse_failure);
    o.review_retries = spec.review_retries.unwrap_or(o.review_retries);
    o.consistency_threshold = spec
        .consistency_threshold
        .unwrap_or(o.consistency_threshold);
    o.temperature = spec.temperature.unwrap_or(o.temperature);
    if let Some(m) = spec.max_tokens {
        o.probe_max_tokens = m;
        o.evaluate_max_tokens = m;
        o.rewrite_max_tokens = m;
        o.review_max_tokens = m;
        o.align_max_tokens = m;
    }
    if let Some(r) = spec.retries {
        o.retry.max_attempts = r + 1;
    }
    o
}

pub(crate) fn run_refine(
    cx: &RunContext,
    spec: &StageSpec,
    records: &[Record],
    report: &mut dyn FnMut(&RunEvent),
    started: Instant,
) -> Result<StageSummary, UserError> {
    let RunContext {
        ws,
        db,
        recipe,
        urls,
        opts,
        runtime,
        cancel,
    } = *cx;
    let name = spec.name().to_string();
    let mut summary = StageSummary::new(spec, records.len(), opts);
    let strong_role = spec.endpoint.as_deref().expect("validated");
    let probe_role = spec.probe_endpoint.as_deref().unwrap_or(strong_role);
    let o = refine_options(spec);
    if opts.dry_run {
        report(&RunEvent::Note(format!(
            "{name}: {} rows selected; strong judge {strong_role}, probe {probe_role}; up to {} rounds, swap_review_order {}, keep_original_if_all_lose {}, reference_bug_compat {}",
            records.len(),
            o.max_rounds,
            o.swap_review_order,
            o.keep_original_if_all_lose,
            o.reference_bug_compat
        )));
        return Ok(summary);
    }
    report(&RunEvent::Started {
        stage: name.clone(),
        rows: records.len(),
    });
    let run_id = start_run(db, spec, opts)?;
    let strong = Arc::new(build_pool(recipe, strong_role, urls)?.with_cancel(cancel.clone()));
    let probe = if probe_role == strong_role {
        strong.clone()
    } else {
        Arc::new(build_pool(recipe, probe_role, urls)?.with_cancel(cancel.clone()))
    };
    let asker = Arc::new(Asker {
        strong: strong.clone(),
        probe: probe.clone(),
        db: Arc::new(Mutex::new(ws.db()?)),
        use_cache: !opts.no_cache,
        retry: o.retry.clone(),
        temperature: o.temperature,
    });
    let mut last = Progress::default();
    let mut rows = runtime.block_on(aido_refine::refine_rows(
        records,
        asker,
        Arc::new(Templates::builtin()),
        Arc::new(o.clone()),
        cancel,
        &mut |p| {
            last = p;
            report(&RunEvent::Progress {
                stage: name.clone(),
                progress: p,
                elapsed: started.elapsed(),
            });
        },
    ));
    summary.interrupted = rows.len() < records.len();
    if let Some(m) = &spec.consistency_model
        && !summary.interrupted
    {
        let mut embedder = super::model_stage::load_embedder(recipe, m)?;
        aido_refine::check_consistency(&mut rows, records, &mut embedder, o.consistency_threshold)
            .map_err(|e| UserError::new(format!("{name}: consistency check: {e}")))?;
    }
    if !summary.interrupted {
        let fresh = aido_refine::sidecar_frame(&rows).map_err(|e| UserError::new(e.to_string()))?;
        summary.sidecar = Some(write_stage_sidecar(ws, &name, fresh, opts.shard)?);
    }
    let count = |s: &str| {
        rows.iter()
            .filter(|r| r.outcome.state.status() == s)
            .count()
    };
    summary.ok = count("ok");
    summary.unparsed = count("unparsed");
    summary.failed = count("failed");
    summary.cached = last.cached;
    summary.tokens = last.tokens;
    summary.endpoints = strong.usage();
    if probe_role != strong_role {
        summary.endpoints.extend(probe.usage());
    }
    summary.requests = summary.endpoints.iter().map(|e| e.requests).sum();
    let states: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.outcome.state.name()).or_insert(0) += 1;
        m
    });
    let disagreements: i64 = rows.iter().map(|r| r.outcome.order_disagreements()).sum();
    let drifted = rows.iter().filter(|r| r.drifted).count();
    report(&RunEvent::Note(format!(
        "{name}: {} · orders disagreed {disagreements}× · drifted {drifted}",
        states
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    )));
    summary.seconds = started.elapsed().as_secs_f64();
    finish_run(db, run_id, &summary)?;
    Ok(summary)
}

pub(crate) fn run_merge(
    cx: &RunContext,
    spec: &StageSpec,
    records: &[Record],
    report: &mut dyn FnMut(&RunEvent),
    started: Instant,
) -> Result<StageSummary, UserError> {
    let RunContext { ws, db, opts, .. } = *cx;
    let name = spec.name().to_string();
    let refine = spec.refine_stage.as_deref().unwrap_or("aido.refine");
    let mut summary = StageSummary::new(spec, records.len(), opts);
    let items = crate::review::load_items(ws, db, refine)?;
    let (rows, counts) = merge::merge(
        records,
        &items,
        spec.on_rejected.unwrap_or_default(),
        spec.on_pending.unwrap_or_default(),
    )
    .map_err(|e| {
        UserError::new(format!("{name}: {e}")).with_hint(format!(
            "review them with `gleaner review {}`, or set on_pending = \"original\" | \"revision\" | \"drop\" in the stage",
            ws.dir.display()
        ))
    })?;
    if opts.dry_run {
        report(&RunEvent::Note(format!("{name}: would merge {counts:?}")));
        return Ok(summary);
    }
    let run_id = start_run(db, spec, opts)?;
    let seen = crate::store::decisions::last_id(db).map_err(|e| UserError::new(e.to_string()))?;
    let fresh = merge::sidecar_frame(&rows).map_err(|e| UserError::new(e.to_string()))?;
    summary.sidecar = Some(write_stage_sidecar(ws, &name, fresh, opts.shard)?);
    db.set_meta(
        &crate::store::decisions::merged_at_key(&name),
        &seen.to_string(),
    )
    .map_err(|e| UserError::new(e.to_string()))?;
    summary.ok = counts.rows;
    report(&RunEvent::Note(format!(
        "{name}: {} rows: {} original, {} revised, {} edited; {} dropped{}",
        counts.rows,
        counts.original,
        counts.revised,
        counts.edited,
        counts.dropped,
        if counts.pending > 0 {
            format!("; {} pending taken per on_pending", counts.pending)
        } else {
            String::new()
        }
    )));
    summary.seconds = started.elapsed().as_secs_f64();
    finish_run(db, run_id, &summary)?;
    Ok(summary)
}
