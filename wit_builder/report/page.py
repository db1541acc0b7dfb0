"""Write the HTML page and its PNG plots for a collected run."""

from __future__ import annotations

import datetime
import html
import json
import logging
import shutil
from pathlib import Path

from wit_builder.report.collect import SHARDS_STEP, SURVIVORS_STEP, RunSummary, collect_run
from wit_builder.report.plots import plot_caption_lengths, plot_counts, plot_funnel, plot_query_counts
from wit_builder.report.samples import read_thumbnails

logger = logging.getLogger(__name__)

#: Thumbnails in the sample grid.
SAMPLE_COUNT = 24

PLOT_NAMES = ("funnel.png", "fetch_status.png", "filter_reasons.png", "query_counts.png", "caption_length.png", "languages.png", "loss.png")

#: Fields of train/result.json shown in the settings table, in this order.
TRAIN_SETTINGS = (
    "model",
    "device",
    "train_samples",
    "excluded_train_samples",
    "eval_samples",
    "eval_images",
    "epochs",
    "steps",
    "batch_size",
    "image_size",
    "lr",
    "weight_decay",
    "seed",
    "seconds",
    "final_loss",
    "final_loss_control",
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #8a5a00; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.grid figure { margin: 0; font-size: 0.8em; }
.grid img { display: block; max-width: 160px; max-height: 160px; }
.muted { color: #777; }
"""


def escape(value: object) -> str:
    return html.escape(str(value))


def table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(path: Path | None, alt: str) -> str:
    if path is None:
        return f'<p class="note">No data for the {escape(alt)} plot.</p>'
    return f'<p><img src="{escape(path.name)}" alt="{escape(alt)}"></p>'


def format_count(count: int | None) -> str:
    return "n/a" if count is None else f"{count:,}"


def funnel_section(summary: RunSummary, out: Path) -> str:
    rows = []
    previous = None
    for step in summary.funnel:
        share = ""
        if step.count is not None and previous:
            share = f"{100 * step.count / previous:.1f}%"
        rows.append([step.label, format_count(step.count), share])
        if step.count is not None:
            previous = step.count
    plot = plot_funnel(summary.funnel, out / "funnel.png")
    return (
        '<h2 id="funnel">Funnel</h2>'
        + table(["step", "samples", "of previous known step"], rows)
        + image(plot, "funnel")
        + queries_section(summary)
    )


def queries_section(summary: RunSummary) -> str:
    """Describe the query list of the run: its path, where the report found it, and its size by kind."""
    if summary.query_list is None:
        return ""
    size = "" if summary.query_list_size is None else f", {summary.query_list_size:,} queries"
    text = f'<h3 id="queries">Queries</h3><p>Query list: {escape(summary.query_list)} ({escape(summary.query_list_origin)}{size}).</p>'
    if summary.query_kinds:
        kinds = sorted(summary.query_kinds.items())
        rows = [[kind, f"{count:,}"] for kind, count in kinds] + [["total", f"{sum(summary.query_kinds.values()):,}"]]
        text += table(["kind", "queries"], rows)
    return text


def run_record_text(summary: RunSummary) -> str:
    """Describe the last `wit run` recorded in run.json, or return "" without one."""
    record = summary.run_record
    if not record:
        return ""
    stages = record.get("stages")
    stages_text = ", ".join(str(stage) for stage in stages) if isinstance(stages, list) else "unknown"
    return f'<p class="muted">Last `wit run` (run.json): config {escape(record.get("config", "unknown"))}, stages {escape(stages_text)}.</p>'


def counts_rows(counts, total: int) -> list[list[object]]:
    return [[value, f"{count:,}", f"{100 * count / total:.1f}%"] for value, count in counts.most_common()]


def fetch_section(summary: RunSummary, out: Path) -> str:
    if not summary.fetch_statuses:
        return '<h2 id="fetch">Fetch</h2><p class="note">No fetch results in this run.</p>'
    total = sum(summary.fetch_statuses.values())
    failures = summary.fetch_statuses.copy()
    ok = failures.pop("ok", 0)
    plot = plot_counts(failures, out / "fetch_status.png", "Fetch failures by status", "samples")
    return (
        '<h2 id="fetch">Fetch</h2>'
        + f"<p>{ok:,} of {total:,} fetches succeeded ({100 * ok / total:.1f}%).</p>"
        + table(["status", "samples", "share"], counts_rows(summary.fetch_statuses, total))
        + (image(plot, "fetch failures") if failures else "<p>No failed fetches.</p>")
    )


def filter_section(summary: RunSummary, out: Path) -> str:
    if not summary.filter_reasons and not summary.languages:
        return '<h2 id="filter">Filter</h2><p class="note">No filter decisions in this run.</p>'
    dropped = sum(summary.filter_reasons.values())
    plot = plot_counts(summary.filter_reasons, out / "filter_reasons.png", "Samples dropped by the filter, by reason", "samples")
    return (
        '<h2 id="filter">Filter</h2>'
        + f"<p>{dropped:,} sample(s) dropped.</p>"
        + (table(["reason", "samples", "share of dropped"], counts_rows(summary.filter_reasons, dropped)) + image(plot, "filter reasons") if dropped else "")
    )


def balance_rule_text(summary: RunSummary) -> str:
    """Describe the balancing rule of the run, or return "" when its threshold is unknown."""
    if summary.balance_cap is None:
        return ""
    if summary.balance_mode == "strict":
        rule = (
            "Strict balancing credits each kept sample to one of its queries and no query to more than t, "
            "so a head query can still list more than t samples that were credited to rarer queries."
        )
    else:
        rule = (
            "MetaCLIP's rule keeps a sample with probability 1 - prod(1 - t / max(count, t)) over its queries, "
            "so a sample that also matches a rarer query is kept, and a head query can keep more than t."
        )
    oversample = ""
    if summary.balance_oversample and summary.balance_oversample > 1:
        oversample = f" The first balance kept up to t x {summary.balance_oversample:g} per query."
    return f"<p>Balancing threshold t = {summary.balance_cap:,} samples per query. {rule}{oversample}</p>"


def final_pass_text(summary: RunSummary) -> str:
    """Say whether the final balancing pass ran in this folder."""
    if summary.final_balance_ran:
        details = []
        if summary.final_balance_mode:
            details.append(f"mode {summary.final_balance_mode}")
        if summary.final_balance_cap is not None:
            details.append(f"t = {summary.final_balance_cap:,}")
        settings = f" ({', '.join(details)})" if details else ""
        return (
            f"<p>The final balancing pass ran{escape(settings)}: final_balance/ contains its decisions, which balance "
            "the samples that survived fetch and filter before the shards are written.</p>"
        )
    later_steps = {SURVIVORS_STEP, SHARDS_STEP} & {step.label for step in summary.query_steps}
    if not later_steps:
        return ""
    return (
        '<p class="note">No final_balance/ folder, so the final balancing pass did not run in this folder. '
        "`wit run` runs it before writing shards. Stages run one by one skip it, so `wit shards` writes "
        "every sample that the filter kept.</p>"
    )


def top_queries_table(summary: RunSummary) -> str:
    """Build the table of the top queries with their sample counts at every step found in the run."""
    if not summary.top_queries:
        return ""
    steps = summary.query_steps
    header = ["#", "query", "id"] + [step.label for step in steps]
    rows = []
    for rank, query_id in enumerate(summary.top_queries, start=1):
        counts = [f"{step.counts.get(query_id, 0):,}" for step in steps]
        rows.append([rank, summary.query_names.label(query_id), query_id] + counts)
    ranked_by = next(step.label for step in steps if step.counts)
    return (
        f'<h3 id="top-queries">Top {len(rows)} queries, ranked by their samples at the step "{escape(ranked_by)}"</h3>'
        + f"<p>Steps found in this run: {escape(', '.join(step.label for step in steps))}.</p>"
        + table(header, rows)
    )


def balance_section(summary: RunSummary, out: Path) -> str:
    series = [(step.label, step.sorted_counts()) for step in summary.query_steps]
    if not any(counts for _, counts in series):
        return '<h2 id="balance">Samples per query</h2><p class="note">No matched or balanced samples in this run.</p>'
    plot = plot_query_counts(series, summary.balance_cap, out / "query_counts.png")
    rows = []
    for label, counts in series:
        if counts:
            rows.append([label, f"{len(counts):,}", f"{counts[0]:,}", f"{counts[len(counts) // 2]:,}", f"{sum(counts):,}"])
    return (
        '<h2 id="balance">Samples per query</h2>'
        + "<p>A sample that matches several queries counts once for each of them.</p>"
        + balance_rule_text(summary)
        + final_pass_text(summary)
        + table(["stage", "queries with samples", "max per query", "median per query", "query matches"], rows)
        + image(plot, "samples per query")
        + top_queries_table(summary)
    )


def captions_section(summary: RunSummary, out: Path) -> str:
    plot = plot_caption_lengths(summary.caption_words_fetched, summary.caption_words_kept, out / "caption_length.png")
    languages = plot_counts(summary.languages, out / "languages.png", "Caption language (all filter decisions)", "samples")
    return (
        '<h2 id="captions">Captions</h2>'
        + image(plot, "caption length")
        + '<h3 id="languages">Languages</h3>'
        + (image(languages, "languages") if languages else '<p class="note">No language decisions in this run.</p>')
    )


def format_recall(value: object) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.3f}"
    return "n/a"


def mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def recall_rows(result: dict) -> list[list[object]]:
    """Return one table row per direction and k: trained, control and chance recall."""
    recall = mapping(result.get("recall"))
    control = mapping(result.get("recall_control"))
    chance = mapping(result.get("chance"))
    rows = []
    for direction in ("text_to_image", "image_to_text"):
        for k, value in mapping(recall.get(direction)).items():
            rows.append([
                f"{direction.replace('_', ' ')} {k}",
                format_recall(value),
                format_recall(mapping(control.get(direction)).get(k)),
                format_recall(mapping(chance.get(direction)).get(k, chance.get(k))),
            ])
    return rows


def train_section(summary: RunSummary, out: Path) -> str:
    result = summary.train_result
    if result is None:
        return '<h2 id="train">Training</h2><p class="note">No training result in this run.</p>'
    settings = [
        [name, f"{result[name]:.4g}" if isinstance(result[name], float) else result[name]]
        for name in TRAIN_SETTINGS
        if name in result
    ]
    loss = None
    if summary.loss_plot is not None:
        loss = Path(shutil.copyfile(summary.loss_plot, out / "loss.png"))
    return (
        '<h2 id="train">Training</h2>'
        + "<p>Held-out retrieval of the model trained on the shards, of a control trained the same way "
        + "on shuffled captions, and of a random ranking.</p>"
        + table(["recall", "trained", "shuffled-caption control", "chance"], recall_rows(result))
        + table(["setting", "value"], settings)
        + (image(loss, "loss curve") if loss else '<p class="note">train/loss.png not found.</p>')
    )


def samples_section(summary: RunSummary) -> str:
    thumbnails, errors = read_thumbnails(summary.shard_files, SAMPLE_COUNT)
    if not thumbnails:
        return '<h2 id="samples">Samples</h2><p class="note">No readable samples in the shards.</p>'
    figures = "".join(
        f'<figure><img src="{item.data_uri}" alt="{escape(item.key)}">'
        f'<figcaption>{escape(item.caption)} <span class="muted">({escape(item.shard)} {escape(item.key)})</span></figcaption></figure>'
        for item in thumbnails
    )
    skipped = f'<p class="note">{errors} unreadable sample(s) skipped.</p>' if errors else ""
    return f'<h2 id="samples">Samples</h2><p>The first {len(thumbnails)} samples of the shards.</p>{skipped}<div class="grid">{figures}</div>'


def stats_section(summary: RunSummary) -> str:
    if not summary.stage_stats:
        return '<h2 id="stats">Stage stats</h2><p class="note">No stats.json files in this run.</p>'
    parts = []
    for stage, stats in summary.stage_stats.items():
        counts = stats.get("counts") if isinstance(stats, dict) else None
        rows = [[name, f"{value:,}" if isinstance(value, int) else value] for name, value in (counts or {}).items()]
        parts.append(
            f"<h3>{escape(stage)}</h3>"
            + (table(["count", "value"], rows) if rows else "")
            + f"<details><summary>stats.json</summary><pre>{escape(json.dumps(stats, indent=2))}</pre></details>"
        )
    return '<h2 id="stats">Stage stats</h2>' + "".join(parts)


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report/index.html`` and its PNG plots, and return the page path.

    Missing or unreadable stage outputs are listed as notes on the page instead of raising.
    Raises FileNotFoundError only when ``run_dir`` itself does not exist.
    """
    summary = collect_run(run_dir)
    out = summary.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name in PLOT_NAMES:
        (out / name).unlink(missing_ok=True)

    sections = [
        funnel_section(summary, out),
        fetch_section(summary, out),
        filter_section(summary, out),
        balance_section(summary, out),
        captions_section(summary, out),
        train_section(summary, out),
        samples_section(summary),
        stats_section(summary),
    ]
    notes = ""
    if summary.notes:
        notes = '<h2 id="notes">Notes</h2><ul class="note">' + "".join(f"<li>{escape(note)}</li>" for note in summary.notes) + "</ul>"
    shards = ""
    if summary.shard_files:
        shards = f"<p>{len(summary.shard_files)} shard(s), {summary.shard_bytes / 1e6:,.1f} MB.</p>"
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>wit-builder report: {escape(summary.run_dir.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>wit-builder run report</h1><p class=\"muted\">{escape(summary.run_dir.resolve())}, generated {generated}</p>"
        + run_record_text(summary)
        + shards
        + notes
        + "".join(sections)
        + "</body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    logger.info("wrote %s with %d note(s)", path, len(summary.notes))
    return path
