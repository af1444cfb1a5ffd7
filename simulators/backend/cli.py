"""``tack sim backend serve``: run the backend simulator in the foreground."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from simulators.backend.server import serve_forever
from simulators.backend.state import BackendState, demo_roster

DEFAULT_DEMO_PEOPLE = 50

app = typer.Typer(help="The DingTalk-style backend simulator.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keep ``serve`` a named subcommand even while it is the only one."""


def _read_roster(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise typer.BadParameter(f"{path} does not exist", param_hint="--roster") from exc
    except ValueError as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc}", param_hint="--roster") from exc
    people = data.get("people") if isinstance(data, dict) else data
    if not isinstance(people, list) or not all(
        isinstance(p, dict) and p.get("userid") for p in people
    ):
        raise typer.BadParameter(
            f'{path} must hold a list of people (or {{"people": [...]}}), each with a userid',
            param_hint="--roster",
        )
    return people


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    roster: Annotated[
        Path | None,
        typer.Option(help="JSON list of people; without it a demo roster is seeded."),
    ] = None,
    people: Annotated[
        int, typer.Option(help="Size of the demo roster when --roster is not given.")
    ] = DEFAULT_DEMO_PEOPLE,
    app_key: Annotated[str, typer.Option(help="App key the simulator accepts.")] = "tack-demo",
    app_secret: Annotated[
        str, typer.Option(help="App secret the simulator accepts.")
    ] = "tack-demo-secret",
) -> None:
    """Serve the simulated open API (and its /_sim/ controls) until Ctrl-C."""
    state = BackendState(app_key=app_key, app_secret=app_secret)
    seeded = _read_roster(roster) if roster is not None else demo_roster(people)
    state.set_roster(seeded)
    typer.echo(f"backend simulator on http://{host}:{port} with {len(seeded)} people", err=True)
    serve_forever(host, port, state)


if __name__ == "__main__":
    app()
