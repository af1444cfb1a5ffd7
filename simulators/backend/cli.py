"""``tack sim backend serve``: run the backend simulator in the foreground."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from simulators.backend.server import serve_forever
from simulators.backend.state import (
    DEFAULT_RATE_LIMIT_PER_S,
    DEFAULT_TOKEN_TTL_S,
    BackendState,
    Faults,
    demo_roster,
)

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
    rate_limit: Annotated[
        int, typer.Option(min=0, help="Upload calls per second admitted per API (0: no limit).")
    ] = DEFAULT_RATE_LIMIT_PER_S,
    token_ttl: Annotated[
        float, typer.Option(min=1, help="Lifetime of access tokens, in seconds.")
    ] = DEFAULT_TOKEN_TTL_S,
    latency_ms: Annotated[int, typer.Option(min=0, help="Delay every upload call.")] = 0,
    fail_status: Annotated[
        int, typer.Option(min=0, help="Answer the first N upload calls with an HTTP error.")
    ] = 0,
    fail_status_code: Annotated[
        int, typer.Option(min=400, max=599, help="The HTTP status --fail-status answers.")
    ] = 500,
    retry_after: Annotated[
        float, typer.Option(min=0, help="Retry-After (s) sent with --fail-status answers.")
    ] = 0.0,
    throttle: Annotated[
        int, typer.Option(min=0, help="Answer the first N upload calls with the rate errcode.")
    ] = 0,
    timeouts: Annotated[
        int, typer.Option(min=0, help="Let the first N upload calls hang without an answer.")
    ] = 0,
    drop_after_commit: Annotated[
        int, typer.Option(min=0, help="Store the first N uploads, then cut their answer off.")
    ] = 0,
    expire_tokens_after: Annotated[
        int, typer.Option(min=0, help="Expire every token after N upload calls (once).")
    ] = 0,
    clock_skew_ms: Annotated[int, typer.Option(help="Move the backend's clock by this.")] = 0,
) -> None:
    """Serve the simulated open API (and its /_sim/ controls) until Ctrl-C.

    The fault options set the starting faults; PUT /_sim/faults changes them while it runs.
    """
    state = BackendState(
        app_key=app_key,
        app_secret=app_secret,
        token_ttl_s=token_ttl,
        rate_limit_per_s=rate_limit,
    )
    state.set_faults(
        Faults(
            latency_ms=latency_ms,
            fail_status=fail_status,
            fail_status_code=fail_status_code,
            retry_after_s=retry_after,
            throttle=throttle,
            timeouts=timeouts,
            drop_after_commit=drop_after_commit,
            expire_tokens_after=expire_tokens_after,
            clock_skew_ms=clock_skew_ms,
        )
    )
    seeded = _read_roster(roster) if roster is not None else demo_roster(people)
    state.set_roster(seeded)
    typer.echo(f"backend simulator on http://{host}:{port} with {len(seeded)} people", err=True)
    serve_forever(host, port, state)


if __name__ == "__main__":
    app()
