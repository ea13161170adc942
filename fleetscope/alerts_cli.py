"""``fleetscope alerts``: the newest alerts, and one alert with the frames it stands on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from core.cli_support import settings_or_exit


@click.group("alerts")
def alerts() -> None:
    """Look at the alerts in PostgreSQL and the evidence frames kept with them."""


def _database_or_exit(what: str, read: Any) -> Any:
    from sqlalchemy.exc import OperationalError

    try:
        return read()
    except OperationalError as exc:
        click.echo(f"fleetscope alerts {what}: PostgreSQL is not reachable ({str(exc.orig).splitlines()[0]})", err=True)
        sys.exit(1)


@alerts.command("list")
@click.option("--last", default=10, show_default=True, help="how many of the newest alerts to show")
@click.option("--type", "alert_type", help="only alerts of this type (e.g. collision, stopped_vehicle)")
def alerts_list(last: int, alert_type: str | None) -> None:
    """The newest alerts (by their latest frame), one line each: id, type, severity, vehicles, time."""
    import sqlalchemy as sa

    from streams.sinks.tables import alerts as table

    settings = settings_or_exit()

    def read() -> list[Any]:
        engine = sa.create_engine(settings.postgres.url("psycopg"))
        try:
            query = sa.select(table).order_by(table.c.window_end.desc()).limit(last)
            if alert_type:
                query = query.where(table.c.type == alert_type)
            with engine.connect() as conn:
                return list(conn.execute(query).mappings())
        finally:
            engine.dispose()

    rows = _database_or_exit("list", read)
    if not rows:
        click.echo("no alerts" + (f" of type {alert_type}" if alert_type else ""))
    for r in rows:
        click.echo(
            f"{r['alert_id']}  {r['type']:<18} {r['severity']:<8} {r['window_end']:%Y-%m-%d %H:%M:%S}"
            f"  confidence {r['confidence']:.2f}  vehicles {', '.join(r['vehicles'])}"
        )


@alerts.command("show")
@click.argument("alert_id")
@click.option(
    "--save",
    type=click.Path(file_okay=False, path_type=Path),
    help="write the evidence frames here, with the detected objects and relations drawn",
)
def alerts_show(alert_id: str, save: Path | None) -> None:
    """Print the incident ALERT_ID (an alert id, or a vehicle incident merged into one) and list its
    evidence frames; with --save, write them as JPEGs with what was detected drawn on them."""
    from streams.sinks.evidence import read_alert

    settings = settings_or_exit()
    stored = _database_or_exit("show", lambda: read_alert(settings, alert_id))
    if stored is None:
        click.echo(f"fleetscope alerts show: no alert {alert_id} (see `fleetscope alerts list`)", err=True)
        sys.exit(1)
    r = stored.row
    where = f"{r['lat']:.5f}, {r['lon']:.5f}" if r["lat"] is not None else "no GPS position"
    evidence = r["evidence"]
    click.echo(f"alert {r['alert_id']}: {r['type']} ({r['severity']}), confidence {r['confidence']:.2f}")
    click.echo(f"  window      {r['window_start']:%Y-%m-%d %H:%M:%S} to {r['window_end']:%H:%M:%S}")
    click.echo(f"  where       {where}; segment {r['segment_id'] or '-'}; cell {r['cell_id'] or '-'}")
    click.echo(f"  vehicles    {', '.join(r['vehicles'])} ({len(r['vehicle_incidents'])} vehicle incidents)")
    click.echo(f"  persistence {evidence.get('persistence', '-')}; {len(r['frame_ids'])} matching frames")
    top = sorted(evidence.get("relation_scores", {}).items(), key=lambda kv: -kv[1])[:3]
    if top:
        click.echo("  SA-CLIP     " + "; ".join(f"{k} {v:.2f}" for k, v in top))
    if not stored.frames:
        store = settings.evidence.store
        click.echo(f"  evidence    none kept (store: {store}; frames older than the retention are deleted)")
        return
    click.echo(f"  evidence    {len(stored.frames)} frames (store: {settings.evidence.store})")
    for n, f in enumerate(stored.frames, 1):
        d = f.drawing
        score = d.get("rule_score")
        click.echo(
            f"    {n:>2}. {f.captured_at:%H:%M:%S} {f.vehicle_id} frame {f.frame_id}:"
            f" {d.get('rule', f.alert_type)} {score if score is not None else '-'},"
            f" {len(d.get('objects', []))} objects, {len(d.get('relations', []))} relations"
        )
    if save is not None:
        from fleetscope.evidence_image import draw

        folder = save / r["alert_id"]
        folder.mkdir(parents=True, exist_ok=True)
        for n, f in enumerate(stored.frames, 1):
            path = folder / f"{n:02d}-{f.captured_at:%H%M%S}-{f.vehicle_id}.jpg".replace("/", "_")
            draw(f).save(path, quality=90)
        click.echo(f"  saved to    {folder}/ ({len(stored.frames)} JPEGs)")
